// End to end on the real server (server/server.ts: inference worker,
// scheduler, store, training worker): submit a small training job over HTTP as
// a JSONL upload, watch it complete, classify with the published prompt, and
// check that serving scores the prompt exactly as the trainer evaluated it
// (same rows, same graph), and that it learnt its training set. Then an
// ensemble job, classified by majority vote.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { TrainableModel } from '../models/training-graph.ts';
import { evaluatePrompt } from '../prompts/training/trainer.ts';
import { api } from './store-helpers.ts';
import { createTask, createTenant, startServingServer, STORIES_DIR, type ServingTestServer } from './serving-helpers.ts';

const TASK = { name: 'mood', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } };
const POSITIVE = ['the girl smiled and laughed with her friend', 'they played in the sun and had fun', 'the dog was happy to see tom', 'mom gave her a big hug and a cake', 'he found a shiny new toy', 'the bird sang a sweet song'];
const NEGATIVE = ['the boy cried because he was hurt', 'she lost her doll and felt bad', 'the storm broke the little house', 'tim was angry and would not talk', 'the cat was sick and cold', 'nobody came to the party'];
const EXAMPLES = [...POSITIVE.map((text) => ({ text, label: 'positive' })), ...NEGATIVE.map((text) => ({ text, label: 'negative' }))];

let srv: ServingTestServer;
let key: string;

before(async () => {
  srv = await startServingServer();
  key = await createTenant(srv.url, 'trainer');
  await createTask(srv.url, key, TASK);
});
after(async () => { await srv.close(); });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function waitDone(id: string, timeoutMs = 90000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  let seenRunning = false;
  for (;;) {
    const r = await api(srv.url, 'GET', `/v1/jobs/${id}`, { key });
    assert.equal(r.status, 200);
    if (r.json.state === 'running' && r.json.progress) seenRunning = true;
    if (['succeeded', 'failed', 'cancelled'].includes(r.json.state)) return { ...r.json, seenRunning };
    if (Date.now() > deadline) assert.fail(`job ${id} still ${r.json.state}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

describe('train over HTTP, then classify with the published prompt', () => {
  it('a prompt-tuning job completes and serving scores its prompt as the trainer did', async () => {
    const jsonl = EXAMPLES.map((e) => JSON.stringify(e)).join('\n') + '\n';
    const options = JSON.stringify({ method: 'prompt_tuning', num_virtual_tokens: 4, epochs: 20, batch_size: 4, learning_rate: 0.1, held_out_fraction: 0, schedule: 'constant', warmup_ratio: 0 });
    const sub = await api(srv.url, 'POST', `/v1/tasks/mood/jobs?prompt=cheer&options=${encodeURIComponent(options)}`, {
      key, body: jsonl, headers: { 'content-type': 'application/x-ndjson' },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const job = await waitDone(sub.json.id);
    assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
    assert.deepEqual(job.result.prompts.map((p: { name: string; version: number }) => [p.name, p.version]), [['cheer', 1]]);

    const texts = EXAMPLES.map((e) => e.text);
    const res = await api(srv.url, 'POST', '/v1/tasks/mood/classify', { key, json: { inputs: texts, prompt: 'cheer' } });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.deepEqual(res.json.prompt, { name: 'cheer', version: 1 });
    const served: string[] = res.json.results.map((r: { label: string }) => r.label);
    const correct = served.filter((l, i) => l === EXAMPLES[i]!.label).length;
    assert.ok(correct >= 10, `the prompt learnt its 12 examples: ${correct}/12 correct (${served.join(', ')})`);

    // The same tensors through the trainer's own evaluation: identical answers and probabilities.
    const tenantId = (await srv.server.store.authenticate(key))!.id;
    const stored = await srv.server.store.getPromptTensors(tenantId, 'mood', 'cheer');
    const model = await TrainableModel.load(STORIES_DIR, { intraOpThreads: 1 });
    try {
      const ev = await evaluatePrompt(model, { labels: TASK.labels, template: TASK.template, scoring: { type: 'verbalizer', labelWords: TASK.scoring.label_words } },
        EXAMPLES.map((e) => ({ text: e.text, label: TASK.labels.indexOf(e.label) })), stored.tensors, 256);
      assert.deepEqual(served, ev.predictions.map((p) => TASK.labels[p]));
      res.json.results.forEach((r: { scores: Record<string, number> }, i: number) => {
        assert.ok(Math.abs(r.scores.positive! - ev.probabilities[i]![1]!) < 1e-4, `row ${i}: served ${r.scores.positive} vs trainer ${ev.probabilities[i]![1]}`);
      });
    } finally {
      await model.release();
    }
    // Zero-shot (no prompt) answers differently somewhere: the prompt is what changed them.
    const zero = await api(srv.url, 'POST', '/v1/tasks/mood/classify', { key, json: { inputs: texts } });
    assert.notDeepEqual(zero.json.results.map((r: { scores: Record<string, number> }) => r.scores), res.json.results.map((r: { scores: Record<string, number> }) => r.scores));
  });

  it('an ensemble job publishes N prompts and an ensemble that classify votes with', async () => {
    const sub = await api(srv.url, 'POST', '/v1/tasks/mood/jobs', {
      key, json: { prompt: 'trio', examples: EXAMPLES, options: { method: 'p_tuning', encoder: 'lstm', encoder_hidden: 16, num_virtual_tokens: 4, epochs: 3, batch_size: 6, ensemble_size: 3, ensemble_inits: ['label_words', 'vocab'] } },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const job = await waitDone(sub.json.id);
    assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
    assert.deepEqual(job.result.prompts.map((p: { name: string; init: string }) => [p.name, p.init]), [['trio-1', 'label_words'], ['trio-2', 'vocab'], ['trio-3', 'label_words']]);
    const res = await api(srv.url, 'POST', '/v1/tasks/mood/classify', { key, json: { inputs: [POSITIVE[0], NEGATIVE[0]], ensemble: 'trio' } });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(res.json.ensemble, 'trio');
    for (const r of res.json.results) {
      assert.deepEqual(r.votes.map((v: { prompt: string }) => v.prompt), ['trio-1', 'trio-2', 'trio-3']);
    }
    const versions = await api(srv.url, 'GET', '/v1/tasks/mood/prompts/trio-2', { key });
    assert.equal(versions.json.versions[0].source, 'training');
    assert.equal(versions.json.versions[0].kind, 'ptuning');
  });
});
