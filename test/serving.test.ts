// The classify path end to end on a real server on 127.0.0.1 with the real
// stories260k model in its inference worker: cross-tenant batches give each
// request what it gets alone, ensembles vote their members' answers, floods
// get 429 without starving others, deadlines give 504, /metrics parses.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  classify, createTask, createTenant, nested, startServingServer, uploadPrompt, api, type ServingTestServer,
} from './serving-helpers.ts';

const H = 64, L = 5, KV = 4, D = 8; // stories260k

const SENTENCES = [
  'a stirring , funny and finally transporting re-imagining of beauty and the beast',
  'apparently reassembled from the cutting-room floor of any given daytime soap .',
  'the film is strictly routine .',
  'what is the capital of france ?',
  'who wrote the book about the little prince and his rose ?',
  'an utterly charming and hilarious film that reminded me of the best of the old movies',
  'how many legs does a spider have ?',
  'bad .',
];

let srv: ServingTestServer;
let keyA: string, keyB: string, keyC: string;

before(async () => {
  // A long enough wait that concurrent requests share batches.
  srv = await startServingServer({ scheduler: { maxWaitMs: 40 } });
  keyA = await createTenant(srv.url, 'alpha');
  keyB = await createTenant(srv.url, 'beta');
  keyC = await createTenant(srv.url, 'gamma');
  // A: sentiment, verbalizer, soft prompts (and a 3-member ensemble of them).
  await createTask(srv.url, keyA, { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: ['sad', 'happy'] } });
  for (let i = 0; i < 3; i++) await uploadPrompt(srv.url, keyA, 'sentiment', { name: `soft${i}`, kind: 'soft', tensor: nested([4 + i, H], 10 + i) });
  const e = await api(srv.url, 'POST', '/v1/tasks/sentiment/ensembles', { key: keyA, json: { name: 'trio', members: [{ prompt: 'soft0' }, { prompt: 'soft1' }, { prompt: 'soft2' }] } });
  assert.equal(e.status, 201, JSON.stringify(e.json));
  // B: six-way question type, verbalizer, a prefix.
  await createTask(srv.url, keyB, { name: 'qtype', labels: ['abbreviation', 'description', 'entity', 'human', 'location', 'number'], template: '{text} The answer is a', scoring: { type: 'verbalizer', label_words: ['letter', 'thing', 'definition', 'person', 'place', 'number'] } });
  await uploadPrompt(srv.url, keyB, 'qtype', { name: 'prefix', kind: 'prefix', tensor: nested([L, 2, KV, 3, D], 20) });
  // C: three classes with a linear head over mean-pooled features, with a P-tuning prompt.
  await createTask(srv.url, keyC, { name: 'topic', labels: ['x', 'y', 'z'], template: '{text} This is a', scoring: { type: 'head', pooling: 'mean' } });
  await uploadPrompt(srv.url, keyC, 'topic', { name: 'pt', kind: 'ptuning', tensor: nested([5, H], 30), head: { weight: nested([3, H], 31), bias: nested([3], 32) } });
  // ...and over the wide feature [mean ; last] (pooling mean_last, head [3, 2H]): rides in the same batches as the mean head.
  await createTask(srv.url, keyC, { name: 'topicwide', labels: ['x', 'y', 'z'], template: '{text} This is a', scoring: { type: 'head', pooling: 'mean_last' } });
  await uploadPrompt(srv.url, keyC, 'topicwide', { name: 'ptw', kind: 'ptuning', tensor: nested([5, H], 33), head: { weight: nested([3, 2 * H], 34), bias: nested([3], 35) } });
});

after(async () => {
  await srv.close();
});

interface Call { key: string; task: string; body: Record<string, unknown> }

function calls(): Call[] {
  const out: Call[] = [];
  SENTENCES.forEach((s, i) => {
    out.push({ key: keyA, task: 'sentiment', body: { inputs: [s], prompt: `soft${i % 3}` } });
    out.push({ key: keyB, task: 'qtype', body: { inputs: [s, SENTENCES[(i + 3) % SENTENCES.length]!], prompt: 'prefix' } });
    out.push({ key: keyC, task: 'topic', body: { inputs: [s], prompt: 'pt' } });
    out.push({ key: keyC, task: 'topicwide', body: { inputs: [s], prompt: 'ptw' } });
    out.push({ key: keyA, task: 'sentiment', body: { inputs: [s] } }); // zero-shot, no prompt
  });
  return out;
}

function assertSameScores(got: Record<string, number>, want: Record<string, number>, what: string): void {
  assert.deepEqual(Object.keys(got), Object.keys(want), what);
  for (const k of Object.keys(want)) assert.ok(Math.abs(got[k]! - want[k]!) <= 1e-5, `${what}: ${k} ${got[k]} vs ${want[k]}`);
}

test('concurrent requests from several tenants share batches and get exactly their answers alone', async () => {
  const all = calls();
  const alone: Array<{ results: Array<{ label: string; scores: Record<string, number> }> }> = [];
  for (const c of all) {
    const r = await classify(srv.url, c.key, c.task, c.body);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    alone.push(r.json);
  }
  const together = await Promise.all(all.map((c) => classify(srv.url, c.key, c.task, c.body)));
  together.forEach((r, i) => {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r.json.results.forEach((res: { label: string; scores: Record<string, number> }, j: number) => {
      assert.equal(res.label, alone[i].results[j].label, `call ${i} input ${j} label`);
      assertSameScores(res.scores, alone[i].results[j].scores, `call ${i} input ${j}`);
    });
  });
  // Batches shared across tenants: some batch id appears in calls of different tenants.
  const tenantsByBatch = new Map<number, Set<string>>();
  together.forEach((r, i) => {
    for (const id of r.json.batch_ids as number[]) {
      if (!tenantsByBatch.has(id)) tenantsByBatch.set(id, new Set());
      tenantsByBatch.get(id)!.add(all[i]!.key);
    }
  });
  const shared = [...tenantsByBatch.values()].filter((s) => s.size >= 3);
  assert.ok(shared.length > 0, `no batch held all three tenants: ${JSON.stringify([...tenantsByBatch].map(([k, v]) => [k, v.size]))}`);
  // ...and the log lines say so too.
  const lines = srv.logs.filter((l) => l.msg === 'request' && l.path === '/v1/tasks/sentiment/classify');
  assert.ok(lines.length > 0 && lines.every((l) => typeof l.tenant === 'string' && Array.isArray(l.batches) && typeof l.queueMs === 'number' && typeof l.inferenceMs === 'number'));
});

test('an ensemble is its members: each vote equals that member asked alone', async () => {
  const inputs = SENTENCES.slice(0, 5);
  const r = await classify(srv.url, keyA, 'sentiment', { inputs, ensemble: 'trio' });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.ensemble, 'trio');
  assert.equal(r.json.usage.rows, inputs.length * 3, 'N prompts × inputs rows');
  for (let m = 0; m < 3; m++) {
    const single = await classify(srv.url, keyA, 'sentiment', { inputs, prompt: `soft${m}` });
    inputs.forEach((_, i) => {
      const vote = r.json.results[i].votes[m];
      assert.equal(vote.prompt, `soft${m}`);
      assert.equal(vote.label, single.json.results[i].label);
      assert.ok(Math.abs(vote.score - single.json.results[i].score) <= 1e-5);
    });
  }
  // The answer is the majority of the votes (ties by mean probability).
  for (const res of r.json.results) {
    const counts = new Map<string, number>();
    for (const v of res.votes) counts.set(v.label, (counts.get(v.label) ?? 0) + 1);
    const top = Math.max(...counts.values());
    assert.equal(counts.get(res.label), top);
  }
  // A list of prompts works like an ensemble without a name.
  const list = await classify(srv.url, keyA, 'sentiment', { inputs, prompts: ['soft0', { name: 'soft1', version: 1 }, 'soft2'] });
  assert.equal(list.status, 200);
  list.json.results.forEach((res: { label: string }, i: number) => assert.equal(res.label, r.json.results[i].label));
});

test('tenant isolation on classify: another tenant\'s task and prompts are 404', async () => {
  const r = await classify(srv.url, keyB, 'sentiment', { inputs: ['x'] });
  assert.equal(r.status, 404);
  const r2 = await classify(srv.url, keyA, 'qtype', { inputs: ['x'], prompt: 'prefix' });
  assert.equal(r2.status, 404);
});

test('bad classify bodies get 4xx with a stable code', async () => {
  const cases: Array<[unknown, number, string]> = [
    [{}, 400, 'BAD_REQUEST'],
    [{ inputs: [] }, 400, 'BAD_REQUEST'],
    [{ inputs: [''] }, 400, 'BAD_REQUEST'],
    [{ inputs: [3] }, 400, 'BAD_REQUEST'],
    [{ inputs: ['x'], prompt: 'soft0', ensemble: 'trio' }, 400, 'BAD_REQUEST'],
    [{ inputs: ['x'], extra: 1 }, 400, 'BAD_REQUEST'],
    [{ inputs: Array(65).fill('x') }, 413, 'PAYLOAD_TOO_LARGE'],
    [{ inputs: ['x'.repeat(5000)] }, 413, 'PAYLOAD_TOO_LARGE'],
    [{ inputs: ['x'], prompt: 'nope' }, 404, 'NOT_FOUND'],
    [{ inputs: ['x'], deadline_ms: -5 }, 400, 'BAD_REQUEST'],
  ];
  for (const [body, status, code] of cases) {
    const r = await classify(srv.url, keyA, 'sentiment', body as Record<string, unknown>);
    assert.equal(r.status, status, `${JSON.stringify(body).slice(0, 60)}: ${JSON.stringify(r.json)}`);
    assert.equal(r.json.error.code, code);
  }
  const noAuth = await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { json: { inputs: ['x'] } });
  assert.equal(noAuth.status, 401);
  // A task scored by a head needs a prompt (the head lives with it).
  const headless = await classify(srv.url, keyC, 'topic', { inputs: ['x'] });
  assert.equal(headless.status, 422);
});

test('a request past its deadline is dropped and answered 504', async () => {
  // The scheduler waits 40 ms for company; a 1 ms deadline expires in the queue.
  const r = await classify(srv.url, keyA, 'sentiment', { inputs: ['slow'], deadline_ms: 1 });
  assert.equal(r.status, 504, JSON.stringify(r.json));
  assert.equal(r.json.error.code, 'DEADLINE_EXCEEDED');
});

test('/metrics after traffic has the serving metrics, in valid Prometheus text format', async () => {
  const r = await fetch(`${srv.url}/metrics`);
  assert.equal(r.status, 200);
  const text = await r.text();
  const samples = parsePrometheus(text);
  const value = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
  assert.ok(value('softserve_http_requests_total', { route: '/v1/tasks/:id/classify', status: '200' }) > 0);
  assert.ok(value('softserve_http_request_duration_seconds_count') > 0);
  assert.ok(value('softserve_batch_rows_count') > 0);
  assert.ok(value('softserve_batch_rows_sum') > value('softserve_batch_rows_count'), 'some batch had more than one row');
  assert.ok(value('softserve_batch_tokens_sum') > 0);
  assert.ok(value('softserve_batch_padding_fraction_count') > 0);
  assert.ok(value('softserve_queue_time_seconds_count') > 0);
  assert.ok(value('softserve_inference_seconds_count') > 0);
  // CPU by thread, a part of the process's; the inference thread's work around forward passes is counted.
  const mainCpu = value('softserve_thread_cpu_seconds_total', { thread: 'main' });
  const inferenceCpu = value('softserve_thread_cpu_seconds_total', { thread: 'inference' });
  const outsideRun = value('softserve_inference_outside_run_seconds_total');
  assert.ok(mainCpu > 0 && inferenceCpu > 0 && outsideRun > 0, `main ${mainCpu}, inference ${inferenceCpu}, around runs ${outsideRun}`);
  // Read a moment apart in one scrape: 50 ms of slack.
  assert.ok(mainCpu + inferenceCpu <= value('softserve_process_process_cpu_seconds_total') + 0.05);
  assert.ok(value('softserve_tokenize_seconds_count') > 0);
  assert.ok(value('softserve_ensemble_requests_total') >= 2);
  assert.ok(value('softserve_rejected_total', { reason: 'deadline' }) >= 1);
  assert.ok(value('softserve_prompt_cache_misses_total') + value('softserve_prompt_cache_hits_total') > 0);
  assert.ok(value('softserve_prompt_cache_bytes') > 0);
  assert.equal(samples.filter((s) => s.name === 'softserve_tenant_requests_total').length, 3, 'one series per tenant');
  assert.ok(samples.some((s) => s.name === 'softserve_queue_rows'));
});

test('a flood from one tenant gets 429 with Retry-After while another tenant is served', async () => {
  const small = await startServingServer({ scheduler: { maxWaitMs: 2, maxTenantQueueRows: 64, maxQueueRows: 512 } });
  try {
    const flooder = await createTenant(small.url, 'flood');
    const polite = await createTenant(small.url, 'polite');
    for (const k of [flooder, polite]) {
      await createTask(small.url, k, { name: 't', labels: ['a', 'b'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: ['sad', 'happy'] } });
    }
    const long = SENTENCES[0]!.repeat(3);
    const flood = Array.from({ length: 60 }, () => classify(small.url, flooder, 't', { inputs: Array(32).fill(long) }));
    const politeCalls = Array.from({ length: 5 }, () => classify(small.url, polite, 't', { inputs: [SENTENCES[1]!] }));
    const [floodResults, politeResults] = await Promise.all([Promise.all(flood), Promise.all(politeCalls)]);
    const refused = floodResults.filter((r) => r.status === 429);
    assert.ok(refused.length > 0, 'the flood was never refused');
    assert.ok(floodResults.some((r) => r.status === 200), 'the flood got nothing through');
    for (const r of refused) {
      assert.equal(r.json.error.code, 'OVERLOADED');
      assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After');
    }
    for (const r of politeResults) assert.equal(r.status, 200, JSON.stringify(r.json));
  } finally {
    await small.close();
  }
});

interface Sample { name: string; labels: Record<string, string>; value: number }

/** A strict reader of Prometheus' text exposition format (0.0.4). */
function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  const typed = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
      assert.ok(m, `bad comment line: ${line}`);
      if (m[1] === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]!), line);
        assert.ok(!typed.has(m[2]!), `TYPE twice for ${m[2]}`);
        typed.set(m[2]!, m[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([-+]?(?:[0-9.]+(?:e[-+]?[0-9]+)?|NaN|Inf|\+Inf|-Inf))( [0-9]+)?$/.exec(line);
    assert.ok(m, `bad sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/g;
      let consumed = 0;
      for (const lm of m[3].matchAll(re)) {
        labels[lm[1]!] = lm[2]!;
        consumed += lm[0].length;
      }
      assert.equal(consumed, m[3].length, `bad labels: ${line}`);
    }
    const base = m[1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(typed.has(m[1]!) || typed.has(base), `sample without TYPE: ${m[1]}`);
    samples.push({ name: m[1]!, labels, value: Number(m[4]!.replace(/^\+?Inf$/, 'Infinity')) });
  }
  return samples;
}
