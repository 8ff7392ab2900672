// The classify route is answered on the fast path (server/fast-path.ts),
// before express sees the request. On a real server (127.0.0.1, port 0, the
// stories260k model): the fast route matches what express matched (any case,
// a trailing slash, a query, percent-encoded names), reads bodies as the
// app's JSON parser does (gzip, charsets), and leaves the same traces (the
// request id, no-store, the log line, the metrics, usage); a request it does
// not match still reaches the app.

import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';

import { parseMetrics, value, type Scrape } from '../loadtest/metrics-scrape.ts';
import { fastPathListener, fastRoute } from '../server/fast-path.ts';
import type { FinishedRequest } from '../server/observe.ts';
import { ADMIN_KEY, api, type ApiResponse } from './store-helpers.ts';
import { createTask, createTenant, nested, startServingServer, uploadPrompt, type ServingTestServer } from './serving-helpers.ts';

const SENTIMENT = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' bad', ' good'] } };
const BODY = { inputs: ['a fine day at the park'], prompt: 'p1' };

function expectError(r: ApiResponse, status: number, code: string): void {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status} ${JSON.stringify(r.json)}`);
  assert.equal(r.json?.error?.code, code, JSON.stringify(r.json));
  assert.equal(r.json.error.request_id, r.headers.get('x-request-id'), 'the error body names the request id');
}

/** A request with a raw path: fetch would normalise some of the paths tested here. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked field by field
function rawPost(base: string, path: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; headers: Record<string, unknown>; json: any }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method: 'POST', path, headers: { ...headers, 'content-length': String(body.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode!, headers: res.headers, json: text ? JSON.parse(text) : null });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the classify fast path', () => {
  let srv: ServingTestServer;
  let key: string;
  let expected: unknown;
  before(async () => {
    srv = await startServingServer();
    key = await createTenant(srv.url, 'acme');
    await createTask(srv.url, key, SENTIMENT);
    await uploadPrompt(srv.url, key, 'sentiment', { name: 'p1', kind: 'soft', tensor: nested([2, 64], 5) });
    const r = await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, json: BODY });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    expected = r.json.results;
  });
  after(async () => { await srv.close(); });

  it('matches the paths express matched: any case, a trailing slash, a query, a percent-encoded task name, an absolute-form target', async () => {
    const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const absolute = `${srv.url}/v1/tasks/sentiment/classify?x=1`;
    for (const path of ['/V1/Tasks/sentiment/CLASSIFY', '/v1/tasks/sentiment/classify/', '/v1/tasks/sentiment/classify?trace=1', '/v1/tasks/sentim%65nt/classify', absolute]) {
      const r = await rawPost(srv.url, path, auth, Buffer.from(JSON.stringify(BODY)));
      assert.equal(r.status, 200, `${path}: ${JSON.stringify(r.json)}`);
      assert.deepEqual(r.json.results, expected, path);
    }
    // An absolute-form target logs its bare path, on the fast path and in the app alike.
    await rawPost(srv.url, absolute, { ...auth, 'x-request-id': 'abs-fast-1' }, Buffer.from(JSON.stringify(BODY)));
    assert.equal((await rawPost(srv.url, `${srv.url}/v1/tasks/sentiment/nope?x=1`, { ...auth, 'x-request-id': 'abs-app-1' }, Buffer.from('{}'))).status, 404);
    await api(srv.url, 'GET', '/healthz');
    const logged = (id: string) => srv.logs.find((l) => l.msg === 'request' && l.request_id === id)?.path;
    assert.equal(logged('abs-fast-1'), '/v1/tasks/sentiment/classify');
    assert.equal(logged('abs-app-1'), '/v1/tasks/sentiment/nope');
    const malformed = await rawPost(srv.url, '/v1/tasks/sentim%E0%A4%A/classify', auth, Buffer.from(JSON.stringify(BODY)));
    assert.equal(malformed.status, 400);
    assert.equal(malformed.json.error.code, 'BAD_REQUEST');
    assert.match(malformed.json.error.message, /percent-encoding/);
  });

  it('reads the body as the app\'s JSON routes do: gzip is inflated, a non-UTF charset is 415, a bad body is 400', async () => {
    const gz = await rawPost(srv.url, '/v1/tasks/sentiment/classify', { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-encoding': 'gzip' }, gzipSync(JSON.stringify(BODY)));
    assert.equal(gz.status, 200, JSON.stringify(gz.json));
    assert.deepEqual(gz.json.results, expected);
    const latin1 = await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, body: JSON.stringify(BODY), headers: { 'content-type': 'application/json; charset=latin1' } });
    expectError(latin1, 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, body: '{"inputs": [', headers: { 'content-type': 'application/json' } }), 400, 'INVALID_JSON');
    expectError(await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, body: '"a string"', headers: { 'content-type': 'application/json' } }), 400, 'INVALID_JSON');
    expectError(await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, body: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[', headers: { 'content-type': 'application/json' } }), 400, 'JSON_TOO_DEEP');
    expectError(await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { json: BODY }), 401, 'UNAUTHORIZED');
    expectError(await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key: ADMIN_KEY, json: BODY }), 403, 'FORBIDDEN');
  });

  it('leaves the traces of any request: request id, no-store, one log line, the route\'s metrics and the tenant\'s usage', async () => {
    const before = parseMetrics(await (await fetch(`${srv.url}/metrics`)).text());
    const tenantId = (await api(srv.url, 'GET', '/v1/whoami', { key })).json.id as string;
    const usageBefore = (await api(srv.url, 'GET', `/v1/tenants/${tenantId}/usage`, { key: ADMIN_KEY })).json;
    const ok = await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, json: BODY, headers: { 'x-request-id': 'fast-ok-1' } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('x-request-id'), 'fast-ok-1');
    assert.equal(ok.headers.get('cache-control'), 'no-store');
    assert.equal(ok.headers.get('content-type'), 'application/json; charset=utf-8');
    const refused = await api(srv.url, 'POST', '/v1/tasks/nope/classify', { key, json: BODY, headers: { 'x-request-id': 'fast-404-1' } });
    expectError(refused, 404, 'NOT_FOUND');
    assert.equal(refused.headers.get('cache-control'), 'no-store');

    const line = srv.logs.find((l) => l.msg === 'request' && l.request_id === 'fast-ok-1');
    assert.ok(line, 'one request line with the id');
    assert.equal(srv.logs.filter((l) => l.msg === 'request' && l.request_id === 'fast-ok-1').length, 1);
    assert.equal(line.method, 'POST');
    assert.equal(line.path, '/v1/tasks/sentiment/classify');
    assert.equal(line.status, 200);
    assert.equal(line.tenant, tenantId);
    assert.equal(line.rows, 1);
    assert.ok(Array.isArray(line.batches) && line.batches.length === 1);
    const notFound = srv.logs.find((l) => l.msg === 'request' && l.request_id === 'fast-404-1');
    assert.equal(notFound?.status, 404);
    assert.equal(notFound?.code, 'NOT_FOUND');

    const after = parseMetrics(await (await fetch(`${srv.url}/metrics`)).text());
    const requests = (s: Scrape, status: string) => value(s, 'softserve_http_requests_total', { route: '/v1/tasks/:id/classify', method: 'POST', status });
    assert.equal(requests(after, '200') - requests(before, '200'), 1);
    assert.equal(requests(after, '404') - requests(before, '404'), 1);
    const usageAfter = (await api(srv.url, 'GET', `/v1/tenants/${tenantId}/usage`, { key: ADMIN_KEY })).json;
    assert.equal(usageAfter.classify_requests - usageBefore.classify_requests, 1);
    assert.equal(usageAfter.errors - usageBefore.errors, 1);
    assert.equal(usageAfter.rows - usageBefore.rows, 1);
  });

  it('other methods on the classify path, and every other route, still reach the app', async () => {
    expectError(await api(srv.url, 'GET', '/v1/tasks/sentiment/classify', { key }), 404, 'NOT_FOUND');
    const task = await api(srv.url, 'GET', '/v1/tasks/sentiment', { key });
    assert.equal(task.status, 200);
    assert.equal(task.headers.get('cache-control'), 'no-store');
  });
});

describe('fastPathListener on its own', () => {
  it('refuses express syntax it would match differently; answers 503 DRAINING while draining, closing the connection; other requests go to the app', async () => {
    const recorded: FinishedRequest[] = [];
    let draining = false;
    let refusals = 0;
    let handled = 0;
    for (const pattern of ['/a/*splat', '/a/{b}', '/a/:b.json', 'relative']) {
      assert.throws(() => fastRoute('POST', pattern, { bodyLimit: 1 }, async () => {}), /only literal segments/, pattern);
    }
    const route = fastRoute('POST', '/fast/:name', { bodyLimit: 1024 }, async (ex) => {
      handled++;
      ex.res.end(`param ${ex.params[0]}`);
    });
    const listener = fastPathListener({
      routes: [route], app: (_req, res) => res.end('app'), record: (r) => recorded.push(r), logger: pino({ level: 'silent' }),
      draining: () => draining, onDrainRefusal: () => { refusals++; }, retryAfterEstimate: () => 1,
    });
    const server = createServer(listener).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      assert.equal(await (await fetch(`${base}/fast/a%20b`, { method: 'POST' })).text(), 'param a b');
      assert.equal(await (await fetch(`${base}/fast/x`, { method: 'GET' })).text(), 'app', 'another method goes to the app');
      assert.equal(await (await fetch(`${base}/other`, { method: 'POST' })).text(), 'app');
      draining = true;
      const refused = await fetch(`${base}/fast/a`, { method: 'POST', headers: { 'x-request-id': 'drain-1' } });
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get('connection'), 'close');
      const body = await refused.json() as { error: { code: string; request_id: string } };
      assert.equal(body.error.code, 'DRAINING');
      assert.equal(body.error.request_id, 'drain-1');
      assert.equal(handled, 1, 'the route never ran while draining');
      assert.equal(refusals, 1);
      assert.deepEqual(recorded.map((r) => [r.route, r.status, r.errorCode ?? null]), [['/fast/:id', 200, null], ['/fast/:id', 503, 'DRAINING']]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});
