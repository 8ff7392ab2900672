// A clustered server (SOFTSERVE_FRONT_WORKERS=2) as `npm start` runs it: one
// primary process with the model, the scheduler and the training runner, two
// HTTP fronts sharing the port. Each request below opens its own connection,
// and the primary hands connections to the fronts in turn, so both fronts
// answer; which one did is read from its request log line (`front`).
// Checked: answers equal a single-process server's; a write through one
// front is seen by the other at once (catalog changes cross over IPC); a job
// queued on a front runs in the primary and its prompt serves; /metrics and
// usage count every process; a killed front is replaced; SIGTERM stops all.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { readFileSync, rmSync } from 'node:fs';

import { startRole, waitFor, type RoleProcess } from './role-process.ts';
import { ADMIN_KEY, STORIES_DIR, classify, createTask, createTenant, nested, startServingServer, uploadPrompt } from './serving-helpers.ts';
import { tempDir } from './store-helpers.ts';

const TASK = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' bad', ' good'] } };
const INPUTS = ['a happy day in the park', 'the cat was sad and cold'];
const H = 64;

let primary: RoleProcess;
let url: string;
let key: string;
let tenantId: string;
const dataDir = tempDir('cluster');

interface Answer { status: number; json: Record<string, unknown>; requestId: string }

/** One request on a connection of its own (no keep-alive: the next request may reach the other front). */
function call(method: string, path: string, opts: { key?: string; json?: unknown } = {}): Promise<Answer> {
  const body = opts.json === undefined ? undefined : JSON.stringify(opts.json);
  return new Promise((resolve, reject) => {
    const req = request(url + path, {
      method, agent: false,
      headers: {
        connection: 'close',
        ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}),
        ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        if ((res.headers['content-type'] ?? '').includes('json') && text) json = JSON.parse(text) as Record<string, unknown>;
        resolve({ status: res.statusCode!, json, requestId: String(res.headers['x-request-id']) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Which front answered: from its request log line. */
async function frontOf(a: Answer): Promise<number> {
  const line = await primary.waitForLog((l) => l.request_id === a.requestId && l.msg === 'request', `request log of ${a.requestId}`, 10_000);
  return line.front as number;
}

/** The primary's front processes: its children running the server's entry (tsx may also have an esbuild child while it compiles). */
function childPids(): number[] {
  let pids: number[];
  try {
    pids = execFileSync('pgrep', ['-P', String(primary.child.pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
  return pids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('server/main.ts');
    } catch {
      return false; // gone meanwhile
    }
  });
}

before(async () => {
  primary = startRole({
    name: 'cluster', script: 'start',
    env: {
      SOFTSERVE_FRONT_WORKERS: '2', SOFTSERVE_DATA_DIR: dataDir, SOFTSERVE_ADMIN_KEY: ADMIN_KEY, SOFTSERVE_MODEL_DIR: STORIES_DIR,
      SOFTSERVE_INTRA_OP_THREADS: '1', SOFTSERVE_TRAINING_THREADS: '1', SOFTSERVE_HOST: '127.0.0.1', SOFTSERVE_PORT: '0',
    },
  });
  const listening = await primary.waitForLog((l) => l.msg === 'listening' && l.fronts === 2, 'primary listening', 120_000);
  url = listening.url as string;
  const t = await call('POST', '/v1/tenants', { key: ADMIN_KEY, json: { name: 'acme' } });
  assert.equal(t.status, 201, JSON.stringify(t.json));
  key = t.json.api_key as string;
  tenantId = t.json.id as string;
});

after(async () => {
  if (primary.child.exitCode === null) await primary.kill();
  rmSync(dataDir, { recursive: true, force: true });
});

test('both fronts answer, and their scores equal a single-process server\'s', async () => {
  await createTask(url, key, TASK);
  const tensor = nested([4, H], 7);
  await uploadPrompt(url, key, 'sentiment', { name: 'p1', kind: 'soft', tensor });
  const fronts = new Set<number>();
  const answers: Answer[] = [];
  for (let i = 0; i < 6; i++) {
    const a = await call('POST', '/v1/tasks/sentiment/classify', { key, json: { inputs: INPUTS, prompt: 'p1' } });
    assert.equal(a.status, 200, JSON.stringify(a.json));
    answers.push(a);
    fronts.add(await frontOf(a));
  }
  assert.deepEqual([...fronts].sort(), [0, 1], 'connections reach both fronts');

  // The same prompt and inputs on a single-process server (the same engine, each request alone in its batch).
  const single = await startServingServer({ serving: { intraOpThreads: 1 } });
  try {
    const k = await createTenant(single.url, 'x');
    await createTask(single.url, k, TASK);
    await uploadPrompt(single.url, k, 'sentiment', { name: 'p1', kind: 'soft', tensor });
    const ref = (await classify(single.url, k, 'sentiment', { inputs: INPUTS, prompt: 'p1' })).json as { results: Array<{ label: string; scores: Record<string, number> }> };
    for (const a of answers) {
      const results = a.json.results as Array<{ label: string; scores: Record<string, number> }>;
      results.forEach((r, i) => {
        assert.equal(r.label, ref.results[i]!.label);
        // Same graph, same batch of one request: only float32 summation order could differ, and it does not here.
        for (const l of TASK.labels) assert.ok(Math.abs(r.scores[l]! - ref.results[i]!.scores[l]!) <= 1e-6, `${l}: ${r.scores[l]} vs ${ref.results[i]!.scores[l]}`);
      });
    }
  } finally {
    await single.close();
  }
});

test('a write through one front is seen by the other at once', async () => {
  // Both fronts have p1 v1 cached as "the latest p1" (previous test). A new version, uploaded through one of them:
  const up = await call('POST', '/v1/tasks/sentiment/prompts', { key, json: { name: 'p1', kind: 'soft', tensor: nested([4, H], 8) } });
  assert.equal(up.status, 201, JSON.stringify(up.json));
  assert.equal(up.json.version, 2);
  const writer = await frontOf(up);
  const fronts = new Set<number>();
  for (let i = 0; i < 4; i++) {
    const a = await call('POST', '/v1/tasks/sentiment/classify', { key, json: { inputs: INPUTS, prompt: 'p1' } });
    assert.equal(a.status, 200);
    assert.deepEqual(a.json.prompt, { name: 'p1', version: 2 }, 'every front resolves the latest version');
    fronts.add(await frontOf(a));
  }
  assert.ok(fronts.has(1 - writer), 'the front that did not write answered too');
  // A deletion, likewise.
  const del = await call('DELETE', '/v1/tasks/sentiment/prompts/p1', { key });
  assert.equal(del.status, 204);
  for (let i = 0; i < 4; i++) {
    const a = await call('POST', '/v1/tasks/sentiment/classify', { key, json: { inputs: INPUTS, prompt: 'p1' } });
    assert.equal(a.status, 404, JSON.stringify(a.json));
  }
});

test('a job queued on a front runs in the primary, and its prompt serves from every front', async () => {
  const examples = Array.from({ length: 24 }, (_, i) => ({ text: `${i % 2 ? 'good fun happy' : 'bad sad awful'} ${i}`, label: i % 2 ? 'positive' : 'negative' }));
  const job = await call('POST', '/v1/tasks/sentiment/jobs', { key, json: { prompt: 'trained', options: { method: 'prompt_tuning', num_virtual_tokens: 4, epochs: 1, batch_size: 8 }, examples } });
  assert.equal(job.status, 202, JSON.stringify(job.json));
  await waitFor('job succeeded', async () => {
    const j = await call('GET', `/v1/jobs/${job.json.id as string}`, { key });
    assert.notEqual(j.json.state, 'failed', JSON.stringify(j.json));
    return j.json.state === 'succeeded' ? true : undefined;
  }, { deadlineMs: 60_000, everyMs: 200 });
  // Run by the primary's runner: its log line has no `front`.
  const done = await primary.waitForLog((l) => l.job === job.json.id && l.msg === 'training job claimed', 'job claimed log');
  assert.equal(done.front, undefined);
  for (let i = 0; i < 2; i++) {
    const a = await call('POST', '/v1/tasks/sentiment/classify', { key, json: { inputs: INPUTS, prompt: 'trained' } });
    assert.equal(a.status, 200, JSON.stringify(a.json));
  }
});

test('/metrics and usage count the requests of every process', async () => {
  const before = await call('GET', `/v1/tenants/${tenantId}/usage`, { key: ADMIN_KEY });
  for (let i = 0; i < 4; i++) assert.equal((await call('POST', '/v1/tasks/sentiment/classify', { key, json: { inputs: INPUTS } })).status, 200);
  const afterUsage = await call('GET', `/v1/tenants/${tenantId}/usage`, { key: ADMIN_KEY });
  assert.equal((afterUsage.json.classify_requests as number) - (before.json.classify_requests as number), 4);
  assert.equal((afterUsage.json.rows as number) - (before.json.rows as number), 4 * INPUTS.length);

  const text = await (await fetch(`${url}/metrics`)).text();
  const classified = Number(/^softserve_http_requests_total\{route="\/v1\/tasks\/:id\/classify",method="POST",status="200"\} (\d+)$/m.exec(text)?.[1]);
  assert.equal(classified, afterUsage.json.classify_requests, 'the classify counter sums both fronts');
  // The scheduler's and the engine's metrics come from the primary.
  assert.match(text, /^softserve_inference_worker_up 1$/m);
  const batchedRows = Number(/^softserve_batch_rows_sum (\d+)$/m.exec(text)?.[1]);
  assert.ok(batchedRows >= (afterUsage.json.rows as number), `${batchedRows} rows in batches`);
});

test('a front that dies is replaced, and the server keeps answering', async () => {
  const pids = childPids();
  assert.equal(pids.length, 2, `two fronts: ${pids.join(', ')}`);
  process.kill(pids[0]!, 'SIGKILL');
  await primary.waitForLog((l) => l.msg === 'front worker died; starting another', 'front died log');
  await waitFor('a replacement front', async () => {
    const now = childPids();
    return now.length === 2 && !now.includes(pids[0]!) ? true : undefined;
  }, { deadlineMs: 60_000, everyMs: 100 });
  // The replacement listens once it has logged so; until then the other front takes every connection.
  const frontsListening = () => primary.logs.filter((x) => x.msg === 'front listening').length;
  await primary.waitForLog(() => frontsListening() >= 3, 'the replacement front listening', 60_000);
  for (let i = 0; i < 4; i++) assert.equal((await call('POST', '/v1/tasks/sentiment/classify', { key, json: { inputs: INPUTS } })).status, 200);
});

test('SIGTERM stops the fronts and the primary', async () => {
  const pids = childPids();
  assert.equal(await primary.stop(), 0, primary.stderr());
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), 'front process gone');
});

test('with SOFTSERVE_TRAINING=off and SQLite, a front refuses jobs as one process does (no process would run them)', async () => {
  const dir = tempDir('cluster-notrain');
  const off = startRole({
    name: 'cluster-notrain', script: 'start',
    env: {
      SOFTSERVE_FRONT_WORKERS: '2', SOFTSERVE_TRAINING: 'off', SOFTSERVE_DATA_DIR: dir, SOFTSERVE_ADMIN_KEY: ADMIN_KEY, SOFTSERVE_MODEL_DIR: STORIES_DIR,
      SOFTSERVE_INTRA_OP_THREADS: '1', SOFTSERVE_HOST: '127.0.0.1', SOFTSERVE_PORT: '0',
    },
  });
  try {
    const offUrl = (await off.waitForLog((l) => l.msg === 'listening' && l.fronts === 2, 'listening', 120_000)).url as string;
    const offKey = await createTenant(offUrl, 'x');
    await createTask(offUrl, offKey, TASK);
    const examples = Array.from({ length: 8 }, (_, i) => ({ text: `text ${i}`, label: i % 2 ? 'positive' : 'negative' }));
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${offUrl}/v1/tasks/sentiment/jobs`, { method: 'POST', headers: { authorization: `Bearer ${offKey}`, 'content-type': 'application/json', connection: 'close' }, body: JSON.stringify({ prompt: 'p', examples }) });
      const body = await r.json() as { error?: { code: string } };
      assert.equal(r.status, 503, JSON.stringify(body));
      assert.equal(body.error?.code, 'NOT_READY');
    }
    assert.equal(await off.stop(), 0, off.stderr());
  } finally {
    if (off.child.exitCode === null) await off.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
