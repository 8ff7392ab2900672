// GET /v1/tenants/:id/usage on a real server: counters fed by the request-log
// middleware (requests, classify requests, rows, tokens, errors), admin key
// only, 404 for a tenant that does not exist.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { ADMIN_KEY, api, classify, createTask, createTenant, startServingServer, type ServingTestServer } from './serving-helpers.ts';

let srv: ServingTestServer;
before(async () => { srv = await startServingServer(); });
after(async () => { await srv?.close(); });

test('usage counts a tenant\'s requests, rows and tokens, and only the admin reads it', async () => {
  const key = await createTenant(srv.url, 'counted');
  const other = await createTenant(srv.url, 'idle');
  const me = (await api(srv.url, 'GET', '/v1/whoami', { key })).json;
  const idle = (await api(srv.url, 'GET', '/v1/whoami', { key: other })).json;
  await createTask(srv.url, key, { name: 't', labels: ['no', 'yes'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } });
  const r = await classify(srv.url, key, 't', { inputs: ['a cat', 'a dog sat', 'hi'] });
  assert.equal(r.status, 200);
  assert.equal((await api(srv.url, 'GET', '/v1/tasks/nope', { key })).status, 404);

  const u = await api(srv.url, 'GET', `/v1/tenants/${me.id}/usage`, { key: ADMIN_KEY });
  assert.equal(u.status, 200);
  // whoami, task, classify, the 404 (the usage call itself is the admin's).
  assert.deepEqual({ ...u.json, since: undefined }, { tenant: me.id, since: undefined, requests: 4, classify_requests: 1, rows: 3, tokens: r.json.usage.tokens, rejected: 0, errors: 1 });
  assert.ok(r.json.usage.tokens > 3);
  assert.ok(!Number.isNaN(Date.parse(u.json.since)));

  const quiet = await api(srv.url, 'GET', `/v1/tenants/${idle.id}/usage`, { key: ADMIN_KEY });
  assert.equal(quiet.json.requests, 1);
  assert.equal(quiet.json.rows, 0);

  assert.equal((await api(srv.url, 'GET', '/v1/tenants/ten_missing/usage', { key: ADMIN_KEY })).status, 404);
  assert.equal((await api(srv.url, 'GET', `/v1/tenants/${me.id}/usage`, { key })).status, 403);
  assert.equal((await api(srv.url, 'GET', `/v1/tenants/${me.id}/usage`)).status, 401);
});
