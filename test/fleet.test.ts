// The fleet on 127.0.0.1: one PostgreSQL, three serve replicas
// (SOFTSERVE_TRAINING=off) and two trainer processes, each a real child
// process started from package.json's scripts. What one replica writes, the
// others use; a trainer killed mid-job loses its lease and the other one
// finishes the job, published once; a replica killed mid-upload leaves
// nothing half-written; the database restarted under load is rejoined by
// every replica without a restart of its own.
//
// The "within 1 s" is measured by `npm run bench:fleet`
// (docs/BENCHMARKS.md); here each wait is for a state, bounded only so a
// hang fails, and the delays seen are printed.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import pg from 'pg';

import { buildPeft } from './peft-builders.ts';
import { startCluster, type PgCluster } from './postgres-cluster.ts';
import { startReplica, startTrainerProcess, waitFor, type Replica, type RoleProcess } from './role-process.ts';
import { ADMIN_KEY, api, classify } from './serving-helpers.ts';
import { peftForm } from './store-helpers.ts';
import { examples, isFinal, QUICK, runningAt, SENTIMENT, SPEC, submit, waitFor as waitForJob } from './training-helpers.ts';

const INPUTS = ['the movie was wonderful', 'a dull and tired story'];
const SERVE_ENV = { SOFTSERVE_TRAINING: 'off' };
/** Short leases so a killed trainer's job is taken over quickly (the takeover waits for states, not for this clock). */
const TRAINER_ENV = { SOFTSERVE_TRAINING_LEASE_MS: '2000', SOFTSERVE_TRAINING_HEARTBEAT_MS: '200', SOFTSERVE_TRAINING_POLL_MS: '100' };

let cluster: PgCluster | undefined;
let databaseUrl = '';
const replicas: Replica[] = [];
const trainers: RoleProcess[] = [];
let tenant = { id: '', key: '' };

before(async () => {
  cluster = await startCluster();
  databaseUrl = await cluster.createDatabase();
  // Replicas start together: migrations run once, under the advisory lock.
  // Replica 2 is clustered (a primary and two HTTP fronts, server/cluster/): every check below holds for it too.
  replicas.push(...(await Promise.all([1, 2, 3].map((i) => startReplica(databaseUrl, i === 2 ? { ...SERVE_ENV, SOFTSERVE_FRONT_WORKERS: '2' } : SERVE_ENV, `replica ${i}`)))));
  trainers.push(...(await Promise.all([1, 2].map((i) => startTrainerProcess(databaseUrl, TRAINER_ENV, `trainer ${i}`)))));
}, { timeout: 240_000 });

after(async () => {
  await Promise.all([...replicas, ...trainers].map((p) => p.kill()));
  await cluster?.stop();
});

/** Polls `probe` until it returns true; resolves with the milliseconds it took. */
async function until(probe: () => Promise<boolean>, what: string, deadlineMs = 15_000): Promise<number> {
  return (await waitFor(what, async () => ((await probe()) ? true : undefined), { deadlineMs, everyMs: 10 })).ms;
}

/** The trainer that logged claiming job `id` for attempt `attempt`. */
function claimedBy(id: string, attempt: number): Promise<RoleProcess> {
  return Promise.any(trainers.map(async (t) => {
    await t.waitForLog((l) => l.msg === 'training job claimed' && l.job === id && l.attempt === attempt, `claim of ${id}`, 150_000);
    return t;
  }));
}

async function uploadPeft(url: string, key: string, name: string, seed: number) {
  const files = buildPeft(SPEC, 'PROMPT_TUNING', 4, seed);
  return api(url, 'POST', `/v1/tasks/${SENTIMENT.name}/prompts`, { key, body: peftForm(name, files) });
}

/** A PEFT upload whose first half is sent (`started`) and the rest never: `outcome` says how it ended. */
function halfUpload(url: string, key: string, name: string): { started: Promise<void>; outcome: Promise<string> } {
  const form = new Response(peftForm(name, buildPeft(SPEC, 'PROMPT_TUNING', 4, 4242)));
  let started!: () => void;
  const startedP = new Promise<void>((resolve) => { started = resolve; });
  const outcome = (async () => {
    const body = new Uint8Array(await form.arrayBuffer());
    return new Promise<string>((resolve) => {
      const req = request(`${url}/v1/tasks/${SENTIMENT.name}/prompts`, {
        method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': form.headers.get('content-type')!, 'content-length': body.length },
      }, (res) => resolve(`answered ${res.statusCode}`));
      req.on('error', () => resolve('connection lost'));
      req.write(body.subarray(0, body.length >> 1), () => started());
    });
  })();
  return { started: startedP, outcome };
}

const [r1, r2, r3] = [0, 1, 2].map((i) => () => replicas[i]!);

test('a tenant made on replica 1 and a PEFT prompt uploaded on 2 classify on 3', { timeout: 60_000 }, async () => {
  const t = await api(r1().url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name: 'acme' } });
  assert.equal(t.status, 201, JSON.stringify(t.json));
  tenant = { id: t.json.id as string, key: t.json.api_key as string };
  const task = await api(r1().url, 'POST', '/v1/tasks', { key: tenant.key, json: SENTIMENT });
  assert.equal(task.status, 201, JSON.stringify(task.json));

  // Replica 3 has cached "no such prompt" paths before the upload: the upload must still show.
  assert.equal((await classify(r3().url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: 'peft' })).status, 404);
  const up = await uploadPeft(r2().url, tenant.key, 'peft', 7);
  assert.equal(up.status, 201, JSON.stringify(up.json));
  const uploadedAt = performance.now();
  const onTwo = await classify(r2().url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: 'peft' });
  assert.equal(onTwo.status, 200);
  let onThree: unknown;
  await until(async () => {
    const r = await classify(r3().url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: 'peft' });
    onThree = r.json.results;
    return r.status === 200;
  }, 'the prompt uploaded on replica 2 classifies on replica 3');
  console.log(`# upload on 2 -> classify on 3: ${(performance.now() - uploadedAt).toFixed(0)} ms`);
  assert.deepEqual(onThree, onTwo.json.results, 'the same scores on every replica');
});

test('a key revoked on replica 3 is refused by replica 1', { timeout: 60_000 }, async () => {
  const second = await api(r1().url, 'POST', `/v1/tenants/${tenant.id}/keys`, { key: ADMIN_KEY });
  assert.equal(second.status, 201);
  const key2 = second.json.api_key as string;
  // Replica 1 caches the key by using it.
  assert.equal((await classify(r1().url, key2, SENTIMENT.name, { inputs: INPUTS, prompt: 'peft' })).status, 200);
  const revoke = await api(r3().url, 'DELETE', `/v1/tenants/${tenant.id}/keys/${(second.json.key as { id: string }).id}`, { key: ADMIN_KEY });
  assert.equal(revoke.status, 204);
  const ms = await until(async () => (await classify(r1().url, key2, SENTIMENT.name, { inputs: INPUTS, prompt: 'peft' })).status === 401, 'replica 1 refuses the revoked key');
  console.log(`# revoke on 3 -> refused on 1: ${ms.toFixed(0)} ms`);
  assert.equal((await classify(r1().url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: 'peft' })).status, 200, 'the other key still works');
});

async function versionsOf(url: string, name: string): Promise<number> {
  const r = await api(url, 'GET', `/v1/tasks/${SENTIMENT.name}/prompts/${name}`, { key: tenant.key });
  return r.status === 200 ? (r.json.versions as unknown[]).length : 0;
}

test('a job submitted on replica 1 is trained by a trainer process and its prompt classifies on replica 2', { timeout: 180_000 }, async () => {
  const sub = await submit(r1().url, tenant.key, { prompt: 'trained', examples: examples(16), options: { ...QUICK, seed: 3 } });
  assert.equal(sub.status, 202, JSON.stringify(sub.json));
  const id = sub.json.id as string;
  const done = await waitForJob(r3().url, tenant.key, id, isFinal, 'finished');
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  const r = await classify(r2().url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: 'trained' });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  await claimedBy(id, 1);
  assert.ok(!replicas.some((p) => p.logs.some((l) => l.msg === 'training job claimed')), 'the replicas train nothing');
});

test('a trainer SIGKILLed mid-job: the other trainer finishes it, published once', { timeout: 240_000 }, async () => {
  const sub = await submit(r2().url, tenant.key, { prompt: 'survivor', examples: examples(40), options: { ...QUICK, epochs: 40, seed: 5 } });
  assert.equal(sub.status, 202, JSON.stringify(sub.json));
  const id = sub.json.id as string;
  const owner = await claimedBy(id, 1);
  // Wait until it is running with some progress, as any replica sees it.
  await waitForJob(r1().url, tenant.key, id, runningAt(1), 'running with progress');
  await owner.kill();
  const other = await claimedBy(id, 2);
  assert.notEqual(other, owner);
  const done = await waitForJob(r3().url, tenant.key, id, isFinal, 'finished after the kill');
  assert.equal(done.state, 'succeeded', JSON.stringify(done));
  assert.equal(done.attempts, 2, 'the killed attempt counts');
  assert.equal(await versionsOf(r1().url, 'survivor'), 1, 'published exactly once');
  assert.equal((await classify(r1().url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: 'survivor' })).status, 200);
  // Back to two trainers for what follows.
  trainers.splice(trainers.indexOf(owner), 1, await startTrainerProcess(databaseUrl, TRAINER_ENV, 'trainer 3'));
});

test('a replica SIGKILLed mid-upload: the others are unaffected and nothing is half-written', { timeout: 120_000 }, async () => {
  const victim = r3();
  const acknowledged: string[] = [];
  const uploads = Array.from({ length: 24 }, (_, i) => uploadPeft(victim.url, tenant.key, `burst-${i}`, 100 + i)
    .then((r) => { if (r.status === 201) acknowledged.push(`burst-${i}`); }, () => undefined));
  // One upload certainly mid-flight at the kill: half its body sent, the rest held back.
  const halfSent = halfUpload(victim.url, tenant.key, 'half-sent');
  await halfSent.started;
  // Kill once the first upload of the burst is acknowledged: others are mid-flight too.
  await until(async () => acknowledged.length > 0, 'a first upload is acknowledged', 60_000);
  await victim.kill();
  await Promise.all(uploads);
  console.log(`# replica killed with ${acknowledged.length} of 24 uploads acknowledged`);
  assert.equal(await halfSent.outcome, 'connection lost', 'the half-sent upload was never answered');
  assert.equal((await classify(r1().url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: 'half-sent' })).status, 404, 'nothing of it was stored');
  // The other replicas serve on, and see every acknowledged upload, whole.
  for (const name of ['peft', ...acknowledged]) {
    const r = await classify(r1().url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: name });
    assert.equal(r.status, 200, `${name}: ${JSON.stringify(r.json)}`);
  }
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const rows = await db.query<{ hash: string; bytes: Buffer }>('SELECT t.hash, t.bytes FROM prompt_versions v JOIN tensors t ON t.hash = v.tensor_hash');
    for (const row of rows.rows) assert.equal(createHash('sha256').update(row.bytes).digest('hex'), row.hash, 'every stored tensor matches its hash');
  } finally {
    await db.end();
  }
  replicas[2] = await startReplica(databaseUrl, SERVE_ENV, 'replica 3b');
  assert.equal((await classify(r3().url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: 'peft' })).status, 200);
});

test('the database restarted under load: replicas recover without a restart of their own', { timeout: 180_000 }, async () => {
  const pids = replicas.map((r) => r.child.pid);
  let stop = false;
  const statuses = new Map<number, number>();
  const load = replicas.map(async (r) => {
    while (!stop) {
      const res = await classify(r.url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: 'peft' }).catch(() => ({ status: 0 }));
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    }
  });
  await cluster!.restart();
  // After the restart, a write on one replica reaches the others (the listener reconnected and resynced).
  const up = await until(async () => (await uploadPeft(r1().url, tenant.key, 'after-restart', 999)).status === 201, 'an upload succeeds after the restart', 60_000);
  const ms = await until(async () => (await classify(r2().url, tenant.key, SENTIMENT.name, { inputs: INPUTS, prompt: 'after-restart' })).status === 200, 'replica 2 sees the post-restart upload');
  stop = true;
  await Promise.all(load);
  console.log(`# database restart: upload retried for ${up.toFixed(0)} ms, seen on replica 2 after ${ms.toFixed(0)} ms; classify statuses under load ${JSON.stringify([...statuses])}`);
  assert.deepEqual(replicas.map((r) => r.child.pid), pids, 'no replica restarted');
  for (const r of replicas) {
    assert.equal((await api(r.url, 'GET', '/readyz')).status, 200, `${r.name} is ready`);
    assert.equal(r.child.exitCode, null);
  }
  for (const t of trainers) assert.equal(t.child.exitCode, null, `${t.name} outlived the restart: ${t.stderr().slice(-2000)}`);
  assert.ok((statuses.get(200) ?? 0) > 0);
  assert.deepEqual([...statuses.keys()].filter((s) => s !== 200 && s !== 503), [], 'under a database restart, classify answers 200 (cached) or 503, nothing else');
});
