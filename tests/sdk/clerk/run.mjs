// The Clerk Backend SDK, unchanged, against the REST front door: only the base URL differs.
// Env: CLERK_API_URL (the server, e.g. http://127.0.0.1:50051), CLERK_SECRET_KEY (an API key),
// ORG_ID (an organization with one owner), USER_ID (a user who is not a member yet).
import assert from 'node:assert/strict';
import { createClerkClient } from '@clerk/backend';

const { CLERK_API_URL: apiUrl, CLERK_SECRET_KEY: secretKey, ORG_ID: organizationId, USER_ID: userId } =
  process.env;
const clerk = createClerkClient({ secretKey, apiUrl });
const orgs = clerk.organizations;

const created = await orgs.createOrganizationMembership({ organizationId, userId, role: 'org:member' });
assert.equal(created.role, 'org:member');
assert.equal(created.organization.id, organizationId);
assert.equal(created.publicUserData.userId, userId);
assert.equal(typeof created.createdAt, 'number');
assert.ok(created.permissions.length > 0);

const list = await orgs.getOrganizationMembershipList({ organizationId, limit: 10 });
assert.equal(list.totalCount, 2);
assert.ok(list.data.some((m) => m.id === created.id && m.publicUserData.identifier.includes('@')));

const updated = await orgs.updateOrganizationMembership({ organizationId, userId, role: 'org:admin' });
assert.equal(updated.role, 'org:admin');
assert.equal(updated.id, created.id);

await orgs.updateOrganizationMembershipMetadata({
  organizationId,
  userId,
  publicMetadata: { plan: 'pro', limits: { seats: 5, projects: 2 } },
  privateMetadata: { crm: '42' },
});
const merged = await orgs.updateOrganizationMembershipMetadata({
  organizationId,
  userId,
  publicMetadata: { plan: null, limits: { projects: null } },
});
assert.deepEqual(merged.publicMetadata, { limits: { seats: 5 } });
assert.deepEqual(merged.privateMetadata, { crm: '42' });

const deleted = await orgs.deleteOrganizationMembership({ organizationId, userId });
assert.equal(deleted.id, created.id);
const after = await orgs.getOrganizationMembershipList({ organizationId });
assert.equal(after.totalCount, 1);

// An error comes back as Clerk's: status and error code.
await assert.rejects(
  orgs.updateOrganizationMembership({ organizationId, userId, role: 'org:admin' }),
  (e) => e.status === 404 && e.errors[0].code.endsWith('not_found'),
);

console.log('clerk sdk ok');
