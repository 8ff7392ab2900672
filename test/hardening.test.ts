// Issue 11, points 5 and 6 over HTTP, on a real server (127.0.0.1, port 0)
// over a real store: every loose input has its own stable code, and nothing
// leaks (file-system paths, tenant ids in metrics, cacheable keys), and every
// answer and log line of a request carries its request id.

import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { findDuplicateKey } from '../models/json-keys.ts';
import { loadTokenizer } from '../models/tokenizer.ts';
import { labelTokenId } from '../prompts/template.ts';
import { loadConfig } from '../server/config.ts';
import { Metrics } from '../server/metrics.ts';
import { redactPaths } from '../server/redact.ts';
import { ADMIN_KEY, api, adapterConfig, buildPeft, f32Bytes, peftForm, randomFloats, rawSafetensors, SPEC, startServer, type ApiResponse, type TestServer } from './store-helpers.ts';
import { createTask, createTenant, nested, startServingServer, STORIES_DIR, uploadPrompt, type ServingTestServer } from './serving-helpers.ts';

const SENTIMENT = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' bad', ' good'] } };

function expectError(r: ApiResponse, status: number, code: string, re?: RegExp): void {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status} ${JSON.stringify(r.json)}`);
  assert.equal(r.json?.error?.code, code, JSON.stringify(r.json));
  if (re) assert.match(r.json.error.message, re);
  assert.equal(r.json.error.request_id, r.headers.get('x-request-id'), 'the error body names the request id');
}

async function tenantKey(s: TestServer, name: string): Promise<string> {
  const r = await api(s.url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name } });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json.api_key as string;
}

describe('strict validation: one stable code for each loose input', () => {
  let s: TestServer;
  let key: string;
  before(async () => {
    s = await startServer();
    key = await tenantKey(s, 'acme');
    assert.equal((await api(s.url, 'POST', '/v1/tasks', { key, json: SENTIMENT })).status, 201);
  });
  after(async () => { await s.close(); });

  it('templates: reversed, empty, too long, overlapping, gapped or malformed {soft} slots are INVALID_TEMPLATE', async () => {
    const cases: Array<[string, RegExp]> = [
      ['{soft:5-2} {text}', /reversed/],
      ['{soft:3-3} {text}', /empty/],
      ['{soft:0-99999999999} {text}', /past the limit of 256/],
      ['{soft:0-4} {text} {soft:2-6}', /overlaps/],
      ['{soft} {text} {soft:0-2}', /cannot appear twice or beside/],
      ['{soft} {text} {soft}', /cannot appear twice/],
      ['{soft:0-2} {text} {soft:3-5}', /tokens 2..2/],
      ['{soft:1-3} {text}', /tokens 0..0/],
      ['{soft:4} {text}', /malformed slot/],
    ];
    for (const [template, re] of cases) {
      const r = await api(s.url, 'POST', '/v1/tasks', { key, json: { ...SENTIMENT, name: 'bad-template', template } });
      expectError(r, 422, 'INVALID_TEMPLATE', re);
    }
    assert.equal((await api(s.url, 'GET', '/v1/tasks/bad-template', { key })).status, 404, 'nothing was written');
  });

  it('a prompt whose length the ranged slots do not place exactly is PROMPT_TEMPLATE_MISMATCH; the exact length is taken', async () => {
    const task = { ...SENTIMENT, name: 'ptuned', template: '{soft:0-2} {text} {soft:2-4} It was' };
    assert.equal((await api(s.url, 'POST', '/v1/tasks', { key, json: task })).status, 201);
    const tensor = (p: number) => Array.from({ length: p }, (_, i) => Array.from(randomFloats(SPEC.hiddenSize, i + 1)));
    expectError(await api(s.url, 'POST', '/v1/tasks/ptuned/prompts', { key, json: { name: 'short', kind: 'ptuning', tensor: tensor(3) } }), 422, 'PROMPT_TEMPLATE_MISMATCH', /places 4 virtual tokens.*has 3/);
    expectError(await api(s.url, 'POST', '/v1/tasks/ptuned/prompts', { key, json: { name: 'long', kind: 'soft', tensor: tensor(6) } }), 422, 'PROMPT_TEMPLATE_MISMATCH');
    assert.equal((await api(s.url, 'POST', '/v1/tasks/ptuned/prompts', { key, json: { name: 'exact', kind: 'ptuning', tensor: tensor(4) } })).status, 201);
  });

  it('identical label words are AMBIGUOUS_LABEL_WORDS', async () => {
    const r = await api(s.url, 'POST', '/v1/tasks', { key, json: { ...SENTIMENT, name: 'same', scoring: { type: 'verbalizer', label_words: ['good', ' good '] } } });
    expectError(r, 422, 'AMBIGUOUS_LABEL_WORDS', /same word/);
  });

  it('safetensors with trailing bytes, a gap between tensors, or a key twice in its header: INVALID_SAFETENSORS', async () => {
    const p = 4;
    const cfg = Buffer.from(JSON.stringify(adapterConfig(SPEC, 'PROMPT_TUNING', p)));
    const good = buildPeft(SPEC, 'PROMPT_TUNING', p, 7);
    const trailing = new Uint8Array(good.model.length + 3);
    trailing.set(good.model);
    const bytes = f32Bytes(randomFloats(p * SPEC.hiddenSize, 3));
    const gap = rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, SPEC.hiddenSize], bytes: new Uint8Array([...bytes, 0, 0, 0, 0]), offsets: [4, 4 + bytes.length] }]);
    // A header naming prompt_embeddings twice: JSON.parse would keep the second silently.
    const text = JSON.stringify({ prompt_embeddings: { dtype: 'F32', shape: [p, SPEC.hiddenSize], data_offsets: [0, bytes.length] } });
    const dupHeader = `${text.slice(0, -1)},"prompt_embeddings":${JSON.stringify({ dtype: 'F32', shape: [p, SPEC.hiddenSize], data_offsets: [0, bytes.length] })}}`;
    const h = Buffer.from(dupHeader.padEnd(Math.ceil((dupHeader.length + 8) / 8) * 8 - 8, ' '));
    const dup = new Uint8Array(8 + h.length + bytes.length);
    new DataView(dup.buffer).setBigUint64(0, BigInt(h.length), true);
    dup.set(h, 8);
    dup.set(bytes, 8 + h.length);
    const cases: Array<[Uint8Array, RegExp]> = [[trailing, /3 trailing bytes/], [gap, /bytes 0..4 .*belong to no tensor/], [dup, /"prompt_embeddings" appears twice/]];
    for (const [model, re] of cases) {
      const r = await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: peftForm('p', { config: cfg, model }) });
      expectError(r, 400, 'INVALID_SAFETENSORS', re);
    }
    const dupConfig = Buffer.from(`{"peft_type":"LORA",${JSON.stringify(adapterConfig(SPEC, 'PROMPT_TUNING', p)).slice(1)}`);
    expectError(await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: peftForm('p', { config: dupConfig, model: good.model }) }), 400, 'INVALID_ADAPTER_CONFIG', /"peft_type" appears twice/);
    assert.equal((await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: peftForm('p', good) })).status, 201, 'the well-formed file is taken');
  });

  it('a part named .bin (or a config not named .json) is INVALID_MULTIPART', async () => {
    const good = buildPeft(SPEC, 'PROMPT_TUNING', 2, 9);
    const form = new FormData();
    form.append('name', 'pickled');
    form.append('adapter_config', new Blob([new Uint8Array(good.config)]), 'adapter_config.json');
    form.append('adapter_model', new Blob([new Uint8Array(good.model)]), 'adapter_model.bin');
    expectError(await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: form }), 400, 'INVALID_MULTIPART', /adapter_model\.bin.*\.safetensors/);
    const form2 = new FormData();
    form2.append('name', 'yaml');
    form2.append('adapter_config', new Blob([new Uint8Array(good.config)]), 'adapter_config.yaml');
    form2.append('adapter_model', new Blob([new Uint8Array(good.model)]), 'adapter_model.safetensors');
    expectError(await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: form2 }), 400, 'INVALID_MULTIPART', /\.json file/);
    // The field decides the role: the tensors part cannot pass as a config by its file name.
    const form3 = new FormData();
    form3.append('name', 'swapped');
    form3.append('adapter_config', new Blob([new Uint8Array(good.config)]), 'adapter_config.json');
    form3.append('adapter_model', new Blob([new Uint8Array(good.model)]), 'adapter_config.json');
    expectError(await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: form3 }), 400, 'INVALID_MULTIPART', /must be a \.safetensors file/);
  });

  it('non-JSON bodies on JSON routes are 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const text = (path: string, k: string) => api(s.url, 'POST', path, { key: k, body: '{"name":"x"}', headers: { 'content-type': 'text/plain' } });
    expectError(await text('/v1/tasks', key), 415, 'UNSUPPORTED_MEDIA_TYPE', /text\/plain/);
    expectError(await text('/v1/tasks/sentiment/ensembles', key), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await text('/v1/tenants', ADMIN_KEY), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectError(await text('/v1/tasks/sentiment/prompts', key), 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('an ensemble naming one prompt twice (by name, or pinned beside its latest) is DUPLICATE_ENSEMBLE_MEMBER', async () => {
    expectError(await api(s.url, 'POST', '/v1/tasks/sentiment/ensembles/e', { key, json: { members: ['p', 'p'] } }), 422, 'DUPLICATE_ENSEMBLE_MEMBER', /"p" is listed twice/);
    expectError(await api(s.url, 'POST', '/v1/tasks/sentiment/ensembles/e', { key, json: { members: ['p', { prompt: 'p', version: 1 }] } }), 422, 'DUPLICATE_ENSEMBLE_MEMBER');
    assert.equal((await api(s.url, 'GET', '/v1/tasks/sentiment/ensembles/e', { key })).status, 404);
  });
});

describe('no leaks', () => {
  let s: TestServer;
  let key: string;
  before(async () => {
    s = await startServer();
    key = await tenantKey(s, 'acme');
    assert.equal((await api(s.url, 'POST', '/v1/tasks', { key, json: SENTIMENT })).status, 201);
  });
  after(async () => { await s.close(); });

  it('a 500 from a missing tensor file says neither the data directory nor any path, and names the request id', async () => {
    const up = await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: peftForm('gone', buildPeft(SPEC, 'PROMPT_TUNING', 2, 11)) });
    assert.equal(up.status, 201);
    const dir = join(s.dataDir, 'tensors');
    for (const f of readdirSync(dir)) rmSync(join(dir, f));
    s.store.residency.forget(up.json.tensor_sha256 as string);
    const r = await api(s.url, 'GET', '/v1/tasks/sentiment/prompts/gone/versions/latest/export', { key, headers: { 'x-request-id': 'trace-500.a' } });
    expectError(r, 500, 'PROMPT_FILE_CORRUPT', /request id trace-500\.a/);
    const body = Buffer.from(r.bytes).toString('utf8');
    assert.ok(!body.includes(s.dataDir), body);
    assert.doesNotMatch(body, /\/tmp|\/work|\/home|ENOENT|\.safetensors/, body);
    assert.equal(r.json.error.details, undefined);
  });

  it('every /v1 answer is Cache-Control: no-store (tenant and key creation carry keys)', async () => {
    const t = await api(s.url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name: 'other' } });
    assert.equal(t.status, 201);
    assert.equal(t.headers.get('cache-control'), 'no-store');
    const k = await api(s.url, 'POST', `/v1/tenants/${t.json.id}/keys`, { key: ADMIN_KEY });
    assert.equal(k.status, 201);
    assert.equal(k.headers.get('cache-control'), 'no-store');
    assert.equal((await api(s.url, 'GET', '/v1/tasks', { key })).headers.get('cache-control'), 'no-store');
    assert.equal((await api(s.url, 'GET', '/v1/nothing', { key })).headers.get('cache-control'), 'no-store');
  });

  it('request ids: a well-formed incoming one is kept, anything else replaced; every answer has one', async () => {
    const kept = await api(s.url, 'GET', '/v1/tasks', { key, headers: { 'x-request-id': 'abc-123_X.y:z' } });
    assert.equal(kept.headers.get('x-request-id'), 'abc-123_X.y:z');
    for (const bad of ['has space', 'x'.repeat(129), 'quote"d', 'ünïcode', '']) {
      const r = await api(s.url, 'GET', '/v1/tasks', { key, headers: { 'x-request-id': encodeURIComponent(bad) === bad ? bad : Buffer.from(bad).toString('latin1') } });
      const id = r.headers.get('x-request-id') ?? '';
      assert.notEqual(id, bad);
      assert.match(id, /^[0-9a-f-]{36}$/);
    }
    const a = await api(s.url, 'GET', '/healthz');
    const b = await api(s.url, 'GET', '/healthz');
    assert.ok(a.headers.get('x-request-id') && a.headers.get('x-request-id') !== b.headers.get('x-request-id'));
    expectError(await api(s.url, 'GET', '/v1/tasks'), 401, 'UNAUTHORIZED');
    // An unknown route echoes the client's own URL path: it is not a file path to hide.
    expectError(await api(s.url, 'GET', '/info/x/y'), 404, 'NOT_FOUND', /no route GET \/info\/x\/y/);
  });

  it('redaction keeps API paths and removes file paths', () => {
    assert.equal(redactPaths("ENOENT: no such file or directory, open '/srv/data/tensors/ab.safetensors'"), "ENOENT: no such file or directory, open '<path>'");
    assert.equal(redactPaths('no route GET /v1/tasks/x/y'), 'no route GET /v1/tasks/x/y');
    assert.equal(redactPaths('at file:///srv/app/x.ts:3'), 'at <path>');
    assert.equal(redactPaths('model /opt/models/m/config.json missing'), 'model <path> missing');
  });

  it('tenant metric labels: hash (default), id or none; the metrics token and label mode are checked at start', () => {
    const id = 'ten_0123456789abcdef';
    const hashed = new Metrics().tenantLabel(id);
    assert.match(hashed, /^[0-9a-f]{12}$/);
    assert.equal(new Metrics(100, 'hash').tenantLabel(id), hashed, 'stable');
    assert.notEqual(new Metrics().tenantLabel('ten_other'), hashed);
    assert.equal(new Metrics(100, 'id').tenantLabel(id), id);
    assert.equal(new Metrics(100, 'none').tenantLabel(id), 'all');
    const capped = new Metrics(2, 'hash');
    assert.deepEqual(['a', 'b', 'c'].map((t) => capped.tenantLabel(t) === 'other'), [false, false, true]);
    assert.equal(loadConfig({}).metricsTenantLabel, 'hash');
    assert.equal(loadConfig({}).metricsToken, null);
    assert.equal(loadConfig({ SOFTSERVE_METRICS_TENANT_LABEL: 'none', SOFTSERVE_METRICS_TOKEN: 'x'.repeat(16) }).metricsTenantLabel, 'none');
    assert.throws(() => loadConfig({ SOFTSERVE_METRICS_TENANT_LABEL: 'name' }), /hash, id or none/);
    assert.throws(() => loadConfig({ SOFTSERVE_METRICS_TOKEN: 'short' }), /at least 16/);
  });

  it('the duplicate-key scan finds repeats at any depth and nothing in clean JSON', () => {
    assert.deepEqual(findDuplicateKey('{"a":1,"b":{"c":[{"d":1,"d":2}]}}'), { key: 'd', path: ['b', 'c', '[]'] });
    assert.deepEqual(findDuplicateKey('{"a":{"x":1},"a":2}'), { key: 'a', path: [] });
    assert.equal(findDuplicateKey('{"a":"\\"a\\":","b":["a","a"],"c":{"a":1}}'), null);
    assert.deepEqual(findDuplicateKey('{"\\u0061":1,"a":2}'), { key: 'a', path: [] }, 'keys compare decoded');
  });
});

describe('on the serving stack (stories260k)', () => {
  let srv: ServingTestServer;
  let key: string;
  const METRICS_TOKEN = 'metrics-token-0123456789';
  before(async () => {
    srv = await startServingServer({ config: { metricsToken: METRICS_TOKEN } });
    key = await createTenant(srv.url, 'acme');
    await createTask(srv.url, key, { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: ['sad', 'happy'] } });
    const tensor = nested([2, 64], 5);
    await uploadPrompt(srv.url, key, 'sentiment', { name: 'p1', kind: 'soft', tensor });
  });
  after(async () => { await srv.close(); });

  it('label words whose scored first tokens collide are AMBIGUOUS_LABEL_WORDS', async () => {
    const tok = loadTokenizer(STORIES_DIR);
    assert.equal(labelTokenId('good', tok), labelTokenId('great', tok), 'precondition: both start with the same token on this vocabulary');
    const r = await api(srv.url, 'POST', '/v1/tasks', { key, json: { name: 'collide', labels: ['a', 'b'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: ['good', 'great'] } } });
    expectError(r, 422, 'AMBIGUOUS_LABEL_WORDS', /both score the token/);
  });

  it('classify: text/plain is 415; a prompts list naming one prompt twice is DUPLICATE_ENSEMBLE_MEMBER', async () => {
    const plain = await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, body: JSON.stringify({ inputs: ['a'] }), headers: { 'content-type': 'text/plain' } });
    expectError(plain, 415, 'UNSUPPORTED_MEDIA_TYPE');
    const twice = await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, json: { inputs: ['a'], prompts: ['p1', { name: 'p1', version: 1 }] } });
    expectError(twice, 422, 'DUPLICATE_ENSEMBLE_MEMBER');
  });

  it('the request log line of a classify carries its request id, a refused one too', async () => {
    const r = await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, json: { inputs: ['a fine day'], prompt: 'p1' }, headers: { 'x-request-id': 'trace-classify-1' } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.headers.get('x-request-id'), 'trace-classify-1');
    const line = srv.logs.find((l) => l.msg === 'request' && l.request_id === 'trace-classify-1');
    assert.ok(line, 'a request line with the id');
    assert.equal(line.status, 200);
    const bad = await api(srv.url, 'POST', '/v1/tasks/sentiment/classify', { key, json: { inputs: [] }, headers: { 'x-request-id': 'trace-classify-2' } });
    expectError(bad, 400, 'BAD_REQUEST');
    const badLine = srv.logs.find((l) => l.msg === 'request' && l.request_id === 'trace-classify-2');
    assert.equal(badLine?.status, 400);
  });

  it('/metrics needs its own token when one is set, and shows hashed tenant labels', async () => {
    expectError(await api(srv.url, 'GET', '/metrics'), 401, 'UNAUTHORIZED');
    expectError(await api(srv.url, 'GET', '/metrics', { key }), 401, 'UNAUTHORIZED', /wrong metrics token/);
    const m = await api(srv.url, 'GET', '/metrics', { key: METRICS_TOKEN });
    assert.equal(m.status, 200);
    const text = Buffer.from(m.bytes).toString('utf8');
    const who = await api(srv.url, 'GET', '/v1/whoami', { key });
    const tenantId = who.json.id as string;
    assert.ok(!text.includes(tenantId), 'no tenant id in any label');
    const labels = [...text.matchAll(/^softserve_tenant_requests_total\{tenant="([^"]*)"\} (\d+)/gm)].map((x) => x[1]);
    assert.ok(labels.length >= 1);
    for (const l of labels) assert.match(l!, /^[0-9a-f]{12}$/);
  });
});
