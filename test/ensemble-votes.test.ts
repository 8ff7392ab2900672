// Ensemble vote modes, agreement and abstention over HTTP on a real server
// (stories260k in its inference worker): every answer is recomputed here,
// independently of prompts/vote.ts, from the members' own single-prompt
// answers, and must match exactly (labels, votes, agreement; probabilities to
// float precision).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { api } from './store-helpers.ts';
import { classify, createTask, nested, startServingServer, uploadPrompt, type ServingTestServer } from './serving-helpers.ts';
import { ADMIN_KEY } from './store-helpers.ts';

const H = 64; // stories260k
const M = 5;
const LABELS = ['negative', 'positive'];
const INPUTS = [
  'a stirring , funny and finally transporting re-imagining of beauty and the beast',
  'apparently reassembled from the cutting-room floor of any given daytime soap .',
  'the film is strictly routine .',
  'an utterly charming and hilarious film that reminded me of the best of the old movies',
  'bad .',
  'the girl smiled and laughed with her friend',
  'the storm broke the little house',
  'it is a tedious , mess of a movie',
  'one of the year \'s best films',
  'nobody came to the party',
];
/** Held-out accuracies recorded with the "trained" versions: member 0 dominates a weighted vote. */
const ACCURACY = [0.99, 0.55, 0.6, 0.52, 0.58];

let srv: ServingTestServer;
let key: string;

interface Single { label: string; scores: Record<string, number> }
interface Answer { label: string | null; score: number; scores: Record<string, number>; votes: Array<{ prompt: string; version: number; label: string; score: number }>; agreement: number; abstained?: boolean }

/** Member m's answers to INPUTS, asked alone. */
const singles: Single[][] = [];

before(async () => {
  srv = await startServingServer();
  const t = await api(srv.url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name: 'voter' } });
  assert.equal(t.status, 201);
  key = t.json.api_key as string;
  const tenantId = t.json.id as string;
  await createTask(srv.url, key, { name: 'sentiment', labels: LABELS, template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } });
  for (let m = 0; m < M; m++) {
    // Uploaded (no recorded accuracy)...
    await uploadPrompt(srv.url, key, 'sentiment', { name: `up${m}`, kind: 'soft', tensor: nested([3 + m, H], 100 + m, 2) });
    // ...and the same tensors as trained versions with a recorded held-out accuracy (what a training job writes).
    const up = await srv.server.store.getPromptTensors(tenantId, 'sentiment', `up${m}`);
    await srv.server.store.putPrompt(tenantId, 'sentiment', `tr${m}`, up.tensors, { source: 'training', provenance: { method: 'prompt_tuning', held_out_accuracy: ACCURACY[m] } });
    const r = await classify(srv.url, key, 'sentiment', { inputs: INPUTS, prompt: `tr${m}` });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    singles.push(r.json.results);
  }
});

after(async () => { await srv.close(); });

const members = Array.from({ length: M }, (_, m) => `tr${m}`);
const probs = (s: Single) => LABELS.map((l) => s.scores[l]!);

/** The expected answer for input i, computed from the single answers. */
function expected(i: number, mode: 'majority' | 'mean_probability' | 'weighted'): { label: string; agreement: number; mean: number[] } {
  const mean = LABELS.map((_, c) => singles.reduce((a, s) => a + probs(s[i]!)[c]!, 0) / M);
  const choice = singles.map((s) => LABELS.indexOf(s[i]!.label));
  let winner: number;
  if (mode === 'mean_probability') {
    winner = mean[1]! > mean[0]! ? 1 : 0;
  } else {
    const weight = (m: number) => (mode === 'weighted' ? Math.max(0, Math.log(((LABELS.length - 1) * ACCURACY[m]!) / (1 - ACCURACY[m]!))) : 1);
    const tally = [0, 0];
    choice.forEach((c, m) => { tally[c]! += weight(m); });
    winner = tally[1]! > tally[0]! || (tally[1] === tally[0] && mean[1]! > mean[0]!) ? 1 : 0;
  }
  return { label: LABELS[winner]!, agreement: choice.filter((c) => c === winner).length / M, mean };
}

function checkAnswers(results: Answer[], mode: 'majority' | 'mean_probability' | 'weighted'): void {
  results.forEach((res, i) => {
    const want = expected(i, mode);
    assert.equal(res.label, want.label, `${mode}, input ${i}`);
    assert.equal(res.agreement, want.agreement, `${mode}, input ${i}: agreement`);
    assert.deepEqual(res.votes.map((v) => [v.prompt, v.version, v.label]), members.map((p, m) => [p, 1, singles[m]![i]!.label]), `${mode}, input ${i}: votes`);
    res.votes.forEach((v, m) => assert.ok(Math.abs(v.score - singles[m]![i]!.scores[v.label]!) <= 1e-6));
    LABELS.forEach((l, c) => assert.ok(Math.abs(res.scores[l]! - want.mean[c]!) <= 1e-6, `${mode}, input ${i}: mean probability of ${l}`));
    assert.equal(res.abstained, undefined);
  });
}

test('each vote mode is reproduced from the members\' single answers (votes, agreement, label)', async () => {
  // The members must disagree somewhere, or the modes could not differ.
  assert.ok(INPUTS.some((_, i) => expected(i, 'majority').agreement < 1), 'the random members agree on every input');
  for (const mode of ['majority', 'mean_probability', 'weighted'] as const) {
    const r = await classify(srv.url, key, 'sentiment', { inputs: INPUTS, prompts: members, vote: mode });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    checkAnswers(r.json.results, mode);
  }
  // No vote named: majority.
  const plain = await classify(srv.url, key, 'sentiment', { inputs: INPUTS, prompts: members });
  checkAnswers(plain.json.results, 'majority');
  // Member 0's weight outweighs the other four together: the weighted vote is its answer everywhere.
  const weighted = await classify(srv.url, key, 'sentiment', { inputs: INPUTS, prompts: members, vote: 'weighted' });
  weighted.json.results.forEach((res: Answer, i: number) => assert.equal(res.label, singles[0]![i]!.label));
});

test('min_agreement abstains below the threshold and keeps the votes', async () => {
  for (const threshold of [0, 0.6, 0.8, 1]) {
    const r = await classify(srv.url, key, 'sentiment', { inputs: INPUTS, prompts: members, min_agreement: threshold });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r.json.results.forEach((res: Answer, i: number) => {
      const want = expected(i, 'majority');
      assert.equal(res.agreement, want.agreement);
      assert.equal(res.votes.length, M, 'votes kept');
      if (want.agreement < threshold) {
        assert.equal(res.label, null, `threshold ${threshold}, input ${i}`);
        assert.equal(res.abstained, true);
      } else {
        assert.equal(res.label, want.label, `threshold ${threshold}, input ${i}`);
        assert.equal(res.abstained, undefined);
      }
    });
  }
  // At 1, exactly the unanimous inputs are answered; this set has both kinds.
  const r = await classify(srv.url, key, 'sentiment', { inputs: INPUTS, prompts: members, min_agreement: 1 });
  const answered = r.json.results.filter((res: Answer) => res.label !== null).length;
  assert.ok(answered > 0 && answered < INPUTS.length, `${answered} of ${INPUTS.length} unanimous`);
});

test('an ensemble keeps its vote mode; a request overrides it', async () => {
  const c = await api(srv.url, 'POST', '/v1/tasks/sentiment/ensembles', { key, json: { name: 'wise', members: members.map((prompt) => ({ prompt })), vote: 'weighted' } });
  assert.equal(c.status, 201, JSON.stringify(c.json));
  assert.equal(c.json.vote, 'weighted');
  assert.equal((await api(srv.url, 'GET', '/v1/tasks/sentiment/ensembles/wise', { key })).json.vote, 'weighted');
  const stored = await classify(srv.url, key, 'sentiment', { inputs: INPUTS, ensemble: 'wise' });
  assert.equal(stored.status, 200, JSON.stringify(stored.json));
  checkAnswers(stored.json.results, 'weighted');
  const overridden = await classify(srv.url, key, 'sentiment', { inputs: INPUTS, ensemble: 'wise', vote: 'mean_probability' });
  checkAnswers(overridden.json.results, 'mean_probability');
  // An ensemble without a mode says majority.
  const plain = await api(srv.url, 'POST', '/v1/tasks/sentiment/ensembles', { key, json: { name: 'plain', members: members.map((prompt) => ({ prompt })) } });
  assert.equal(plain.json.vote, 'majority');
});

test('bad vote settings are refused with stable codes', async () => {
  const cases: Array<[Record<string, unknown>, number, string]> = [
    [{ vote: 'plurality' }, 400, 'INVALID_VOTE_MODE'],
    [{ vote: 3 }, 400, 'INVALID_VOTE_MODE'],
    [{ min_agreement: 1.5 }, 400, 'INVALID_MIN_AGREEMENT'],
    [{ min_agreement: -0.1 }, 400, 'INVALID_MIN_AGREEMENT'],
    [{ min_agreement: '0.5' }, 400, 'INVALID_MIN_AGREEMENT'],
  ];
  for (const [extra, status, code] of cases) {
    const r = await classify(srv.url, key, 'sentiment', { inputs: ['x'], prompts: members, ...extra });
    assert.equal(r.status, status, JSON.stringify(extra));
    assert.equal(r.json.error.code, code, JSON.stringify(extra));
  }
  const e = await api(srv.url, 'POST', '/v1/tasks/sentiment/ensembles', { key, json: { name: 'odd', members: ['tr0', 'tr1'], vote: 'loudest' } });
  assert.equal(e.status, 400);
  assert.equal(e.json.error.code, 'INVALID_VOTE_MODE');
  // Uploaded prompts have no recorded accuracy: a weighted vote over them names the first such member.
  const w = await classify(srv.url, key, 'sentiment', { inputs: ['x'], prompts: ['tr0', 'up1'], vote: 'weighted' });
  assert.equal(w.status, 422, JSON.stringify(w.json));
  assert.equal(w.json.error.code, 'VOTE_WEIGHT_UNKNOWN');
  assert.match(w.json.error.message, /up1 v1/);
});
