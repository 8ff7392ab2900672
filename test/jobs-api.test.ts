// The training job API on a real HTTP listener, a real prompt store and a real
// training worker thread (stories260k): validation with line numbers, the job
// lifecycle and what it publishes, ensembles, cancellation (queued and
// running), and what happens to jobs across a restart (crash: requeued, then
// failed after the attempt limit; graceful stop: requeued without counting).
// Jobs here are tiny (a few dozen examples, a few steps).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

import { loadCheckpoint } from '../models/checkpoint.ts';
import { familyOf } from '../models/families.ts';
import { PromptStore } from '../prompts/store.ts';
import { apiRoutes, createApp } from '../server/app.ts';
import { healthRoutes } from '../server/routes/system.ts';
import { DEFAULT_CONFIG, DEFAULT_TRAINING_CONFIG, promptLimits, type ServerConfig, type TrainingConfig } from '../server/config.ts';
import { jobsRoutes } from '../server/routes/jobs.ts';
import { TrainingManager } from '../server/training/manager.ts';

const STORIES = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));
const ADMIN = 'jobs-test-admin-key-0123456789';
const ckpt = loadCheckpoint(STORIES);
const SPEC = familyOf(ckpt).spec(ckpt);

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

interface Env {
  url: string;
  store: PromptStore;
  manager: TrainingManager;
  dataDir: string;
  close(): Promise<void>;
}

async function startEnv(training: Partial<TrainingConfig> = {}, dataDir?: string): Promise<Env> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'softserve-jobs-'));
  if (!dataDir) dirs.push(dir);
  const config: ServerConfig = { ...DEFAULT_CONFIG, adminKey: ADMIN, dataDir: dir, port: 0 };
  const store = PromptStore.open({ dataDir: dir, spec: SPEC, limits: promptLimits(config) });
  const manager = new TrainingManager({ store, modelDir: STORIES, config: { ...DEFAULT_TRAINING_CONFIG, niceness: 0, progressIntervalMs: 50, ...training } });
  await manager.start();
  const app = createApp({ store, spec: SPEC, config, routes: [healthRoutes(), ...apiRoutes(undefined, [jobsRoutes(manager)])] });
  const server: Server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, store, manager, dataDir: dir,
    async close() {
      await manager.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await store.close();
    },
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function call(env: Env, method: string, path: string, opts: { key?: string; json?: unknown; body?: BodyInit; type?: string } = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (opts.key) headers.authorization = `Bearer ${opts.key}`;
  let body = opts.body;
  if (opts.json !== undefined) { headers['content-type'] = 'application/json'; body = JSON.stringify(opts.json); }
  if (opts.type) headers['content-type'] = opts.type;
  const res = await fetch(env.url + path, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers };
}

async function tenant(env: Env, name: string): Promise<string> {
  return (await env.store.createTenant(name)).apiKey;
}

const SENTIMENT = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } };
const TOPIC = { name: 'topic', labels: ['animal', 'food', 'weather'], template: '{text}', scoring: { type: 'head', pooling: 'mean' } };

const POS = ['the dog was happy and played all day', 'she smiled at the sun', 'they had a lovely time at the park', 'the cake was sweet and good', 'he laughed with his friends'];
const NEG = ['the dog was sad and alone', 'she cried in the rain', 'they lost their toy and were upset', 'the food was cold and bad', 'he was angry at his brother'];
function sentimentExamples(n: number): Array<{ text: string; label: string }> {
  return Array.from({ length: n }, (_, i) => (i % 2 === 0 ? { text: POS[(i / 2) % POS.length]!, label: 'positive' } : { text: NEG[((i - 1) / 2) % NEG.length]!, label: 'negative' }));
}

async function waitFor(env: Env, key: string, id: string, pred: (job: { state: string; progress: { step: number } | null }) => boolean, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await call(env, 'GET', `/v1/jobs/${id}`, { key });
    assert.equal(r.status, 200);
    if (pred(r.json)) return r.json;
    if (Date.now() > deadline) assert.fail(`job ${id} did not reach the expected state: ${JSON.stringify(r.json.state)} ${JSON.stringify(r.json.error)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

const QUICK = { method: 'prompt_tuning', num_virtual_tokens: 4, epochs: 2, batch_size: 8 };

describe('job submission: validation', () => {
  it('refuses bad rows, listing each with its line (JSONL) or index (array)', async () => {
    const env = await startEnv();
    try {
      const key = await tenant(env, 'acme');
      await call(env, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      const jsonl = [
        JSON.stringify({ text: 'a fine day', label: 'positive' }),
        '{"text": "broken',
        JSON.stringify({ text: 'hello', label: 'neutral' }),
        '',
        JSON.stringify({ text: '   ', label: 'negative' }),
        JSON.stringify({ label: 'negative' }),
        JSON.stringify({ text: 'ok', label: 'negative' }),
      ].join('\n');
      const r = await call(env, 'POST', '/v1/tasks/sentiment/jobs', { key, json: { prompt: 'p', jsonl } });
      assert.equal(r.status, 422);
      assert.equal(r.json.error.code, 'INVALID_EXAMPLES');
      assert.deepEqual(r.json.error.details.errors.map((e: { line: number }) => e.line), [2, 3, 5, 6]);
      assert.match(r.json.error.details.errors[0].message, /not valid JSON/);
      assert.match(r.json.error.details.errors[1].message, /unknown label "neutral".*"negative", "positive"/);
      assert.match(r.json.error.details.errors[2].message, /empty text/);
      assert.match(r.json.error.details.errors[3].message, /missing "text"/);
      assert.match(r.json.error.message, /4 bad example rows: line 2/);

      const arr = await call(env, 'POST', '/v1/tasks/sentiment/jobs', { key, json: { prompt: 'p', examples: [{ text: 'x', label: 'positive' }, 'nope', { text: 'y', label: 'Positive' }] } });
      assert.equal(arr.status, 422);
      assert.deepEqual(arr.json.error.details.errors.map((e: { index: number }) => e.index), [1, 2]);

      // Raw JSONL body, same checks.
      const raw = await call(env, 'POST', '/v1/tasks/sentiment/jobs?prompt=p', { key, body: '{"text":"a","label":"positive"}\n{"text":"b"}\n', type: 'application/x-ndjson' });
      assert.equal(raw.status, 422);
      assert.deepEqual(raw.json.error.details.errors, [{ line: 2, message: 'missing "label"' }]);
      assert.equal(await env.manager.table.countActive(), 0, 'nothing was queued');
    } finally {
      await env.close();
    }
  });

  it('checks task, names, options, method and media type; bounds the body', async () => {
    const env = await startEnv({ maxUploadBytes: 4096 });
    try {
      const key = await tenant(env, 'acme');
      await call(env, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      const ok = sentimentExamples(4);
      const post = (json: unknown) => call(env, 'POST', '/v1/tasks/sentiment/jobs', { key, json });
      assert.equal((await call(env, 'POST', '/v1/tasks/nope/jobs', { key, json: { prompt: 'p', examples: ok } })).json.error.code, 'NOT_FOUND');
      assert.equal((await call(env, 'POST', '/v1/tasks/sentiment/jobs', { json: { prompt: 'p', examples: ok } })).status, 401);
      assert.equal((await post({ prompt: '../p', examples: ok })).json.error.code, 'INVALID_NAME');
      const badOpt = await post({ prompt: 'p', examples: ok, options: { learning_rate: -1 } });
      assert.equal(badOpt.status, 400);
      assert.match(badOpt.json.error.message, /options.learning_rate/);
      assert.match((await post({ prompt: 'p', examples: ok, options: { lr: 0.1 } })).json.error.message, /options.lr: unknown option/);
      assert.match((await post({ prompt: 'p', examples: ok, options: { method: 'p_tuning', encoder: 'none' } })).json.error.message, /needs an encoder/);
      const head = await post({ prompt: 'p', examples: ok, options: { method: 'linear_head' } });
      assert.equal(head.status, 422);
      assert.equal(head.json.error.code, 'INVALID_TASK');
      assert.equal((await post({ prompt: 'p', examples: ok, extra: 1 })).status, 400);
      assert.equal((await post({ prompt: 'p', examples: ok, ensemble: 'e' })).status, 400, 'ensemble without ensemble_size');
      assert.equal((await post({ prompt: 'p', examples: [ok[0]] })).json.error.code, 'INVALID_EXAMPLES');
      const big = await post({ prompt: 'p', examples: sentimentExamples(200) });
      assert.equal(big.status, 413);
      const xml = await call(env, 'POST', '/v1/tasks/sentiment/jobs', { key, body: '<x/>', type: 'application/xml' });
      assert.equal(xml.status, 415);
    } finally {
      await env.close();
    }
  });
});

describe('job lifecycle', () => {
  it('trains, reports progress and history, publishes one version (source training); others cannot see it', async () => {
    const env = await startEnv();
    try {
      const key = await tenant(env, 'acme');
      const other = await tenant(env, 'other');
      await call(env, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      const sub = await call(env, 'POST', '/v1/tasks/sentiment/jobs', { key, json: { prompt: 'mood', examples: sentimentExamples(24), options: QUICK } });
      assert.equal(sub.status, 202, JSON.stringify(sub.json));
      assert.equal(sub.headers.get('location'), `/v1/jobs/${sub.json.id}`);
      assert.ok(['queued', 'running'].includes(sub.json.state));
      assert.equal(sub.json.options.num_virtual_tokens, 4);
      assert.equal((await call(env, 'GET', `/v1/jobs/${sub.json.id}`, { key: other })).status, 404);
      const done = await waitFor(env, key, sub.json.id, (j) => j.state === 'succeeded' || j.state === 'failed');
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.equal(done.attempts, 1);
      assert.ok(done.progress.step >= 1 && done.progress.total_steps >= done.progress.step);
      assert.ok(done.progress.examples_per_sec > 0);
      assert.ok(done.history.length >= 2, 'held-out evaluations recorded');
      assert.ok(done.history.every((h: { held_out_accuracy: number }) => h.held_out_accuracy >= 0 && h.held_out_accuracy <= 1));
      assert.deepEqual(done.result.prompts.map((p: { name: string; version: number }) => [p.name, p.version]), [['mood', 1]]);
      const v = await env.store.getPromptVersion((await env.store.authenticate(key))!.id, 'sentiment', 'mood');
      assert.equal(v.source, 'training');
      assert.equal(v.kind, 'soft');
      assert.equal(v.numVirtualTokens, 4);
      const list = await call(env, 'GET', '/v1/tasks/sentiment/jobs', { key });
      assert.deepEqual(list.json.jobs.map((j: { id: string }) => j.id), [sub.json.id]);
      assert.equal((await call(env, 'GET', '/v1/jobs', { key: other })).json.jobs.length, 0);
      assert.equal((await call(env, 'POST', `/v1/jobs/${sub.json.id}/cancel`, { key })).status, 409, 'a finished job cannot be cancelled');
    } finally {
      await env.close();
    }
  });

  it('multipart JSONL upload with an ensemble: N prompts, then the ensemble of their latest versions', async () => {
    const env = await startEnv();
    try {
      const key = await tenant(env, 'acme');
      await call(env, 'POST', '/v1/tasks', { key, json: TOPIC });
      const texts: Record<string, string[]> = {
        animal: ['the cat sat', 'a dog ran', 'the bird sang', 'a fish swam'],
        food: ['she ate bread', 'the soup was hot', 'an apple pie', 'he cooked rice'],
        weather: ['it was raining', 'the sun was bright', 'snow fell all day', 'a cold wind blew'],
      };
      const jsonl = Object.entries(texts).flatMap(([label, ts]) => ts.map((text) => JSON.stringify({ text, label }))).join('\n');
      const form = new FormData();
      form.append('prompt', 'topic');
      form.append('ensemble', 'topics');
      form.append('options', JSON.stringify({ method: 'prefix_tuning', num_virtual_tokens: 2, epochs: 2, batch_size: 4, ensemble_size: 2 }));
      form.append('examples', new Blob([jsonl], { type: 'application/x-ndjson' }), 'train.jsonl');
      const sub = await call(env, 'POST', '/v1/tasks/topic/jobs', { key, body: form });
      assert.equal(sub.status, 202, JSON.stringify(sub.json));
      const done = await waitFor(env, key, sub.json.id, (j) => j.state === 'succeeded' || j.state === 'failed');
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.deepEqual(done.result.prompts.map((p: { name: string; seed: number }) => [p.name, p.seed]), [['topic-1', 0], ['topic-2', 1]]);
      assert.equal(done.result.ensemble, 'topics');
      const tenantId = (await env.store.authenticate(key))!.id;
      assert.deepEqual((await env.store.getEnsemble(tenantId, 'topic', 'topics')).members, [{ prompt: 'topic-1' }, { prompt: 'topic-2' }]);
      const member = await env.store.getPromptTensors(tenantId, 'topic', 'topic-1');
      assert.equal(member.kind, 'prefix');
      assert.ok(member.tensors.head, 'a head task publishes the head with the prefix');
      // Training again into the same ensemble adds versions; a different member set conflicts.
      const again = await call(env, 'POST', '/v1/tasks/topic/jobs', { key, json: { prompt: 'topic', ensemble: 'topics', jsonl, options: { method: 'linear_head', epochs: 1, ensemble_size: 3 } } });
      assert.equal(again.status, 409);
    } finally {
      await env.close();
    }
  });

  it('cancels a queued job at once and a running one at its next step; nothing is published', async () => {
    const env = await startEnv();
    try {
      const key = await tenant(env, 'acme');
      await call(env, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      const long = await call(env, 'POST', '/v1/tasks/sentiment/jobs', { key, json: { prompt: 'long', examples: sentimentExamples(40), options: { ...QUICK, epochs: 100 } } });
      const queued = await call(env, 'POST', '/v1/tasks/sentiment/jobs', { key, json: { prompt: 'later', examples: sentimentExamples(8), options: QUICK } });
      assert.equal(queued.json.state, 'queued');
      const c1 = await call(env, 'POST', `/v1/jobs/${queued.json.id}/cancel`, { key });
      assert.equal(c1.json.state, 'cancelled');
      await waitFor(env, key, long.json.id, (j) => j.state === 'running' && (j.progress?.step ?? 0) >= 2);
      const c2 = await call(env, 'POST', `/v1/jobs/${long.json.id}/cancel`, { key });
      assert.equal(c2.status, 200);
      assert.equal(c2.json.cancel_requested, true);
      const done = await waitFor(env, key, long.json.id, (j) => j.state !== 'running');
      assert.equal(done.state, 'cancelled');
      assert.ok(done.progress.step < done.progress.total_steps);
      assert.equal((await env.store.listPrompts((await env.store.authenticate(key))!.id, 'sentiment')).length, 0, 'nothing published');
    } finally {
      await env.close();
    }
  });
});

describe('jobs across restarts', () => {
  it('a job left running by a crash is requeued and completes; past the attempt limit it fails with the reason', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'softserve-jobs-restart-'));
    dirs.push(dataDir);
    let env = await startEnv({ enabled: false }, dataDir);
    const key = await tenant(env, 'acme');
    const tenantId = (await env.store.authenticate(key))!.id;
    await call(env, 'POST', '/v1/tasks', { key, json: SENTIMENT });
    // Training disabled: the API answers 503 and queues nothing; insert rows as a crashed process would leave them.
    assert.equal((await call(env, 'POST', '/v1/tasks/sentiment/jobs', { key, json: { prompt: 'p', examples: sentimentExamples(4) } })).status, 503);
    const task = await env.store.getTask(tenantId, 'sentiment');
    const base = {
      tenant_id: tenantId, task_name: 'sentiment', task_created_at: task.createdAt, ensemble_name: null,
      options: JSON.stringify({ ...QUICK, epochs: 1 }), examples: JSON.stringify(sentimentExamples(12).map((e) => [e.text, e.label === 'positive' ? 1 : 0])),
      validation: null, num_examples: 12, created_at: new Date().toISOString(),
    };
    await env.manager.table.insert({ ...base, id: 'job_crashed_once', prompt_name: 'once', state: 'queued' });
    await env.manager.table.insert({ ...base, id: 'job_crash_loop', prompt_name: 'loop', state: 'queued' });
    await env.manager.table.update('job_crashed_once', { state: 'running', attempts: 1 });
    await env.manager.table.update('job_crash_loop', { state: 'running', attempts: 3 });
    await env.close();

    env = await startEnv({ maxAttempts: 3 }, dataDir);
    try {
      const loop = await call(env, 'GET', '/v1/jobs/job_crash_loop', { key });
      assert.equal(loop.json.state, 'failed');
      assert.match(loop.json.error.message, /interrupted by a server restart after 3 attempts/);
      const done = await waitFor(env, key, 'job_crashed_once', (j) => j.state === 'succeeded' || j.state === 'failed');
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.equal(done.attempts, 2);
      assert.equal(done.events[0].type, 'requeued');
      assert.match(done.events[0].reason, /server restarted while the job was running/);
      assert.equal((await env.store.getPromptVersion(tenantId, 'sentiment', 'once')).version, 1);
    } finally {
      await env.close();
    }
  });

  it('a graceful stop puts the running job back in the queue without counting the attempt', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'softserve-jobs-stop-'));
    dirs.push(dataDir);
    let env = await startEnv({}, dataDir);
    const key = await tenant(env, 'acme');
    await call(env, 'POST', '/v1/tasks', { key, json: SENTIMENT });
    const sub = await call(env, 'POST', '/v1/tasks/sentiment/jobs', { key, json: { prompt: 'p', examples: sentimentExamples(40), options: { ...QUICK, epochs: 100 } } });
    await waitFor(env, key, sub.json.id, (j) => j.state === 'running' && (j.progress?.step ?? 0) >= 1);
    await env.close();
    env = await startEnv({ enabled: false }, dataDir);
    try {
      const j = await call(env, 'GET', `/v1/jobs/${sub.json.id}`, { key });
      assert.equal(j.json.state, 'queued');
      assert.equal(j.json.attempts, 0);
      assert.match(j.json.events.at(-1).reason, /shut down while the job was running/);
    } finally {
      await env.close();
    }
  });
});
