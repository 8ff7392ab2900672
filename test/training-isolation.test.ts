// Tenant isolation on the training side, on a real HTTP listener, a real
// store and a real training worker thread (stories260k, tiny jobs):
// - the memory budget: jobs over it are refused at submit with the limit,
//   the estimate and what to reduce; a running job whose memory grows over
//   the ceiling is stopped (TRAINING_MEMORY_LIMIT);
// - the queue is round-robin across tenants, with per-tenant limits on active
//   jobs and on training time (429 + Retry-After);
// - a job is bound to its task: deleted and re-created under the same name,
//   the task gets nothing (TASK_DELETED);
// - the training worker dying mid-job: the job is requeued with an event, the
//   worker restarts, serving answers throughout; past the attempt limit the
//   job fails.
// Every wait is for a state the server reports (job state, progress, events).

import assert from 'node:assert/strict';
import { rmSync, mkdtempSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

import { loadCheckpoint } from '../models/checkpoint.ts';
import { familyOf } from '../models/families.ts';
import { PromptStore } from '../prompts/store.ts';
import { createApp } from '../server/app.ts';
import { DEFAULT_CONFIG, promptLimits, type ServerConfig } from '../server/config.ts';
import { jobsExtension } from '../server/routes/jobs.ts';
import { DEFAULT_TRAINING_CONFIG, type TrainingConfig } from '../server/training/config.ts';
import { TrainingManager } from '../server/training/manager.ts';
import { createTask, createTenant, startServingServer, uploadPrompt, nested } from './serving-helpers.ts';
import { api } from './store-helpers.ts';

const STORIES = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));
const ADMIN = 'iso-training-admin-key-0123456789';
const ckpt = loadCheckpoint(STORIES);
const SPEC = familyOf(ckpt).spec(ckpt);

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

interface Env { url: string; store: PromptStore; manager: TrainingManager; close(): Promise<void> }

async function startEnv(training: Partial<TrainingConfig> = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'softserve-iso-'));
  dirs.push(dir);
  const config: ServerConfig = { ...DEFAULT_CONFIG, adminKey: ADMIN, dataDir: dir, port: 0 };
  const store = PromptStore.open({ dataDir: dir, spec: SPEC, limits: promptLimits(config) });
  const manager = new TrainingManager({ store, modelDir: STORIES, spec: SPEC, config: { ...DEFAULT_TRAINING_CONFIG, niceness: 0, progressIntervalMs: 50, ...training } });
  manager.start();
  const app = createApp({ store, spec: SPEC, config, extensions: [jobsExtension(manager)] });
  const server: Server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, store, manager,
    async close() {
      await manager.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      store.close();
    },
  };
}

const SENTIMENT = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } };
const POS = ['the dog was happy and played all day', 'she smiled at the sun', 'they had a lovely time at the park', 'the cake was sweet and good'];
const NEG = ['the dog was sad and alone', 'she cried in the rain', 'they lost their toy and were upset', 'the food was cold and bad'];
function examples(n: number): Array<{ text: string; label: string }> {
  return Array.from({ length: n }, (_, i) => (i % 2 === 0 ? { text: POS[(i / 2) % POS.length]!, label: 'positive' } : { text: NEG[((i - 1) / 2) % NEG.length]!, label: 'negative' }));
}
/** Texts of about `bytes` bytes (so the budget's text bound is that long). */
function longExamples(n: number, bytes: number): Array<{ text: string; label: string }> {
  return examples(n).map((e) => ({ ...e, text: `${e.text} `.repeat(Math.ceil(bytes / (e.text.length + 1))).slice(0, bytes).trim() }));
}

const QUICK = { method: 'prompt_tuning', num_virtual_tokens: 4, epochs: 1, batch_size: 8 };
const LONG = { ...QUICK, epochs: 100 };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Job = any;

async function job(url: string, key: string, id: string): Promise<Job> {
  const r = await api(url, 'GET', `/v1/jobs/${id}`, { key });
  assert.equal(r.status, 200);
  return r.json;
}

/** Polls the job's own state until `pred` holds (the bound only turns a hang into a failure). */
async function waitFor(url: string, key: string, id: string, pred: (j: Job) => boolean, what: string): Promise<Job> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const j = await job(url, key, id);
    if (pred(j)) return j;
    if (Date.now() > deadline) assert.fail(`job ${id} never reached "${what}": state ${j.state}, error ${JSON.stringify(j.error)}, events ${JSON.stringify(j.events)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const isFinal = (j: Job) => ['succeeded', 'failed', 'cancelled'].includes(j.state);
const runningAt = (step: number) => (j: Job) => j.state === 'running' && (j.progress?.step ?? 0) >= step;

async function submit(url: string, key: string, body: Record<string, unknown>) {
  return api(url, 'POST', '/v1/tasks/sentiment/jobs', { key, json: body });
}

describe('training memory budget', () => {
  it('refuses a job over the budget at submit, naming the limit, the estimate and what to reduce; queues nothing', async () => {
    const env = await startEnv({ memoryMb: 1024, maxBatchTokens: 1_000_000 });
    try {
      const key = env.store.createTenant('acme').apiKey;
      await api(env.url, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      // The job: 256 virtual tokens, 250 text tokens, and the largest batch the options allow.
      const big = await submit(env.url, key, { prompt: 'big', examples: longExamples(16, 1200), options: { num_virtual_tokens: 256, max_text_tokens: 250, batch_size: 512 } });
      assert.equal(big.status, 422);
      const err = (big.json as Job).error;
      assert.equal(err.code, 'TRAINING_MEMORY_BUDGET');
      assert.match(err.message, /the limit is 1024 MB \(SOFTSERVE_TRAINING_MEMORY_MB\)/);
      assert.match(err.message, /reduce batch_size, max_text_tokens or num_virtual_tokens/);
      assert.ok(err.details.estimate_mb > 1024, JSON.stringify(err.details));
      assert.ok(err.details.largest_batch_size >= 1 && err.details.largest_batch_size < 512);
      assert.match(err.message, new RegExp(`batch_size ${err.details.largest_batch_size} would fit`));

      // The suggested batch size is accepted, with its estimate under the limit (queued behind a small job, never run).
      const blocker = (await submit(env.url, key, { prompt: 'blocker', examples: examples(40), options: LONG })).json as Job;
      const fits = await submit(env.url, key, { prompt: 'fits', examples: longExamples(16, 1200), options: { num_virtual_tokens: 256, max_text_tokens: 250, batch_size: err.details.largest_batch_size, epochs: 1 } });
      assert.equal(fits.status, 202, JSON.stringify(fits.json));
      const view = fits.json as Job;
      assert.ok(view.memory.estimate_mb <= 1024 && view.memory.limit_mb === 1024, JSON.stringify(view.memory));
      assert.equal(view.state, 'queued');
      await api(env.url, 'POST', `/v1/jobs/${view.id}/cancel`, { key });
      const listed = await api(env.url, 'GET', '/v1/jobs', { key });
      assert.deepEqual((listed.json as Job).jobs.map((j: Job) => j.prompt).sort(), ['blocker', 'fits'], 'the refused job was never queued');

      // Short texts bound the sequence: the same options fit when the texts are short.
      const short = await submit(env.url, key, { prompt: 'short', examples: examples(16), options: { num_virtual_tokens: 16, max_text_tokens: 250, batch_size: 64, epochs: 1 } });
      assert.equal(short.status, 202, JSON.stringify(short.json));
      await api(env.url, 'POST', `/v1/jobs/${(short.json as Job).id}/cancel`, { key });
      await api(env.url, 'POST', `/v1/jobs/${blocker.id}/cancel`, { key });
    } finally {
      await env.close();
    }
  });

  it('bounds the tokens of a batch', async () => {
    const env = await startEnv({ maxBatchTokens: 2000 });
    try {
      const key = env.store.createTenant('acme').apiKey;
      await api(env.url, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      const r = await submit(env.url, key, { prompt: 'p', examples: longExamples(8, 400), options: { num_virtual_tokens: 16, max_text_tokens: 200, batch_size: 64 } });
      assert.equal(r.status, 422);
      const err = (r.json as Job).error;
      assert.equal(err.code, 'TRAINING_MEMORY_BUDGET');
      assert.match(err.message, /the limit is 2000 \(SOFTSERVE_TRAINING_MAX_BATCH_TOKENS\)/);
      assert.ok(err.details.batch_tokens > 2000);
      assert.ok(err.details.largest_batch_size * err.details.sequence_tokens <= 2000);
    } finally {
      await env.close();
    }
  });

  it('stops a running job whose memory grows over the ceiling (growth of the process over the pre-job baseline)', async () => {
    const env = await startEnv({ memoryMb: 300, memorySampleMs: 20 });
    let ballast: Buffer | null = null;
    try {
      const key = env.store.createTenant('acme').apiKey;
      await api(env.url, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      const sub = await submit(env.url, key, { prompt: 'p', examples: examples(40), options: LONG });
      assert.equal(sub.status, 202);
      const id = (sub.json as Job).id;
      await waitFor(env.url, key, id, runningAt(2), 'running');
      // The worker is a thread of this process: memory anything in the process takes counts (the
      // ceiling is on the process's growth since the job started). 600 MB of touched pages.
      ballast = Buffer.alloc(600 * 2 ** 20, 1);
      const done = await waitFor(env.url, key, id, isFinal, 'finished');
      assert.equal(done.state, 'failed');
      assert.equal(done.error.code, 'TRAINING_MEMORY_LIMIT');
      assert.match(done.error.message, /over the limit of 300 MB \(SOFTSERVE_TRAINING_MEMORY_MB\); it was stopped at its next step/);
      assert.ok(done.memory.peak_growth_mb > 300, JSON.stringify(done.memory));
      assert.equal(done.events.at(-1).code, 'TRAINING_MEMORY_LIMIT');
      ballast = null;
      // The worker was terminated; the next job gets a fresh one and completes.
      const next = await submit(env.url, key, { prompt: 'q', examples: examples(8), options: QUICK });
      const ok = await waitFor(env.url, key, (next.json as Job).id, isFinal, 'finished');
      assert.equal(ok.state, 'succeeded', JSON.stringify(ok.error));
    } finally {
      ballast = null;
      await env.close();
    }
  });
});

describe('fair training queue and per-tenant limits', () => {
  it('serves tenants round-robin, not first-in-first-out', async () => {
    const env = await startEnv({ maxActivePerTenant: 8 });
    try {
      const a = env.store.createTenant('alpha').apiKey;
      const b = env.store.createTenant('beta').apiKey;
      for (const key of [a, b]) await api(env.url, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      const a1 = (await submit(env.url, a, { prompt: 'a1', examples: examples(40), options: LONG })).json as Job;
      await waitFor(env.url, a, a1.id, runningAt(1), 'running');
      const a2 = (await submit(env.url, a, { prompt: 'a2', examples: examples(8), options: QUICK })).json as Job;
      const a3 = (await submit(env.url, a, { prompt: 'a3', examples: examples(8), options: QUICK })).json as Job;
      const b1 = (await submit(env.url, b, { prompt: 'b1', examples: examples(8), options: QUICK })).json as Job;
      await api(env.url, 'POST', `/v1/jobs/${a1.id}/cancel`, { key: a });
      const ends = await Promise.all([
        waitFor(env.url, a, a2.id, isFinal, 'finished'), waitFor(env.url, a, a3.id, isFinal, 'finished'), waitFor(env.url, b, b1.id, isFinal, 'finished'),
      ]);
      for (const j of ends) assert.equal(j.state, 'succeeded', JSON.stringify(j.error));
      const [ja2, ja3, jb1] = ends;
      // b1 was submitted last but its tenant had not run yet: it goes before alpha's queued jobs.
      assert.ok(jb1.started_at < ja2.started_at, `b1 ${jb1.started_at} should start before a2 ${ja2.started_at}`);
      assert.ok(ja2.started_at < ja3.started_at);
    } finally {
      await env.close();
    }
  });

  it('limits a tenant\'s active jobs (429 TRAINING_QUEUE_LIMIT with Retry-After); other tenants are not affected', async () => {
    const env = await startEnv({ maxActivePerTenant: 1 });
    try {
      const a = env.store.createTenant('alpha').apiKey;
      const b = env.store.createTenant('beta').apiKey;
      for (const key of [a, b]) await api(env.url, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      const first = await submit(env.url, a, { prompt: 'p', examples: examples(40), options: LONG });
      assert.equal(first.status, 202);
      const second = await submit(env.url, a, { prompt: 'q', examples: examples(8), options: QUICK });
      assert.equal(second.status, 429);
      assert.equal((second.json as Job).error.code, 'TRAINING_QUEUE_LIMIT');
      assert.match((second.json as Job).error.message, /SOFTSERVE_TRAINING_MAX_ACTIVE_PER_TENANT/);
      assert.ok(Number(second.headers.get('retry-after')) >= 1, `Retry-After: ${second.headers.get('retry-after')}`);
      const other = await submit(env.url, b, { prompt: 'p', examples: examples(8), options: QUICK });
      assert.equal(other.status, 202);
      await api(env.url, 'POST', `/v1/jobs/${(first.json as Job).id}/cancel`, { key: a });
      assert.equal((await waitFor(env.url, b, (other.json as Job).id, isFinal, 'finished')).state, 'succeeded');
    } finally {
      await env.close();
    }
  });

  it('limits a tenant\'s training time: the running job is stopped at the limit, then submits get 429 TRAINING_TIME_QUOTA', async () => {
    const env = await startEnv({ tenantSeconds: 0.001, tenantWindowSeconds: 3600 });
    try {
      const a = env.store.createTenant('alpha').apiKey;
      const b = env.store.createTenant('beta').apiKey;
      for (const key of [a, b]) await api(env.url, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      const first = await submit(env.url, a, { prompt: 'p', examples: examples(40), options: LONG });
      assert.equal(first.status, 202);
      const done = await waitFor(env.url, a, (first.json as Job).id, isFinal, 'finished');
      assert.equal(done.state, 'failed');
      assert.equal(done.error.code, 'TRAINING_TIME_QUOTA');
      assert.equal(done.events.at(-1).code, 'TRAINING_TIME_QUOTA');
      const listed = await api(env.url, 'GET', '/v1/tasks/sentiment/prompts', { key: a });
      assert.deepEqual((listed.json as Job).prompts, [], 'nothing published');

      const again = await submit(env.url, a, { prompt: 'q', examples: examples(8), options: QUICK });
      assert.equal(again.status, 429);
      assert.equal((again.json as Job).error.code, 'TRAINING_TIME_QUOTA');
      assert.match((again.json as Job).error.message, /SOFTSERVE_TRAINING_TENANT_SECONDS/);
      const retry = Number(again.headers.get('retry-after'));
      assert.ok(retry >= 1 && retry <= 3600, `Retry-After: ${retry}`);
      // Another tenant has its own quota.
      assert.equal((await submit(env.url, b, { prompt: 'p', examples: examples(8), options: QUICK })).status, 202);
    } finally {
      await env.close();
    }
  });
});

describe('job identity', () => {
  it('a task deleted while its job runs and re-created with other labels: the job stops (TASK_DELETED) and the new task gets nothing', async () => {
    const env = await startEnv();
    try {
      const key = env.store.createTenant('acme').apiKey;
      await api(env.url, 'POST', '/v1/tasks', { key, json: SENTIMENT });
      const running = (await submit(env.url, key, { prompt: 'p', examples: examples(40), options: LONG })).json as Job;
      const queued = (await submit(env.url, key, { prompt: 'q', examples: examples(8), options: QUICK })).json as Job;
      await waitFor(env.url, key, running.id, runningAt(2), 'running');

      assert.equal((await api(env.url, 'DELETE', '/v1/tasks/sentiment', { key })).status, 204);
      const other = { name: 'sentiment', labels: ['bad', 'neutral', 'good'], template: 'Review: {text} Verdict:', scoring: { type: 'verbalizer', label_words: [' sad', ' big', ' happy'] } };
      assert.equal((await api(env.url, 'POST', '/v1/tasks', { key, json: other })).status, 201);

      for (const id of [running.id, queued.id]) {
        const j = await waitFor(env.url, key, id, isFinal, 'finished');
        assert.equal(j.state, 'failed', id);
        assert.equal(j.error.code, 'TASK_DELETED');
        assert.match(j.error.message, /was deleted/);
        assert.equal(j.events.at(-1).code, 'TASK_DELETED');
      }
      const prompts = await api(env.url, 'GET', '/v1/tasks/sentiment/prompts', { key });
      assert.equal(prompts.status, 200);
      assert.deepEqual((prompts.json as Job).prompts, [], 'nothing was published into the new task');
      // The new task trains normally.
      const fresh = (await submit(env.url, key, { prompt: 'p', examples: [{ text: 'a fine day', label: 'good' }, { text: 'awful', label: 'bad' }, { text: 'so so', label: 'neutral' }], options: { ...QUICK, held_out_fraction: 0 } })).json as Job;
      assert.equal((await waitFor(env.url, key, fresh.id, isFinal, 'finished')).state, 'succeeded');
    } finally {
      await env.close();
    }
  });
});

describe('training worker failure', () => {
  it('the worker dying mid-job: the job is requeued with an event, the worker restarts, serving answers; past the attempt limit the job fails', async () => {
    const srv = await startServingServer({ training: { maxAttempts: 2, niceness: 0, progressIntervalMs: 50 } });
    try {
      const key = await createTenant(srv.url, 'acme');
      await createTask(srv.url, key, SENTIMENT);
      await uploadPrompt(srv.url, key, 'sentiment', { name: 'served', kind: 'soft', tensor: nested([4, SPEC.hiddenSize], 3) });
      const classify = async () => {
        const r = await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, json: { inputs: ['the dog was happy'], prompt: 'served' } });
        assert.equal(r.status, 200, JSON.stringify(r.json));
      };
      await classify();
      const sub = await api(srv.url, 'POST', '/v1/tasks/sentiment/jobs', { key, json: { prompt: 'p', examples: examples(40), options: LONG } });
      const id = (sub.json as Job).id;
      await waitFor(srv.url, key, id, runningAt(2), 'running');

      assert.ok(srv.server.training.crashWorkerForTest(70));
      // Requeued with the reason, then running again on a fresh worker.
      const again = await waitFor(srv.url, key, id, (j) => j.attempts === 2 && runningAt(1)(j), 'running again');
      const requeued = again.events.find((e: Job) => e.type === 'requeued');
      assert.equal(requeued.code, 'WORKER_EXITED');
      assert.match(requeued.reason, /exited \(code 70\).*restarted.*attempt 1 of 2/);
      await classify();

      // The second death uses the last attempt: the job fails with the reason.
      assert.ok(srv.server.training.crashWorkerForTest(71));
      const failed = await waitFor(srv.url, key, id, isFinal, 'finished');
      assert.equal(failed.state, 'failed');
      assert.equal(failed.error.code, 'WORKER_EXITED');
      assert.match(failed.error.message, /exited \(code 71\).*attempt 2 of 2; not retried again/);
      await classify();
      const exits = await srv.server.metrics.registry.getSingleMetricAsString('softserve_training_worker_exits_total');
      assert.match(exits, /softserve_training_worker_exits_total 2/);

      // And the restarted worker takes the next job.
      const next = await api(srv.url, 'POST', '/v1/tasks/sentiment/jobs', { key, json: { prompt: 'q', examples: examples(8), options: QUICK } });
      assert.equal((await waitFor(srv.url, key, (next.json as Job).id, isFinal, 'finished')).state, 'succeeded');
    } finally {
      await srv.close();
    }
  });
});
