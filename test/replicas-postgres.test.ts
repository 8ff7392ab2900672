// Two serve replicas (server/main.ts children) on one real PostgreSQL: what
// one replica writes, the other uses or refuses (its caches invalidated by
// LISTEN/NOTIFY), with no restart; the database stopped: cached work is
// still served, what needs the database is a 503 STORE_UNAVAILABLE, /readyz
// stays ready; the database restarted: both replicas reconnect by themselves,
// drop their caches (notifications may have been missed) and see new writes.
// Each wait polls for the state with a generous deadline and reports the
// delay it measured (the 1 s target is measured by `npm run bench:fleet`).

import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';

import { startCluster, type PgCluster } from './postgres-cluster.ts';
import { startReplica, waitFor, type Replica } from './role-process.ts';
import { ADMIN_KEY, api, classify, createTask, nested, uploadPrompt } from './serving-helpers.ts';

const H = 64; // stories260k
const TASK = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } };
const INPUTS = ['the movie was wonderful', 'a dull and tired story'];
const soft = (seed: number) => ({ name: 'soft', kind: 'soft', tensor: nested([4, H], seed, 2) });

let cluster: PgCluster | undefined;
let a: Replica | undefined;
let b: Replica | undefined;

before(async () => {
  cluster = await startCluster();
  const url = await cluster.createDatabase();
  // Training is not what this file is about: no trainer polls the database it stops.
  a = await startReplica(url);
  b = await startReplica(url);
}, { timeout: 240_000 });

after(async () => {
  try {
    await Promise.all([a?.stop(), b?.stop()]);
  } finally {
    await cluster?.stop();
  }
});

function replicas(): [Replica, Replica, PgCluster] {
  if (!a || !b || !cluster) throw new Error('set-up failed');
  return [a, b, cluster];
}

async function newTenant(r: Replica, name: string): Promise<{ id: string; key: string }> {
  const res = await api(r.url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name } });
  assert.equal(res.status, 201, JSON.stringify(res.json));
  return { id: res.json.id as string, key: res.json.api_key as string };
}

/** The classify answer's status, error code and prompt version. */
async function probe(r: Replica, key: string, body: Record<string, unknown>, task = 'sentiment') {
  const res = await classify(r.url, key, task, { inputs: INPUTS, ...body });
  const j = res.json as { error?: { code: string }; prompt?: { version: number } | null; results?: Array<{ label: string }> };
  return { status: res.status, code: j?.error?.code, version: j?.prompt?.version, labels: j?.results?.map((x) => x.label), headers: res.headers };
}

function report(t: TestContext, what: string, ms: number): void {
  t.diagnostic(`${what}: ${ms.toFixed(1)} ms`);
}

test('a prompt uploaded through A classifies on B, and a new version replaces the one B cached', { timeout: 60_000 }, async (t) => {
  const [A, B] = replicas();
  const { key } = await newTenant(A, 'acme');
  await createTask(A.url, key, TASK);
  // B has resolved the task (cached) and found no prompt (not cached).
  assert.equal((await probe(B, key, {})).status, 200);
  assert.equal((await probe(B, key, { prompt: 'soft' })).code, 'NOT_FOUND');

  assert.equal(await uploadPrompt(A.url, key, 'sentiment', soft(1)), 1);
  const v1 = await waitFor('B classifies the prompt uploaded on A', async () => ((await probe(B, key, { prompt: 'soft' })).status === 200 ? true : undefined));
  report(t, 'upload on A -> classify on B', v1.ms);
  assert.equal((await probe(B, key, { prompt: 'soft' })).version, 1, 'B now serves v1 (cached)');

  assert.equal(await uploadPrompt(A.url, key, 'sentiment', soft(2)), 2);
  const v2 = await waitFor('B serves the new latest version', async () => ((await probe(B, key, { prompt: 'soft' })).version === 2 ? true : undefined));
  report(t, 'new version on A -> latest on B', v2.ms);
});

test('a key revoked on B is refused by A', { timeout: 60_000 }, async (t) => {
  const [A, B] = replicas();
  const { id, key } = await newTenant(A, 'revoked-co');
  await createTask(A.url, key, TASK);
  const extra = await api(A.url, 'POST', `/v1/tenants/${id}/keys`, { key: ADMIN_KEY });
  assert.equal(extra.status, 201);
  const second = extra.json.api_key as string;
  const keyId = (extra.json.key as { id: string }).id;
  assert.equal((await probe(A, second, {})).status, 200, 'A has the key cached');

  assert.equal((await api(B.url, 'DELETE', `/v1/tenants/${id}/keys/${keyId}`, { key: ADMIN_KEY })).status, 204);
  const gone = await waitFor('A refuses the revoked key', async () => {
    const p = await probe(A, second, {});
    return p.status === 401 ? p.code : undefined;
  });
  assert.equal(gone.value, 'UNAUTHORIZED');
  report(t, 'revoke on B -> refused on A', gone.ms);
  assert.equal((await probe(A, key, {})).status, 200, 'the tenant\'s other key still works');
});

test('a tenant deleted on A is refused by B', { timeout: 60_000 }, async (t) => {
  const [A, B] = replicas();
  const { id, key } = await newTenant(A, 'doomed');
  await createTask(A.url, key, TASK);
  await uploadPrompt(A.url, key, 'sentiment', soft(3));
  await waitFor('B serves the doomed tenant', async () => ((await probe(B, key, { prompt: 'soft' })).status === 200 ? true : undefined));

  assert.equal((await api(A.url, 'DELETE', `/v1/tenants/${id}`, { key: ADMIN_KEY })).status, 204);
  const gone = await waitFor('B refuses the deleted tenant', async () => {
    const p = await probe(B, key, { prompt: 'soft' });
    return p.status === 401 ? true : undefined;
  });
  report(t, 'tenant deleted on A -> refused on B', gone.ms);
});

test('a task deleted and re-created with other labels through A is seen by B', { timeout: 60_000 }, async (t) => {
  const [A, B] = replicas();
  const { key } = await newTenant(A, 'relabel');
  await createTask(A.url, key, TASK);
  const before = await probe(B, key, {});
  assert.equal(before.status, 200);
  for (const l of before.labels!) assert.ok(TASK.labels.includes(l));

  assert.equal((await api(A.url, 'DELETE', '/v1/tasks/sentiment', { key })).status, 204);
  await createTask(A.url, key, { ...TASK, labels: ['bad', 'good'] });
  const seen = await waitFor('B answers with the new labels', async () => {
    const p = await probe(B, key, {});
    return p.status === 200 && p.labels!.every((l) => l === 'bad' || l === 'good') ? true : undefined;
  });
  report(t, 'task re-created on A -> new labels on B', seen.ms);
});

test('a tenant quota changed on A is what B admits by', { timeout: 60_000 }, async (t) => {
  const [A, B] = replicas();
  const { id } = await newTenant(A, 'weighty');
  const patch = await api(A.url, 'PATCH', `/v1/tenants/${id}`, { key: ADMIN_KEY, json: { weight: 7, limits: { max_rows: 3 } } });
  assert.equal(patch.status, 200, JSON.stringify(patch.json));
  const seen = await waitFor('B holds the new quota', async () => {
    const q = (await api(B.url, 'GET', `/v1/tenants/${id}/quota`, { key: ADMIN_KEY })).json as { weight: number; limits: { max_rows: number } };
    return q.weight === 7 && q.limits.max_rows === 3 ? true : undefined;
  });
  report(t, 'quota on A -> B', seen.ms);
});

test('the database stopped: cached work is served, the rest is 503 STORE_UNAVAILABLE; restarted: both recover and resync', { timeout: 120_000 }, async (t) => {
  const [A, B, pg] = replicas();
  const { key } = await newTenant(A, 'outage');
  await createTask(A.url, key, TASK);
  await uploadPrompt(A.url, key, 'sentiment', soft(4));
  await uploadPrompt(A.url, key, 'sentiment', soft(5));
  // Cached on both: the tenant's key, the task, the latest version of 'soft'.
  await waitFor('both serve v2', async () => ((await probe(A, key, { prompt: 'soft' })).version === 2 && (await probe(B, key, { prompt: 'soft' })).version === 2 ? true : undefined));
  assert.equal(await A.metric('softserve_catalog_listener_connected'), 1);
  const resyncsBefore = await B.metric('softserve_catalog_resyncs_total');

  // Uploads keep coming on A while the database goes down (some are mid-transaction then): each is
  // answered 201 or 503 STORE_UNAVAILABLE, and the process stays up.
  let churning = true;
  const answers: string[] = [];
  const churn = (async () => {
    for (let i = 0; churning; i++) {
      const r = await api(A.url, 'POST', '/v1/tasks/sentiment/prompts', { key, json: { ...soft(100 + i), name: 'churn' } });
      answers.push(r.status === 201 ? '201' : `${r.status} ${(r.json as { error?: { code: string } } | null)?.error?.code}`);
    }
  })();
  await waitFor('uploads are flowing', async () => (answers.length > 0 ? true : undefined));
  await pg.stopServer();
  try {
    await waitFor('an upload is refused', async () => (answers.some((x) => x !== '201') ? true : undefined));
    churning = false;
    await churn;
    for (const x of answers) assert.ok(x === '201' || x === '503 STORE_UNAVAILABLE', `upload answered ${x}`);
    t.diagnostic(`uploads during the stop: ${answers.filter((x) => x === '201').length} stored, ${answers.length - answers.filter((x) => x === '201').length} refused`);
    const down = await waitFor('A notices the database is gone', async () => ((await A.metric('softserve_catalog_listener_connected')) === 0 ? true : undefined));
    report(t, 'database stopped -> listener down on A', down.ms);
    const cached = await probe(A, key, { prompt: 'soft' });
    assert.deepEqual([cached.status, cached.version], [200, 2], 'a cached prompt still classifies');
    assert.equal((await probe(B, key, { prompt: 'soft' })).status, 200);
    const ready = await api(A.url, 'GET', '/readyz');
    assert.equal(ready.status, 200, 'still ready: it can serve what it has cached');
    // Version 1 was never asked for: resolving it needs the database.
    const uncached = await probe(A, key, { prompt: 'soft', version: 1 });
    assert.deepEqual([uncached.status, uncached.code], [503, 'STORE_UNAVAILABLE']);
    assert.ok(Number(uncached.headers.get('retry-after')) >= 1, 'with Retry-After');
    const write = await api(A.url, 'POST', '/v1/tasks/sentiment/prompts', { key, json: soft(6) });
    assert.deepEqual([write.status, (write.json as { error: { code: string } }).error.code], [503, 'STORE_UNAVAILABLE']);
    const unknownKey = await probe(A, 'ssk_not-a-key-that-is-cached', {});
    assert.deepEqual([unknownKey.status, unknownKey.code], [503, 'STORE_UNAVAILABLE']);
  } finally {
    await pg.startServer();
  }

  const up = await waitFor('both listeners reconnect', async () => ((await A.metric('softserve_catalog_listener_connected')) === 1 && (await B.metric('softserve_catalog_listener_connected')) === 1 ? true : undefined), { deadlineMs: 20_000 });
  report(t, 'database started -> both listeners up', up.ms);
  assert.ok(await B.metric('softserve_catalog_resyncs_total') > resyncsBefore, 'B dropped its caches on reconnect');
  assert.equal((await probe(A, key, { prompt: 'soft', version: 1 })).version, 1, 'A reads the database again');
  assert.equal(await uploadPrompt(A.url, key, 'sentiment', soft(7)), 3);
  const seen = await waitFor('B serves the version uploaded after the restart', async () => ((await probe(B, key, { prompt: 'soft' })).version === 3 ? true : undefined));
  report(t, 'upload after restart on A -> B', seen.ms);
  assert.equal(A.child.exitCode, null, 'A never exited');
  assert.equal(B.child.exitCode, null, 'B never exited');
});
