// Distillation and prompt transfer end to end on the real server (stories260k,
// training worker): a tiny ensemble job, a distillation job whose teacher is
// that ensemble (with unlabelled texts and gold mixed in), and a transfer job
// that starts a prompt of another task from one of the ensemble's members.
// Each publishes a prompt that classifies, with its provenance in the
// version's GET; bad sources are refused at submit with the option named.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { api, ADMIN_KEY } from './store-helpers.ts';
import { createTask, startServingServer, type ServingTestServer } from './serving-helpers.ts';

const MOOD = { name: 'mood', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } };
const KIND = { name: 'kind', labels: ['subjective', 'objective'], template: '{text} This is a', scoring: { type: 'verbalizer', label_words: [' opinion', ' fact'] } };
const POSITIVE = ['the girl smiled and laughed with her friend', 'they played in the sun and had fun', 'the dog was happy to see tom', 'mom gave her a big hug and a cake', 'he found a shiny new toy', 'the bird sang a sweet song'];
const NEGATIVE = ['the boy cried because he was hurt', 'she lost her doll and felt bad', 'the storm broke the little house', 'tim was angry and would not talk', 'the cat was sick and cold', 'nobody came to the party'];
const EXAMPLES = [...POSITIVE.map((text) => ({ text, label: 'positive' })), ...NEGATIVE.map((text) => ({ text, label: 'negative' }))];
const VALIDATION = [{ text: 'the sun was warm and she laughed', label: 'positive' }, { text: 'he fell and hurt his leg', label: 'negative' }];
const UNLABELLED = ['the cake was sweet', 'the house was dark and cold', 'lily loved her new red ball'];
/** A few steps: these tests check wiring and provenance, not accuracy. */
const TINY = { num_virtual_tokens: 4, epochs: 1, batch_size: 6, max_text_tokens: 24 };

let srv: ServingTestServer;
let key: string;
let tenantId: string;

before(async () => {
  srv = await startServingServer();
  const t = await api(srv.url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name: 'distiller' } });
  key = t.json.api_key as string;
  tenantId = t.json.id as string;
  await createTask(srv.url, key, MOOD);
  await createTask(srv.url, key, KIND);
});
after(async () => { await srv.close(); });

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function submit(task: string, body: Record<string, unknown>): Promise<any> {
  return api(srv.url, 'POST', `/v1/tasks/${task}/jobs`, { key, json: body });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function waitDone(id: string, timeoutMs = 120000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await api(srv.url, 'GET', `/v1/jobs/${id}`, { key });
    assert.equal(r.status, 200);
    if (['succeeded', 'failed', 'cancelled'].includes(r.json.state)) return r.json;
    if (Date.now() > deadline) assert.fail(`job ${id} still ${r.json.state}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function version(task: string, prompt: string): Promise<any> {
  const r = await api(srv.url, 'GET', `/v1/tasks/${task}/prompts/${prompt}`, { key });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.versions[r.json.versions.length - 1];
}

describe('distillation and transfer jobs', () => {
  it('an ensemble job records each member\'s held-out accuracy, so a weighted vote works', async () => {
    const sub = await submit('mood', { prompt: 'teach', examples: EXAMPLES, validation: VALIDATION, options: { ...TINY, ensemble_size: 2, seed: 3 } });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const job = await waitDone(sub.json.id);
    assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
    for (const [i, p] of job.result.prompts.entries()) {
      const v = await version('mood', `teach-${i + 1}`);
      assert.equal(v.provenance.method, 'prompt_tuning');
      assert.equal(v.provenance.job, job.id);
      assert.equal(v.provenance.seed, 3 + i);
      assert.equal(v.provenance.held_out_accuracy, p.held_out_accuracy);
      assert.equal(v.provenance.held_out_examples, VALIDATION.length);
    }
    const r = await api(srv.url, 'POST', '/v1/tasks/mood/classify', { key, json: { inputs: UNLABELLED, ensemble: 'teach', vote: 'weighted' } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.results.length, UNLABELLED.length);
  });

  it('a distillation job learns from a named ensemble and publishes one prompt that names its teacher', async () => {
    const sub = await submit('mood', {
      prompt: 'student', examples: EXAMPLES, validation: VALIDATION, unlabelled_jsonl: UNLABELLED.map((text) => JSON.stringify({ text })).join('\n'),
      options: { ...TINY, method: 'distill', teacher: { ensemble: 'teach' }, student: 'prompt_tuning', gold_weight: 0.3 },
    });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    // The stored options pin the teacher's members to versions.
    assert.deepEqual(sub.json.options.teacher, { ensemble: 'teach', prompts: [{ prompt: 'teach-1', version: 1 }, { prompt: 'teach-2', version: 1 }] });
    assert.equal(sub.json.options.method, 'distill');
    assert.equal(sub.json.options.student, 'prompt_tuning');
    const job = await waitDone(sub.json.id);
    assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
    assert.deepEqual(job.result.prompts.map((p: { name: string }) => p.name), ['student']);
    const v = await version('mood', 'student');
    assert.equal(v.kind, 'soft');
    assert.deepEqual(v.provenance.teacher, { ensemble: 'teach', members: [{ prompt: 'teach-1', version: 1 }, { prompt: 'teach-2', version: 1 }] });
    assert.equal(v.provenance.method, 'distill');
    assert.equal(v.provenance.student, 'prompt_tuning');
    assert.equal(v.provenance.gold_weight, 0.3);
    const r = await api(srv.url, 'POST', '/v1/tasks/mood/classify', { key, json: { inputs: UNLABELLED, prompt: 'student' } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.usage.rows, UNLABELLED.length, 'one row per input');
  });

  it('a distillation teacher may be a list of prompts, and a prefix student works', async () => {
    const sub = await submit('mood', { prompt: 'pstudent', examples: EXAMPLES, validation: VALIDATION, options: { ...TINY, num_virtual_tokens: 2, method: 'distill', teacher: ['teach-1', { prompt: 'teach-2', version: 1 }], student: 'prefix_tuning' } });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    const job = await waitDone(sub.json.id);
    assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
    const v = await version('mood', 'pstudent');
    assert.equal(v.kind, 'prefix');
    assert.deepEqual(v.provenance.teacher, { ensemble: null, members: [{ prompt: 'teach-1', version: 1 }, { prompt: 'teach-2', version: 1 }] });
  });

  it('a transfer job starts a prompt of another task from an existing prompt', async () => {
    // A learning rate of ~0 leaves the prompt where it started: the source's tensors.
    const sub = await submit('kind', { prompt: 'moved', examples: EXAMPLES.map((e, i) => ({ text: e.text, label: i % 2 ? 'subjective' : 'objective' })), validation: [{ text: 'a fact', label: 'objective' }], options: { ...TINY, init: { from_prompt: 'teach-1', task: 'mood' }, learning_rate: 1e-7 } });
    assert.equal(sub.status, 202, JSON.stringify(sub.json));
    assert.deepEqual(sub.json.options.init, { from_prompt: 'teach-1', version: 1, task: 'mood' });
    const job = await waitDone(sub.json.id);
    assert.equal(job.state, 'succeeded', JSON.stringify(job.error));
    const v = await version('kind', 'moved');
    assert.deepEqual(v.provenance.init_from, { prompt: 'teach-1', version: 1, task: 'mood' });
    assert.equal(v.provenance.init, 'from_prompt');
    const moved = (await srv.server.store.getPromptTensors(tenantId, 'kind', 'moved')).tensors.data;
    const source = (await srv.server.store.getPromptTensors(tenantId, 'mood', 'teach-1')).tensors.data;
    assert.equal(moved.length, source.length);
    let maxDiff = 0;
    for (let i = 0; i < source.length; i++) maxDiff = Math.max(maxDiff, Math.abs(moved[i]! - source[i]!));
    assert.ok(maxDiff < 1e-4, `the transferred prompt moved ${maxDiff} from its source`);
    const r = await api(srv.url, 'POST', '/v1/tasks/kind/classify', { key, json: { inputs: UNLABELLED, prompt: 'moved' } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  });

  it('bad sources are refused at submit, naming the option', async () => {
    const cases: Array<[Record<string, unknown>, number, string, RegExp]> = [
      [{ init: { from_prompt: 'nope' } }, 404, 'NOT_FOUND', /options\.init\.from_prompt/],
      [{ init: { from_prompt: 'teach-1', task: 'nope' } }, 404, 'NOT_FOUND', /options\.init\.task/],
      [{ init: { from_prompt: 'teach-1', task: 'mood' }, num_virtual_tokens: 5 }, 422, 'PROMPT_SHAPE_MISMATCH', /4 virtual tokens/],
      [{ init: { from_prompt: 'pstudent', task: 'mood' }, num_virtual_tokens: 2 }, 422, 'PROMPT_SHAPE_MISMATCH', /prefix prompt/],
      [{ init: { from_prompt: 'teach-1', colour: 'red' } }, 400, 'BAD_REQUEST', /init\.colour/],
      [{ method: 'distill' }, 400, 'BAD_REQUEST', /teacher/],
      [{ method: 'distill', teacher: { ensemble: 'nope' } }, 404, 'NOT_FOUND', /options\.teacher\.ensemble/],
      [{ method: 'distill', teacher: ['teach-1', 'nope'] }, 404, 'NOT_FOUND', /teacher\.prompts\[1\]/],
      [{ method: 'distill', teacher: 'teach', student: 'magic' }, 400, 'BAD_REQUEST', /student/],
      [{ method: 'distill', teacher: 'teach', gold_weight: 2 }, 400, 'BAD_REQUEST', /gold_weight/],
      [{ teacher: 'teach' }, 400, 'BAD_REQUEST', /only for method distill/],
      [{ solver: 'lbfgs' }, 400, 'BAD_REQUEST', /solver/],
    ];
    for (const [options, status, code, message] of cases) {
      const r = await submit('mood', { prompt: 'bad', examples: EXAMPLES, options: { ...TINY, ...options } });
      assert.equal(r.status, status, `${JSON.stringify(options)}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error.code, code, JSON.stringify(options));
      assert.match(r.json.error.message, message, JSON.stringify(options));
    }
    // The teacher must be of the job's own task ("kind" has no ensemble "teach").
    const other = await submit('kind', { prompt: 'bad', examples: EXAMPLES.map((e) => ({ text: e.text, label: 'objective' })), options: { ...TINY, method: 'distill', teacher: 'teach' } });
    assert.equal(other.status, 404);
    // Unlabelled texts only for distillation.
    const u = await submit('mood', { prompt: 'bad', examples: EXAMPLES, unlabelled: [{ text: 'x' }], options: TINY });
    assert.equal(u.status, 400);
    assert.match(u.json.error.message, /distill/);
    const empty = await submit('mood', { prompt: 'bad', examples: EXAMPLES, unlabelled: [{ text: ' ' }], options: { ...TINY, method: 'distill', teacher: 'teach' } });
    assert.equal(empty.status, 422);
    assert.equal(empty.json.error.code, 'INVALID_EXAMPLES');
  });
});
