//! The invariants every operation must keep, judged from the snapshots around it:
//! 1. the organization still has an accepted OWNER;
//! 2. a refused operation changed nothing;
//! 3. nobody gained a permission in a team that the actor did not hold there before, nor OWNER
//!    unless the actor was an accepted OWNER there (of the team or of its organization);
//! 4. the actor gained nothing themselves: no permission, no higher base level;
//! 5. only an accepted OWNER changes, deactivates or deletes another user's OWNER membership
//!    (a deleted sub-team takes its memberships with it: `team.delete` is enough for that);
//! 6. a user's own record is changed or deleted by that user only.
//!
//! What a user holds counts their invitations too: inviting is the grant (judged against the
//! inviter), accepting it is the invitee's own step and gains nothing new.

use super::snapshot::{Catalog, Snapshot, is_owner, owner_rule_fields_differ};
use super::world::World;
use crate::common::pb::MembershipRole;

/// Everything `actor`'s operation broke, one line each (empty: nothing).
pub fn check(
    world: &World<'_>,
    catalog: &Catalog,
    actor: i64,
    refused: bool,
    before: &Snapshot,
    after: &Snapshot,
) -> Vec<String> {
    let mut broken = Vec::new();
    let who = |user: i64| world.user_name(user);
    let team_name = |team: i64| world.team_name(team);

    if !after.has_accepted_owner() {
        broken.push("the organization has no accepted OWNER left".to_string());
    }

    if refused && before != after {
        broken.push(format!(
            "the refused operation changed the world:\n{}",
            before.diff(after)
        ));
    }

    let (held_before, held_after) = (before.holdings(catalog), after.holdings(catalog));
    for &team in &after.teams {
        let actor_held = held_before.of(actor, team, false);
        for &user in &world.users {
            let old = held_before.of(user, team, true);
            let new = held_after.of(user, team, true);
            let gained = new.perms.minus(old.perms);
            if user == actor {
                if !gained.is_empty() {
                    broken.push(format!(
                        "self-raise: {} gained {:?} in {}",
                        who(user),
                        catalog.names(gained),
                        team_name(team)
                    ));
                }
                if new.level > old.level || (new.owner && !old.owner) {
                    broken.push(format!(
                        "self-raise: {}'s level in {} went {} -> {}",
                        who(user),
                        team_name(team),
                        level_name(old.level, old.owner),
                        level_name(new.level, new.owner)
                    ));
                }
                continue;
            }
            let beyond = gained.minus(actor_held.perms);
            if !beyond.is_empty() {
                broken.push(format!(
                    "escalation: {} gained {:?} in {}, which {} did not hold there",
                    who(user),
                    catalog.names(beyond),
                    team_name(team),
                    who(actor)
                ));
            }
            if new.owner && !old.owner && !actor_held.owner {
                broken.push(format!(
                    "OWNER from a non-owner: {} became OWNER in {} by {}, no accepted OWNER there",
                    who(user),
                    team_name(team),
                    who(actor)
                ));
            }
        }
    }

    for (&(team, user), was) in &before.memberships {
        if user == actor || !is_owner(was) || !after.teams.contains(&team) {
            continue;
        }
        let what = match after.memberships.get(&(team, user)) {
            None => "deleted",
            Some(now) if owner_rule_fields_differ(was, now) => "changed",
            Some(_) => continue,
        };
        if !held_before.of(actor, team, false).owner {
            broken.push(format!(
                "owner rule: {} {what} {}'s OWNER membership in {} without being an accepted \
                 OWNER there",
                who(actor),
                who(user),
                team_name(team)
            ));
        }
    }
    for (&user, was) in &before.users {
        if user != actor && after.users.get(&user).is_some_and(|now| now != was) {
            let what = if was.is_some() && after.users[&user].is_none() {
                "deleted"
            } else {
                "changed"
            };
            broken.push(format!(
                "self only: {} {what} the user {}",
                who(actor),
                who(user)
            ));
        }
    }
    broken
}

fn level_name(level: i32, owner: bool) -> String {
    let name = MembershipRole::try_from(level)
        .map(|r| {
            r.as_str_name()
                .trim_start_matches("MEMBERSHIP_ROLE_")
                .to_string()
        })
        .unwrap_or_else(|_| format!("{level}"));
    if owner && level != MembershipRole::Owner as i32 {
        format!("{name} (owner_role)")
    } else if level == 0 {
        "none".into()
    } else {
        name
    }
}
