// Training isolation between tenants, on a real HTTP listener, a real store
// and a real training worker thread (stories260k, tiny jobs):
// - the queue is round-robin across tenants, with per-tenant limits on active
//   jobs and on training time (429 + Retry-After);
// - the training worker dying mid-job: the job is requeued with an event, the
//   worker restarts, serving answers throughout; past the attempt limit the
//   job fails (the full server: inference worker, scheduler, training).
// Every wait is for a state the server reports (job state, progress, events).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { examples, isFinal, LONG, QUICK, runningAt, SENTIMENT, SPEC, startEnv, submit, waitFor, type Job } from './training-helpers.ts';
import { api } from './store-helpers.ts';
import { createTask, createTenant, nested, startServingServer, uploadPrompt } from './serving-helpers.ts';

describe('fair training queue and per-tenant limits', () => {
  it('picks the next job round-robin over tenants (the jobs table alone)', async () => {
    const env = await startEnv({ enabled: false });
    try {
      const tenants = await Promise.all(['a', 'b', 'c'].map(async (n) => (await env.store.createTenant(n)).tenant));
      const table = env.manager.table;
      let clock = Date.parse('2026-01-01T00:00:00Z');
      const tick = () => new Date(clock += 1000).toISOString();
      // a submits three jobs, then b two, then c one: FIFO would run a, a, a, b, b, c.
      for (const [t, n] of [[0, 3], [1, 2], [2, 1]] as const) {
        for (let i = 1; i <= n; i++) {
          await table.insert({
            id: `job_${'abc'[t]}${i}`, tenant_id: tenants[t]!.id, task_name: 'x', task_created_at: tick(), prompt_name: 'p', ensemble_name: null,
            state: 'queued', options: '{}', examples: '[]', validation: null, num_examples: 2, created_at: tick(),
          });
        }
      }
      const order: string[] = [];
      for (let next = await table.nextQueued(); next; next = await table.nextQueued()) {
        order.push(next.id.slice(4));
        await table.transition(next.id, ['queued'], { state: 'succeeded', started_at: tick(), finished_at: tick() });
      }
      assert.deepEqual(order, ['a1', 'b1', 'c1', 'a2', 'b2', 'a3']);
      // A tenant excluded (over its time quota) waits; the others go on.
      await table.insert({ id: 'job_a4', tenant_id: tenants[0]!.id, task_name: 'x', task_created_at: tick(), prompt_name: 'p', ensemble_name: null, state: 'queued', options: '{}', examples: '[]', validation: null, num_examples: 2, created_at: tick() });
      await table.insert({ id: 'job_b3', tenant_id: tenants[1]!.id, task_name: 'x', task_created_at: tick(), prompt_name: 'p', ensemble_name: null, state: 'queued', options: '{}', examples: '[]', validation: null, num_examples: 2, created_at: tick() });
      assert.equal((await table.nextQueued([tenants[1]!.id]))?.id, 'job_a4');
      assert.equal((await table.nextQueued())?.id, 'job_b3', 'b ran longer ago than a');
    } finally {
      await env.close();
    }
  });

  it('serves tenants round-robin, not first-in-first-out', async () => {
    const env = await startEnv({ maxActivePerTenant: 8 });
    try {
      const a = (await env.store.createTenant('alpha')).apiKey;
      const b = (await env.store.createTenant('beta')).apiKey;
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
      const a = (await env.store.createTenant('alpha')).apiKey;
      const b = (await env.store.createTenant('beta')).apiKey;
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
      const a = (await env.store.createTenant('alpha')).apiKey;
      const b = (await env.store.createTenant('beta')).apiKey;
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
      assert.equal(failed.events.at(-1).code, 'WORKER_EXITED');
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
