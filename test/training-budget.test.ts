// Training isolation, memory and identity, on a real HTTP listener, a real
// store and a real training worker thread (stories260k, tiny jobs):
// - the memory budget: jobs over it are refused at submit with the limit,
//   the estimate and what to reduce; a running job whose memory grows over
//   the ceiling is stopped (TRAINING_MEMORY_LIMIT);
// - a job is bound to its task: deleted and re-created under the same name,
//   the task gets nothing (TASK_DELETED).
// Every wait is for a state the server reports (job state, progress, events).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { examples, isFinal, LONG, longExamples, QUICK, runningAt, SENTIMENT, startEnv, submit, waitFor, type Job } from './training-helpers.ts';
import { api } from './store-helpers.ts';

describe('training memory budget', () => {
  it('refuses a job over the budget at submit, naming the limit, the estimate and what to reduce; queues nothing', async () => {
    const env = await startEnv({ memoryMb: 1024, maxBatchTokens: 1_000_000 });
    try {
      const key = (await env.store.createTenant('acme')).apiKey;
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
      const key = (await env.store.createTenant('acme')).apiKey;
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
      const key = (await env.store.createTenant('acme')).apiKey;
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

describe('job identity', () => {
  it('a task deleted while its job runs and re-created with other labels: the job stops (TASK_DELETED) and the new task gets nothing', async () => {
    const env = await startEnv();
    try {
      const key = (await env.store.createTenant('acme')).apiKey;
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

