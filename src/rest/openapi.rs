//! `/openapi.json`: generated from the route definitions themselves (`utoipa`), so it describes
//! exactly what is served: every route, its parameters, bodies, answers and error bodies, and
//! the security schemes (Bearer for cal.com and Clerk, Basic for Close).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Rest, calcom, clerk, close};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "membership-service REST front door",
        description = "cal.com API v2, Close and Clerk Backend API membership routes over the \
                       membership service. Errors use each vendor's error body."
    ),
    modifiers(&SecuritySchemes)
)]
struct Document;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer <key>`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "An API key as the user name, an empty password (Close)",
                    ))
                    .build(),
            ),
        );
    }
}

/// Every REST route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<Rest> {
    OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(calcom::list_memberships, calcom::create_membership))
        .routes(routes!(
            calcom::get_membership,
            calcom::update_membership,
            calcom::delete_membership
        ))
        .routes(routes!(calcom::get_team_membership))
        .routes(routes!(calcom::list_roles, calcom::create_role))
        .routes(routes!(
            calcom::get_role,
            calcom::update_role,
            calcom::delete_role
        ))
        .routes(routes!(close::get_membership, close::update_membership))
        .routes(routes!(clerk::list_memberships, clerk::create_membership))
        .routes(routes!(clerk::update_membership, clerk::delete_membership))
        .routes(routes!(clerk::update_metadata))
}

/// The document `/openapi.json` serves.
pub fn document() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}
