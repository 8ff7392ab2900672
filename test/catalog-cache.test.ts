// The classify hot path reads nothing from the store in steady state (keys,
// tasks and prompt resolutions come from the catalog cache, prompts/catalog-cache.ts),
// and every write through the API is seen by the very next request: revoked
// keys and deleted tenants are refused, deleted tasks, prompts and ensembles
// are 404, a new version is what "latest" means. One real server on stories260k.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { CatalogCache, parseCatalogEvent, selectorKey } from '../prompts/catalog-cache.ts';
import type { Task, Tenant } from '../prompts/store.ts';
import { ADMIN_KEY, api, classify, createTask, nested, startServingServer, uploadPrompt, type ServingTestServer } from './serving-helpers.ts';

const H = 64; // stories260k
const TASK = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } };

let srv: ServingTestServer;

before(async () => { srv = await startServingServer(); });
after(async () => { await srv.close(); });

/** A tenant with the sentiment task, prompts p1 and p2 (v1 each) and ensemble e of both. */
async function tenantWithTask(name: string): Promise<{ id: string; key: string }> {
  const t = await api(srv.url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name } });
  assert.equal(t.status, 201);
  const key = t.json.api_key as string;
  await createTask(srv.url, key, TASK);
  await uploadPrompt(srv.url, key, 'sentiment', { name: 'p1', kind: 'soft', tensor: nested([3, H], 1, 2) });
  await uploadPrompt(srv.url, key, 'sentiment', { name: 'p2', kind: 'soft', tensor: nested([4, H], 2, 2) });
  const e = await api(srv.url, 'POST', '/v1/tasks/sentiment/ensembles/e', { key, json: { members: ['p1', 'p2'] } });
  assert.equal(e.status, 201, JSON.stringify(e.json));
  return { id: t.json.id as string, key };
}

async function ok(key: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const r = await classify(srv.url, key, 'sentiment', { inputs: ['a fine film'], ...body });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json;
}

async function status(key: string, body: Record<string, unknown>): Promise<{ status: number; code: unknown }> {
  const r = await classify(srv.url, key, 'sentiment', { inputs: ['a fine film'], ...body });
  return { status: r.status, code: (r.json.error as { code?: unknown } | undefined)?.code };
}

describe('catalog cache', () => {
  it('steady-state classify adds zero store queries (and /metrics counts them)', async () => {
    const { key } = await tenantWithTask('steady');
    const bodies = [{ prompt: 'p1' }, { prompt: 'p2', version: 1 }, { ensemble: 'e' }, {}, { prompts: ['p1', 'p2'] }];
    for (const b of bodies) await ok(key, b); // warm-up: one of each
    const before = srv.server.store.queries.total();
    for (let i = 0; i < 4; i++) for (const b of bodies) await ok(key, b);
    assert.equal(srv.server.store.queries.total() - before, 0, 'no store query after the warm-up');

    const m = await api(srv.url, 'GET', '/metrics');
    const text = Buffer.from(m.bytes).toString('utf8');
    assert.match(text, /^softserve_store_queries_total\{entity="keys",op="authenticate"\} [1-9]/m);
    assert.match(text, /^softserve_store_queries_total\{entity="tasks",op="get"\} [1-9]/m);
  });

  it('a revoked key is refused on the very next request', async () => {
    const { id, key } = await tenantWithTask('revoking');
    const second = await api(srv.url, 'POST', `/v1/tenants/${id}/keys`, { key: ADMIN_KEY });
    assert.equal(second.status, 201);
    const key2 = second.json.api_key as string;
    await ok(key2, { prompt: 'p1' });
    const r = await api(srv.url, 'DELETE', `/v1/tenants/${id}/keys/${(second.json.key as { id: string }).id}`, { key: ADMIN_KEY });
    assert.equal(r.status, 204);
    assert.deepEqual(await status(key2, { prompt: 'p1' }), { status: 401, code: 'UNAUTHORIZED' });
    await ok(key, { prompt: 'p1' }); // the tenant's other key still works
  });

  it('a deleted tenant is refused on the very next request', async () => {
    const { id, key } = await tenantWithTask('leaving');
    await ok(key, { prompt: 'p1' });
    assert.equal((await api(srv.url, 'DELETE', `/v1/tenants/${id}`, { key: ADMIN_KEY })).status, 204);
    assert.deepEqual(await status(key, { prompt: 'p1' }), { status: 401, code: 'UNAUTHORIZED' });
  });

  it('a deleted task is 404 at once; re-created with other labels, the new definition answers', async () => {
    const { key } = await tenantWithTask('tasks');
    await ok(key, { prompt: 'p1' });
    assert.equal((await api(srv.url, 'DELETE', '/v1/tasks/sentiment', { key })).status, 204);
    assert.deepEqual(await status(key, {}), { status: 404, code: 'NOT_FOUND' });
    assert.deepEqual(await status(key, { prompt: 'p1' }), { status: 404, code: 'NOT_FOUND' });
    await createTask(srv.url, key, { ...TASK, labels: ['bad', 'good'] });
    const res = await ok(key, {});
    assert.deepEqual(Object.keys((res.results as Array<{ scores: object }>)[0]!.scores).sort(), ['bad', 'good']);
    assert.deepEqual(await status(key, { prompt: 'p1' }), { status: 404, code: 'NOT_FOUND' });
  });

  it('a new version is "latest" on the next request; deleting it goes back; a deleted prompt is 404', async () => {
    const { key } = await tenantWithTask('versions');
    assert.deepEqual((await ok(key, { prompt: 'p2' })).prompt, { name: 'p2', version: 1 });
    assert.equal(await uploadPrompt(srv.url, key, 'sentiment', { name: 'p2', kind: 'soft', tensor: nested([2, H], 9, 2) }), 2);
    assert.deepEqual((await ok(key, { prompt: 'p2' })).prompt, { name: 'p2', version: 2 });
    assert.equal((await api(srv.url, 'DELETE', '/v1/tasks/sentiment/prompts/p2/versions/2', { key })).status, 204);
    assert.deepEqual((await ok(key, { prompt: 'p2' })).prompt, { name: 'p2', version: 1 });
    assert.deepEqual(await status(key, { prompt: 'p2', version: 2 }), { status: 404, code: 'NOT_FOUND' });
    const p3 = await uploadPrompt(srv.url, key, 'sentiment', { name: 'p3', kind: 'soft', tensor: nested([2, H], 3, 2) });
    assert.equal(p3, 1);
    await ok(key, { prompt: 'p3' });
    assert.equal((await api(srv.url, 'DELETE', '/v1/tasks/sentiment/prompts/p3', { key })).status, 204);
    assert.deepEqual(await status(key, { prompt: 'p3' }), { status: 404, code: 'NOT_FOUND' });
  });

  it('a deleted ensemble is 404 at once; re-created, its new members vote', async () => {
    const { key } = await tenantWithTask('ensembles');
    const votes = (r: Record<string, unknown>) => (r.results as Array<{ votes: Array<{ prompt: string }> }>)[0]!.votes.map((v) => v.prompt);
    assert.deepEqual(votes(await ok(key, { ensemble: 'e' })), ['p1', 'p2']);
    assert.equal((await api(srv.url, 'DELETE', '/v1/tasks/sentiment/ensembles/e', { key })).status, 204);
    assert.deepEqual(await status(key, { ensemble: 'e' }), { status: 404, code: 'NOT_FOUND' });
    assert.equal((await api(srv.url, 'POST', '/v1/tasks/sentiment/ensembles/e', { key, json: { members: ['p2'] } })).status, 201);
    const one = await ok(key, { ensemble: 'e' }); // one member: answered as that prompt, no votes
    assert.deepEqual([one.ensemble, one.prompt], ['e', { name: 'p2', version: 1 }]);
  });
});

describe('CatalogCache', () => {
  const tenant = (id: string): Tenant => ({ id, name: id, createdAt: '2026-01-01T00:00:00Z' });
  const task = (tenantId: string, name: string): Task => ({ tenantId, name, createdAt: '2026-01-01T00:00:00Z', labels: ['a', 'b'], template: '{text}', scoring: { type: 'verbalizer', labelWords: [' a', ' b'] } } as unknown as Task);

  it('a read that overlapped a write is not cached', () => {
    const c = new CatalogCache();
    const seen = c.generation; // a read starts...
    c.invalidate({ entity: 'task', tenantId: 't1', task: 'x' }); // ...a write commits meanwhile...
    c.putTask(task('t1', 'x'), seen); // ...and its (possibly stale) answer is dropped
    assert.equal(c.task('t1', 'x'), undefined);
    c.putTask(task('t1', 'x'), c.generation);
    assert.ok(c.task('t1', 'x'));
  });

  it('events drop exactly their scope', () => {
    const c = new CatalogCache();
    const g = c.generation;
    c.putTenantForKey('k1', tenant('t1'), g);
    c.putTenantForKey('k2', tenant('t2'), g);
    for (const [t, x] of [['t1', 'x'], ['t1', 'y'], ['t2', 'x']] as const) {
      c.putTask(task(t, x), g);
      c.putResolution(t, x, '-', { task: task(t, x), ensemble: null, vote: null, versions: [] }, g);
    }
    c.invalidate({ entity: 'task', tenantId: 't1', task: 'x' });
    assert.deepEqual([c.task('t1', 'x'), c.resolution('t1', 'x', '-')], [undefined, undefined]);
    assert.ok(c.task('t1', 'y') && c.resolution('t1', 'y', '-') && c.task('t2', 'x') && c.tenantForKey('k1'));
    c.invalidate({ entity: 'key', tenantId: 't1' });
    assert.deepEqual([c.tenantForKey('k1'), c.tenantForKey('k2')?.id], [undefined, 't2']);
    assert.ok(c.task('t1', 'y'));
    c.invalidate({ entity: 'tenant', tenantId: 't2' });
    assert.deepEqual(c.stats(), { keys: 0, tasks: 1, resolutions: 1 });
  });

  it('a prompt event drops that prompt\'s selectors and the task\'s ensembles, nothing else', () => {
    const c = new CatalogCache();
    const g = c.generation;
    const r = { task: task('t1', 'x'), ensemble: null, vote: null, versions: [] };
    c.putTask(task('t1', 'x'), g);
    for (const sel of [{ prompt: 'p' }, { prompt: 'p', version: 2 }, { prompt: 'pp' }, { prompt: 'q' }, { ensemble: 'e' }, {}]) c.putResolution('t1', 'x', selectorKey(sel), r, g);
    c.putResolution('t1', 'y', selectorKey({ prompt: 'p' }), r, g);
    c.invalidate({ entity: 'prompt', tenantId: 't1', task: 'x', prompt: 'p' });
    const has = (t: string, sel: Parameters<typeof selectorKey>[0]) => c.resolution('t1', t, selectorKey(sel)) !== undefined;
    assert.deepEqual([has('x', { prompt: 'p' }), has('x', { prompt: 'p', version: 2 }), has('x', { ensemble: 'e' })], [false, false, false]);
    assert.deepEqual([has('x', { prompt: 'pp' }), has('x', { prompt: 'q' }), has('x', {}), has('y', { prompt: 'p' }), c.task('t1', 'x') !== undefined], [true, true, true, true, true]);
  });

  it('events that crossed a process boundary are checked', () => {
    assert.deepEqual(parseCatalogEvent({ entity: 'prompt', tenantId: 't', task: 'x', prompt: 'p' }), { entity: 'prompt', tenantId: 't', task: 'x', prompt: 'p' });
    assert.deepEqual(parseCatalogEvent({ entity: 'quota', tenantId: 't', extra: 1 }), { entity: 'quota', tenantId: 't' });
    for (const bad of [null, 'x', {}, { entity: 'task', tenantId: 't' }, { entity: 'prompt', tenantId: 't', task: 'x' }, { entity: 'nope', tenantId: 't' }, { entity: 'key', tenantId: 3 }]) {
      assert.equal(parseCatalogEvent(bad), null, JSON.stringify(bad));
    }
  });

  it('is bounded', () => {
    const c = new CatalogCache({ maxEntries: 3 });
    for (let i = 0; i < 10; i++) c.putTenantForKey(`k${i}`, tenant(`t${i}`), c.generation);
    assert.equal(c.stats().keys, 3);
    assert.ok(c.tenantForKey('k9') && !c.tenantForKey('k0'));
  });
});
