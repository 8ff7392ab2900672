// Tenant isolation under load and faults, against a real server on 127.0.0.1:
// admission decides before tokenising, a flood cannot push a polite tenant
// into 429, per-tenant weights and limits through the admin API, bounded
// body parsing, Expect: 100-continue, the connection limit and timeouts, and
// the inference worker dying and coming back.
//
// No clocks: work is held in flight with the worker handle's test hold (no
// batch reaches the thread until released), and every wait is for a state
// the server reports (/metrics, a log line, /readyz, a socket closing).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { TenantQuotas } from '../server/tenant-quotas.ts';
import { classifyBodyBytes, uploadPartBytes } from '../server/body-limits.ts';
import { loadServingConfig } from '../server/config.ts';
import { ADMIN_KEY, api, classify, createTask, startServingServer, type ServingTestServer } from './serving-helpers.ts';
import { DEFAULT_HTTP_LIMITS } from '../server/http-limits.ts';
import { DEFAULT_TENANT_LIMITS } from '../server/admission.ts';

const TASK = { name: 't', labels: ['a', 'b'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: ['sad', 'happy'] } };
const TEXT = 'the film was a quiet delight from start to finish';

async function tenant(url: string, name: string): Promise<{ id: string; key: string }> {
  const r = await api(url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name } });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  await createTask(url, r.json.api_key as string, TASK);
  return { id: r.json.id as string, key: r.json.api_key as string };
}

/** Sum of a metric's samples whose labels include `labels`. */
async function metric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  let sum = 0;
  for (const m of text.matchAll(/^([a-z_]+)(?:\{([^}]*)\})? (\S+)$/gm)) {
    if (m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** Waits for a state, polling; bounded by the test's timeout. */
async function until(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; ; i++) {
    if (await check()) return;
    if (i > 20000) throw new Error(`never reached: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Admission decisions so far (admitted plus refused, whatever the limit). */
async function decided(url: string): Promise<number> {
  return (await metric(url, 'softserve_admission_admitted_total')) + (await metric(url, 'softserve_admission_refused_total'));
}

test('admission refuses before tokenising: refused requests never reach the tokenizer, and the error names the limit', { timeout: 60_000 }, async () => {
  const srv = await startServingServer();
  try {
    const a = await tenant(srv.url, 'a');
    const p = await api(srv.url, 'PATCH', `/v1/tenants/${a.id}`, { key: ADMIN_KEY, json: { limits: { max_rows: 32 } } });
    assert.equal(p.status, 200, JSON.stringify(p.json));
    assert.equal(p.json.limits.max_rows, 32);
    // A request that can never fit is 413, not 429, and is not tokenised either.
    const never = await classify(srv.url, a.key, 't', { inputs: Array(33).fill(TEXT) });
    assert.equal(never.status, 413);
    assert.equal(never.json.error.details.limit, 'request_size');
    const release = srv.server.inference!.holdForTest();
    const held = [classify(srv.url, a.key, 't', { inputs: Array(16).fill(TEXT) }), classify(srv.url, a.key, 't', { inputs: Array(16).fill(TEXT) })];
    await until('two requests admitted', async () => (await metric(srv.url, 'softserve_admission_admitted_total')) === 2);
    const tokenized = await metric(srv.url, 'softserve_tokenize_seconds_count');
    assert.equal(tokenized, 2);
    const refused = await Promise.all(Array.from({ length: 5 }, () => classify(srv.url, a.key, 't', { inputs: Array(16).fill(TEXT) })));
    for (const r of refused) {
      assert.equal(r.status, 429, JSON.stringify(r.json));
      assert.equal(r.json.error.code, 'TENANT_LIMIT');
      assert.equal(r.json.error.details.limit, 'tenant_rows');
      assert.match(r.json.error.message, /limit of 32/);
      assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After');
    }
    assert.equal(await metric(srv.url, 'softserve_tokenize_seconds_count'), tokenized, 'a refused request was tokenised');
    // Refused at the gate: with 32 rows held, even a one-row request would pass the limit, so the body was never read.
    assert.equal(await metric(srv.url, 'softserve_admission_refused_total', { limit: 'tenant_rows' }), 5);
    assert.equal(await metric(srv.url, 'softserve_tenant_requests_total'), 2, 'only admitted requests are counted as queued');
    release();
    for (const r of await Promise.all(held)) assert.equal(r.status, 200, JSON.stringify(r.json));
    const after = await api(srv.url, 'GET', `/v1/tenants/${a.id}/quota`, { key: ADMIN_KEY });
    assert.deepEqual(after.json.in_flight, { rows: 0, tokens: 0, requests: 0 });
  } finally {
    await srv.close();
  }
});

test('floods cannot push a polite tenant into 429: one flooder, five flooders, one actor with five keys', { timeout: 60_000 }, async () => {
  // Rows bind (tokens are plentiful): main budget 384 rows, reserve 128 (light tenants hold at most 16).
  const srv = await startServingServer({ serving: { admission: { maxRows: 512, maxTokens: 10_000_000, reservePercent: 25, refusalDelayMs: 0, tenant: { ...DEFAULT_TENANT_LIMITS, maxTokens: 10_000_000 } } } });
  try {
    const flooders = await Promise.all(['f1', 'f2', 'f3', 'f4', 'f5'].map((n) => tenant(srv.url, n)));
    const polite = await tenant(srv.url, 'polite');
    const release = srv.server.inference!.holdForTest();
    const all: Array<Promise<{ status: number }>> = [];
    const politeCalls: Array<Promise<{ status: number; json: any }>> = []; // eslint-disable-line @typescript-eslint/no-explicit-any
    const flood = async (keys: string[], n: number) => {
      const before = await decided(srv.url);
      for (let i = 0; i < n; i++) all.push(classify(srv.url, keys[i % keys.length]!, 't', { inputs: Array(16).fill(TEXT) }));
      await until(`${n} flood requests decided`, async () => (await decided(srv.url)) === before + n);
    };
    const politeOne = async () => {
      const refusedBefore = await metric(srv.url, 'softserve_admission_refused_total');
      const admittedBefore = await metric(srv.url, 'softserve_admission_admitted_total');
      politeCalls.push(classify(srv.url, polite.key, 't', { inputs: [TEXT] }));
      await until('the polite request decided', async () => (await decided(srv.url)) === refusedBefore + admittedBefore + 1);
      assert.equal(await metric(srv.url, 'softserve_admission_admitted_total'), admittedBefore + 1, 'the polite request was refused');
    };

    // One flooder takes what it can; the polite tenant is still admitted.
    await flood([flooders[0]!.key], 40);
    assert.ok(await metric(srv.url, 'softserve_admission_refused_total') > 0, 'the flood was never refused');
    await politeOne();
    // Five flooders, one after another (the first still holding its excess).
    for (const f of flooders.slice(1)) await flood([f.key], 20);
    await politeOne();
    let held = 0;
    for (const f of flooders) held += (await api(srv.url, 'GET', `/v1/tenants/${f.id}/quota`, { key: ADMIN_KEY })).json.in_flight.rows as number;
    assert.ok(held <= 384 + 16 * 4, `flooders hold ${held} rows`);
    // One actor with five keys is one tenant.
    const keys = [flooders[1]!.key];
    for (let i = 0; i < 4; i++) keys.push((await api(srv.url, 'POST', `/v1/tenants/${flooders[1]!.id}/keys`, { key: ADMIN_KEY })).json.api_key as string);
    const refusedBefore = await metric(srv.url, 'softserve_admission_refused_total');
    await flood(keys, 20);
    assert.equal(await metric(srv.url, 'softserve_admission_refused_total'), refusedBefore + 20, 'a flooder over its share got more through extra keys');
    await politeOne();
    await politeOne();

    release();
    for (const r of await Promise.all(politeCalls)) assert.equal(r.status, 200, JSON.stringify(r.json));
    const statuses = new Set((await Promise.all(all)).map((r) => r.status));
    assert.deepEqual([...statuses].sort(), [200, 429]);
  } finally {
    await srv.close();
  }
});

test('per-tenant weight and limits through the admin API: validated, persisted, enforced', { timeout: 60_000 }, async () => {
  const srv = await startServingServer();
  try {
    const a = await tenant(srv.url, 'a');
    const patch = (body: unknown, key = ADMIN_KEY, id = a.id) => api(srv.url, 'PATCH', `/v1/tenants/${id}`, { key, json: body });
    for (const bad of [{ weight: 0 }, { weight: -1 }, { weight: 'x' }, { limits: { max_rows: 0 } }, { limits: { max_bananas: 1 } }, { colour: 'red' }, [1]]) {
      const r = await patch(bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal(r.json.error.code, 'BAD_REQUEST');
    }
    assert.equal((await patch({ weight: 2 }, 'not-a-key')).status, 401);
    assert.equal((await patch({ weight: 2 }, a.key)).status, 403);
    assert.equal((await patch({ weight: 2 }, ADMIN_KEY, 'ten_0000000000000000')).status, 404);
    const plain = await api(srv.url, 'PATCH', `/v1/tenants/${a.id}`, { key: ADMIN_KEY, body: '{"weight":2}', headers: { 'content-type': 'text/plain' } });
    assert.equal(plain.status, 415, 'JSON only');

    const ok = await patch({ weight: 2.5, limits: { max_concurrency: 1, max_tokens: 100000 } });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json, {
      id: a.id, weight: 2.5,
      limits: { max_concurrency: 1, max_rows: DEFAULT_TENANT_LIMITS.maxRows, max_tokens: 100000 },
      overrides: { max_concurrency: 1, max_tokens: 100000 },
      in_flight: { rows: 0, tokens: 0, requests: 0 },
    });
    // Persisted: a fresh reader of the store's database sees it.
    assert.deepEqual((await TenantQuotas.load(srv.server.store.backend.quotas)).get(a.id), { weight: 2.5, limits: { maxConcurrency: 1, maxTokens: 100000 } });
    // null goes back to the default.
    const reset = await patch({ limits: { max_tokens: null } });
    assert.deepEqual(reset.json.overrides, { max_concurrency: 1 });

    // Enforced: with one request in flight, a second is refused before its body is read.
    const release = srv.server.inference!.holdForTest();
    const first = classify(srv.url, a.key, 't', { inputs: [TEXT] });
    await until('the first request admitted', async () => (await metric(srv.url, 'softserve_admission_admitted_total')) === 1);
    const second = await classify(srv.url, a.key, 't', { inputs: [TEXT] });
    assert.equal(second.status, 429);
    assert.equal(second.json.error.code, 'TENANT_LIMIT');
    assert.equal(second.json.error.details.limit, 'tenant_concurrency');
    assert.equal(second.headers.get('retry-after'), '1');
    assert.equal(await metric(srv.url, 'softserve_tokenize_seconds_count'), 1);
    release();
    assert.equal((await first).status, 200);
    const shown = await api(srv.url, 'GET', `/v1/tenants/${a.id}/quota`, { key: ADMIN_KEY });
    assert.equal(shown.json.weight, 2.5);
  } finally {
    await srv.close();
  }
});

test('routes under /v1/tasks/:task/ pass their own gates before their body is read', { timeout: 60_000 }, async () => {
  const srv = await startServingServer();
  try {
    const a = await tenant(srv.url, 'a');
    const p = await api(srv.url, 'PATCH', `/v1/tenants/${a.id}`, { key: ADMIN_KEY, json: { limits: { max_concurrency: 1 } } });
    assert.equal(p.status, 200, JSON.stringify(p.json));
    // A classify request whose body is still arriving already holds its tenant's one concurrency slot.
    const u = new URL(srv.url);
    const slow = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/v1/tasks/t/classify', headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' } });
    const slowAnswer = new Promise<{ status: number; body: string }>((resolve, reject) => {
      slow.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      slow.on('error', reject);
    });
    slow.write('{"inputs": [');
    const inFlight = async () => (await api(srv.url, 'GET', `/v1/tenants/${a.id}/quota`, { key: ADMIN_KEY })).json.in_flight.requests as number;
    await until('the half-sent request holds the slot', async () => (await inFlight()) === 1);
    const second = await classify(srv.url, a.key, 't', { inputs: [TEXT] });
    assert.equal(second.status, 429, JSON.stringify(second.json));
    assert.equal(second.json.error.details.limit, 'tenant_concurrency');
    slow.end(`${JSON.stringify(TEXT)}]}`);
    const done = await slowAnswer;
    assert.equal(done.status, 200, done.body);
    await until('the slot is released', async () => (await inFlight()) === 0);

    // A training job for a task that does not exist is 404 before its body is read: a JSON body over
    // the general JSON limit (8 MiB) but within the training limit is not refused as too large.
    const examples = JSON.stringify({ examples: Array.from({ length: 40_000 }, (_, i) => ({ text: `${TEXT} ${i} ${'x'.repeat(200)}`, label: 'a' })) });
    assert.ok(examples.length > 8 * 1024 * 1024 && examples.length < 32 * 1024 * 1024, String(examples.length));
    const job = await api(srv.url, 'POST', '/v1/tasks/nope/jobs', { key: a.key, body: examples, headers: { 'content-type': 'application/json' } });
    assert.equal(job.status, 404, JSON.stringify(job.json));
    assert.equal(job.json.error.code, 'NOT_FOUND');
    // For a task that exists, a JSON job body keeps the app's JSON bounds: size (8 MiB) and nesting depth.
    const tooBig = await api(srv.url, 'POST', '/v1/tasks/t/jobs', { key: a.key, body: examples, headers: { 'content-type': 'application/json' } });
    assert.equal(tooBig.status, 413, JSON.stringify(tooBig.json));
    const deepJob = await api(srv.url, 'POST', '/v1/tasks/t/jobs', { key: a.key, body: `{"prompt":"p","examples":${'['.repeat(100)}${']'.repeat(100)}}`, headers: { 'content-type': 'application/json' } });
    assert.equal(deepJob.status, 400, JSON.stringify(deepJob.json));
    assert.equal(deepJob.json.error.code, 'JSON_TOO_DEEP');
  } finally {
    await srv.close();
  }
});

/** A raw request that sends its headers and waits: the 100 Continue or the final answer, whichever comes. */
function expectContinue(url: string, path: string, key: string, length: number): Promise<{ continued: boolean; status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    let continued = false;
    const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': length, expect: '100-continue' } });
    req.on('continue', () => {
      continued = true;
      req.end(JSON.stringify({ inputs: [TEXT] }).padEnd(length, ' '));
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => { resolve({ continued, status: res.statusCode ?? 0, body }); req.destroy(); });
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

test('bodies are bounded: deep JSON refused before parsing, per-route sizes, Expect: 100-continue, upload parts by the model', { timeout: 60_000 }, async () => {
  const srv = await startServingServer();
  try {
    const a = await tenant(srv.url, 'a');
    const deep = '{"inputs":' + '['.repeat(200_000) + ']'.repeat(200_000) + '}';
    for (const path of ['/v1/tasks/t/classify', '/v1/tasks']) {
      const r = await api(srv.url, 'POST', path, { key: a.key, body: deep, headers: { 'content-type': 'application/json' } });
      assert.equal(r.status, 400, path);
      assert.equal(r.json.error.code, 'JSON_TOO_DEEP');
    }
    // Brackets inside strings are text, not nesting.
    assert.equal((await classify(srv.url, a.key, 't', { inputs: ['[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{'] })).status, 200);
    // A classify body over max_inputs x max_input_chars (escaped) plus slack: 413 from Content-Length alone.
    const big = JSON.stringify({ inputs: ['x'.repeat(3_000_000)] });
    const r413 = await api(srv.url, 'POST', '/v1/tasks/t/classify', { key: a.key, body: big, headers: { 'content-type': 'application/json' } });
    assert.equal(r413.status, 413);
    assert.equal(r413.json.error.code, 'PAYLOAD_TOO_LARGE');

    const huge = await expectContinue(srv.url, '/v1/tasks/t/classify', a.key, 2_000_000_000);
    assert.equal(huge.continued, false);
    assert.equal(huge.status, 413);
    assert.equal(JSON.parse(huge.body).error.code, 'PAYLOAD_TOO_LARGE');
    // Just over classify's own limit (far under the largest body any route takes): still no 100.
    const classifyLimit = classifyBodyBytes(loadServingConfig({}).classify);
    const over = await expectContinue(srv.url, '/v1/tasks/t/classify', a.key, classifyLimit + 1);
    assert.equal(over.continued, false);
    assert.equal(over.status, 413);
    assert.equal(JSON.parse(over.body).error.details.limit, classifyLimit);
    const small = await expectContinue(srv.url, '/v1/tasks/t/classify', a.key, 200);
    assert.equal(small.continued, true);
    assert.equal(small.status, 200, small.body);

    // An upload part larger than the largest legal prompt for this model is refused as it streams.
    const bound = uploadPartBytes(srv.server.store.spec, { maxVirtualTokens: 256, maxLabels: 256, maxSafetensorsHeaderBytes: 64 * 1024 });
    assert.ok(bound < 64 * 1024 * 1024);
    const form = new FormData();
    form.append('name', 'p');
    form.append('adapter_config', new Blob(['{}'], { type: 'application/json' }), 'adapter_config.json');
    form.append('adapter_model', new Blob([new Uint8Array(bound + 1)]), 'adapter_model.safetensors');
    const up = await api(srv.url, 'POST', '/v1/tasks/t/prompts', { key: a.key, body: form });
    assert.equal(up.status, 413);
    assert.equal(up.json.error.details.limit, bound);
  } finally {
    await srv.close();
  }
});

function connect(url: string): Promise<net.Socket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname, () => resolve(s));
    s.on('error', reject);
  });
}

/** One request on a fresh connection (Connection: close); the status, or 0 if the server closed it unanswered. */
function rawGet(url: string, path: string): Promise<number> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname, () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
    let got = '';
    s.on('data', (c: Buffer) => { got += c.toString(); });
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 0)));
    s.on('error', () => undefined);
  });
}

test('connections are bounded per process: at the limit a new connection is closed unanswered, and counted', { timeout: 60_000 }, async () => {
  const srv: ServingTestServer = await startServingServer({ serving: { http: { ...DEFAULT_HTTP_LIMITS, maxConnections: 3 } } });
  const open: net.Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) open.push(await connect(srv.url));
    assert.equal(await rawGet(srv.url, '/healthz'), 0, 'a connection over the limit was served');
    open.shift()!.destroy();
    // Once the server has seen that close, there is room again.
    await until('a connection slot is free', async () => (await rawGet(srv.url, '/healthz')) === 200);
    await until('the drop is counted', async () => {
      open.shift()?.destroy();
      const text = await new Promise<string>((resolve) => {
        const u = new URL(srv.url);
        const s = net.connect(Number(u.port), u.hostname, () => s.write('GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
        let got = '';
        s.on('data', (c: Buffer) => { got += c.toString(); });
        s.on('close', () => resolve(got));
        s.on('error', () => resolve(''));
      });
      const m = /^softserve_connections_dropped_total (\d+)/m.exec(text);
      return m !== null && Number(m[1]) >= 1;
    });
  } finally {
    for (const s of open) s.destroy();
    await srv.close();
  }
});

test('a client that never finishes its headers is disconnected (headers timeout)', { timeout: 60_000 }, async () => {
  const srv = await startServingServer({ serving: { http: { ...DEFAULT_HTTP_LIMITS, headersTimeoutMs: 300, requestTimeoutMs: 600 } } });
  try {
    const s = await connect(srv.url);
    s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    let answer = '';
    s.on('data', (c: Buffer) => { answer += c.toString(); });
    await new Promise((resolve) => s.on('close', resolve));
    assert.ok(!answer.startsWith('HTTP/1.1 200'), answer);
  } finally {
    await srv.close();
  }
});

test('the inference worker dies: in-flight requests get 503, /readyz says so, it restarts and serves again', { timeout: 60_000 }, async () => {
  const srv = await startServingServer();
  try {
    const a = await tenant(srv.url, 'a');
    assert.equal((await classify(srv.url, a.key, 't', { inputs: [TEXT] })).status, 200);
    const release = srv.server.inference!.holdForTest();
    const inFlight = Array.from({ length: 3 }, () => classify(srv.url, a.key, 't', { inputs: Array(4).fill(TEXT) }));
    await until('three requests admitted', async () => (await metric(srv.url, 'softserve_admission_admitted_total')) === 4);
    srv.server.inference!.exitForTest();
    await until('the worker death logged', () => srv.logs.some((l) => l.msg === 'inference worker died; in-flight batches failed with 503, restarting'));
    const notReady = await api(srv.url, 'GET', '/readyz');
    assert.equal(notReady.status, 503);
    assert.equal(notReady.json.error.code, 'INFERENCE_WORKER_RESTARTING');
    assert.equal(await metric(srv.url, 'softserve_inference_worker_up'), 0);
    release();
    for (const r of await Promise.all(inFlight)) {
      assert.equal(r.status, 503, JSON.stringify(r.json));
      assert.equal(r.json.error.code, 'INFERENCE_WORKER_RESTARTING');
      assert.equal(r.headers.get('retry-after'), '1');
    }
    await until('ready again', async () => (await api(srv.url, 'GET', '/readyz')).status === 200);
    const again = await classify(srv.url, a.key, 't', { inputs: [TEXT, TEXT] });
    assert.equal(again.status, 200, JSON.stringify(again.json));
    assert.equal(await metric(srv.url, 'softserve_inference_worker_restarts_total'), 1);
    assert.equal(await metric(srv.url, 'softserve_inference_worker_up'), 1);
    assert.ok(srv.logs.some((l) => l.msg === 'inference worker restarted'));
  } finally {
    await srv.close();
  }
});
