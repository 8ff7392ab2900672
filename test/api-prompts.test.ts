// The prompt API on a real server (127.0.0.1, port 0) over a real database
// file in a temp directory: authentication, tenant isolation, the PEFT round
// trip through upload and export, and every kind of bad input answered with
// a stable 4xx code, nothing written, and the server still serving.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { f32Bytes, rawSafetensors, randomFloats, adapterConfig, buildPeft, peftForm, api, startServer, ADMIN_KEY, SPEC, type ApiResponse, type TestServer } from './store-helpers.ts';

const SENTIMENT = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' bad', ' good'] } };

function untar(bytes: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let pos = 0;
  while (pos + 512 <= bytes.length) {
    const h = bytes.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    const name = Buffer.from(h.subarray(0, 100)).toString('latin1').replace(/\0.*$/s, '');
    const size = parseInt(Buffer.from(h.subarray(124, 136)).toString('latin1').replace(/\0.*$/s, '').trim(), 8);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    const stored = parseInt(Buffer.from(h.subarray(148, 156)).toString('latin1').replace(/[\0 ].*$/s, ''), 8);
    assert.equal(stored, sum, `tar checksum of ${name}`);
    assert.equal(String.fromCharCode(h[156]!), '0');
    assert.equal(Buffer.from(h.subarray(257, 262)).toString('latin1'), 'ustar');
    out.set(name, bytes.slice(pos + 512, pos + 512 + size));
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

function expectError(r: ApiResponse, status: number, code: string, re?: RegExp): void {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status} ${JSON.stringify(r.json)}`);
  assert.equal(r.json?.error?.code, code, JSON.stringify(r.json));
  assert.equal(typeof r.json.error.message, 'string');
  if (re) assert.match(r.json.error.message, re);
}

async function newTenant(s: TestServer, name: string): Promise<{ id: string; key: string }> {
  const r = await api(s.url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name } });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return { id: r.json.id, key: r.json.api_key };
}

/** What is on disk and in the database: a bad request must change none of it. */
function footprint(s: TestServer): string {
  const rows = s.store.backend.db.prepare('SELECT (SELECT COUNT(*) FROM prompts) AS p, (SELECT COUNT(*) FROM prompt_versions) AS v, (SELECT COUNT(*) FROM tasks) AS t, (SELECT COUNT(*) FROM ensembles) AS e').get();
  return JSON.stringify({ rows, files: readdirSync(s.store.backend.files.dir).sort() });
}

describe('authentication', () => {
  let s: TestServer;
  before(async () => { s = await startServer(); });
  after(async () => { await s.close(); });

  it('no key, unknown key, revoked key: 401; the wrong kind of key: 403', async () => {
    expectError(await api(s.url, 'GET', '/v1/tasks'), 401, 'UNAUTHORIZED');
    expectError(await api(s.url, 'GET', '/v1/tasks', { headers: { authorization: 'Basic abc' } }), 401, 'UNAUTHORIZED');
    expectError(await api(s.url, 'GET', '/v1/tasks', { key: 'ss_nope' }), 401, 'UNAUTHORIZED');
    expectError(await api(s.url, 'POST', '/v1/tenants', { json: { name: 'x' } }), 401, 'UNAUTHORIZED');
    const a = await newTenant(s, 'acme');
    expectError(await api(s.url, 'GET', '/v1/tenants', { key: a.key }), 403, 'FORBIDDEN', /admin key/);
    expectError(await api(s.url, 'GET', '/v1/tasks', { key: ADMIN_KEY }), 403, 'FORBIDDEN', /tenant API key/);
    assert.equal((await api(s.url, 'GET', '/v1/whoami', { key: a.key })).json.id, a.id);
    // a second key, then revoke the first
    const k2 = await api(s.url, 'POST', `/v1/tenants/${a.id}/keys`, { key: ADMIN_KEY });
    assert.equal(k2.status, 201);
    const keys = await api(s.url, 'GET', `/v1/tenants/${a.id}/keys`, { key: ADMIN_KEY });
    assert.equal(keys.json.keys.length, 2);
    assert.ok(keys.json.keys.every((k: Record<string, unknown>) => !('api_key' in k)), 'keys are never shown again');
    const first = keys.json.keys.find((k: { id: string }) => k.id !== k2.json.key.id);
    assert.equal((await api(s.url, 'DELETE', `/v1/tenants/${a.id}/keys/${first.id}`, { key: ADMIN_KEY })).status, 204);
    expectError(await api(s.url, 'GET', '/v1/tasks', { key: a.key }), 401, 'UNAUTHORIZED');
    assert.equal((await api(s.url, 'GET', '/v1/tasks', { key: k2.json.api_key })).status, 200);
    expectError(await api(s.url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name: 'acme' } }), 409, 'CONFLICT');
    expectError(await api(s.url, 'GET', '/v1/tenants/ten_nope', { key: ADMIN_KEY }), 404, 'NOT_FOUND');
  });

  it('without SOFTSERVE_ADMIN_KEY the admin API is closed', async () => {
    const closed = await startServer({ adminKey: null });
    try {
      expectError(await api(closed.url, 'POST', '/v1/tenants', { key: 'anything-at-all-000', json: { name: 'x' } }), 403, 'FORBIDDEN', /disabled/);
    } finally {
      await closed.close();
    }
  });
});

describe('tenant isolation over HTTP', () => {
  let s: TestServer;
  let a: { id: string; key: string };
  let b: { id: string; key: string };
  let exported: Uint8Array;
  before(async () => {
    s = await startServer();
    a = await newTenant(s, 'tenant-a');
    b = await newTenant(s, 'tenant-b');
    assert.equal((await api(s.url, 'POST', '/v1/tasks', { key: a.key, json: SENTIMENT })).status, 201);
    assert.equal((await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key: a.key, body: peftForm('secret', buildPeft(SPEC, 'PREFIX_TUNING', 3, 1)) })).status, 201);
    assert.equal((await api(s.url, 'POST', '/v1/tasks/sentiment/ensembles/e', { key: a.key, json: { members: ['secret'] } })).status, 201);
    exported = (await api(s.url, 'GET', '/v1/tasks/sentiment/prompts/secret/versions/1/export', { key: a.key })).bytes;
  });
  after(async () => { await s.close(); });

  // Each of tenant B's requests for A's things, next to the same request for a name that never existed.
  const probes: Array<[string, string, string, ((k: string) => Record<string, unknown>)?]> = [
    ['GET', '/v1/tasks/{task}', 'task'],
    ['GET', '/v1/tasks/{task}/prompts', 'task'],
    ['GET', '/v1/tasks/{task}/prompts/{prompt}', 'prompt'],
    ['GET', '/v1/tasks/{task}/prompts/{prompt}/versions/1', 'prompt'],
    ['GET', '/v1/tasks/{task}/prompts/{prompt}/versions/latest/export', 'prompt'],
    ['GET', '/v1/tasks/{task}/prompts/{prompt}/versions/1/export?file=adapter_model.safetensors', 'prompt'],
    ['DELETE', '/v1/tasks/{task}/prompts/{prompt}/versions/1', 'prompt'],
    ['DELETE', '/v1/tasks/{task}/prompts/{prompt}', 'prompt'],
    ['GET', '/v1/tasks/{task}/ensembles', 'task'],
    ['GET', '/v1/tasks/{task}/ensembles/{ensemble}', 'ensemble'],
    ['DELETE', '/v1/tasks/{task}/ensembles/{ensemble}', 'ensemble'],
    ['DELETE', '/v1/tasks/{task}', 'task'],
  ];

  it('B cannot read, list, export or delete A\'s task, prompts or ensembles: 404 exactly like a name that does not exist', async () => {
    const before = footprint(s);
    for (const [method, path] of probes) {
      const theirs = await api(s.url, method, path.replace('{task}', 'sentiment').replace('{prompt}', 'secret').replace('{ensemble}', 'e'), { key: b.key });
      const missing = await api(s.url, method, path.replace('{task}', 'nothing').replace('{prompt}', 'nothing').replace('{ensemble}', 'nothing'), { key: b.key });
      expectError(theirs, 404, 'NOT_FOUND');
      assert.equal(theirs.json.error.message.replaceAll('sentiment', 'nothing'), missing.json.error.message, `${method} ${path}`);
    }
    // B cannot write into A's task, nor list it
    expectError(await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key: b.key, body: peftForm('mine', buildPeft(SPEC, 'PROMPT_TUNING', 2, 2)) }), 404, 'NOT_FOUND');
    expectError(await api(s.url, 'POST', '/v1/tasks/sentiment/ensembles/x', { key: b.key, json: { members: ['secret'] } }), 404, 'NOT_FOUND');
    assert.deepEqual((await api(s.url, 'GET', '/v1/tasks', { key: b.key })).json, { tasks: [] });
    assert.equal(footprint(s), before, 'nothing changed');
    // nor use them (the classify path resolves through the same store call)
    await assert.rejects(s.store.resolve(b.id, 'sentiment', { prompt: 'secret' }), { code: 'NOT_FOUND' });
    await assert.rejects(s.store.resolve(b.id, 'sentiment', { ensemble: 'e' }), { code: 'NOT_FOUND' });
  });

  it('B\'s task of the same name is B\'s alone; A\'s prompt is untouched', async () => {
    assert.equal((await api(s.url, 'POST', '/v1/tasks', { key: b.key, json: SENTIMENT })).status, 201);
    assert.deepEqual((await api(s.url, 'GET', '/v1/tasks/sentiment/prompts', { key: b.key })).json, { prompts: [] });
    for (const [method, path] of probes.filter(([, , what]) => what !== 'task')) {
      const r = await api(s.url, method, path.replace('{task}', 'sentiment').replace('{prompt}', 'secret').replace('{ensemble}', 'e'), { key: b.key });
      expectError(r, 404, 'NOT_FOUND');
    }
    // an ensemble in B's task cannot name A's prompt
    expectError(await api(s.url, 'POST', '/v1/tasks/sentiment/ensembles/x', { key: b.key, json: { members: ['secret'] } }), 422, 'INVALID_INPUT', /no prompt "secret"/);
    const still = await api(s.url, 'GET', '/v1/tasks/sentiment/prompts/secret/versions/1/export', { key: a.key });
    assert.deepEqual(still.bytes, exported);
    assert.equal((await api(s.url, 'GET', '/v1/tasks/sentiment/prompts', { key: a.key })).json.prompts.length, 1);
  });
});

describe('PEFT round trip over HTTP', () => {
  let s: TestServer;
  let key: string;
  before(async () => {
    s = await startServer();
    key = (await newTenant(s, 'rt')).key;
    await api(s.url, 'POST', '/v1/tasks', { key, json: SENTIMENT });
    await api(s.url, 'POST', '/v1/tasks', { key, json: { name: 'topic', labels: ['a', 'b', 'c'], template: '{text}', scoring: { type: 'head', pooling: 'last' } } });
  });
  after(async () => { await s.close(); });

  const cases = [
    ['PROMPT_TUNING', 'F32', 'soft'], ['P_TUNING', 'F16', 'ptuning'], ['PREFIX_TUNING', 'BF16', 'prefix'], ['PREFIX_TUNING', 'F32', 'prefix'],
  ] as const;
  for (const [type, dtype, kind] of cases) {
    it(`${type} (${dtype}): upload, export, upload again gives bit-identical tensors and files`, async () => {
      const name = `${kind}-${dtype.toLowerCase()}`;
      const up = await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: peftForm(name, buildPeft(SPEC, type, 5, 42, { dtype })) });
      assert.equal(up.status, 201, JSON.stringify(up.json));
      assert.deepEqual([up.json.kind, up.json.version, up.json.num_virtual_tokens, up.json.source_dtype], [kind, 1, 5, dtype]);
      const tar = await api(s.url, 'GET', `/v1/tasks/sentiment/prompts/${name}/versions/1/export`, { key });
      assert.equal(tar.status, 200);
      assert.equal(tar.headers.get('content-type'), 'application/x-tar');
      const files = untar(tar.bytes);
      assert.deepEqual([...files.keys()], [`${name}-v1/adapter_config.json`, `${name}-v1/adapter_model.safetensors`]);
      const cfg = files.get(`${name}-v1/adapter_config.json`)!;
      const model = files.get(`${name}-v1/adapter_model.safetensors`)!;
      // single-file export gives the same bytes
      assert.deepEqual((await api(s.url, 'GET', `/v1/tasks/sentiment/prompts/${name}/versions/1/export?file=adapter_config.json`, { key })).bytes, cfg);
      assert.deepEqual((await api(s.url, 'GET', `/v1/tasks/sentiment/prompts/${name}/versions/latest/export?file=adapter_model.safetensors`, { key })).bytes, model);
      const again = await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: peftForm(name, { config: cfg, model }) });
      assert.equal(again.status, 201);
      assert.equal(again.json.version, 2);
      assert.equal(again.json.tensor_sha256, up.json.tensor_sha256, 'same stored tensors, bit for bit');
      const tar2 = await api(s.url, 'GET', `/v1/tasks/sentiment/prompts/${name}/versions/2/export`, { key });
      const files2 = untar(tar2.bytes);
      assert.deepEqual(files2.get(`${name}-v2/adapter_model.safetensors`), model);
      assert.deepEqual(files2.get(`${name}-v2/adapter_config.json`), cfg);
      const parsed = JSON.parse(Buffer.from(cfg).toString());
      assert.equal(parsed.token_dim, kind === 'prefix' ? 32 : 64);
      assert.equal(parsed.base_model_name_or_path, 'stories260k');
    });
  }

  it('a JSON prompt exports to PEFT files that upload back to the same tensors; heads travel too', async () => {
    const tensor = Array.from({ length: 3 }, (_, i) => Array.from(randomFloats(64, 100 + i)));
    const up = await api(s.url, 'POST', '/v1/tasks/topic/prompts', { key, json: { name: 'j', kind: 'soft', tensor, head: { weight: Array.from({ length: 3 }, (_, i) => Array.from(randomFloats(64, 200 + i))), bias: [0.5, -0.5, 0] } } });
    assert.equal(up.status, 201, JSON.stringify(up.json));
    assert.equal(up.json.has_head, true);
    const cfg = (await api(s.url, 'GET', '/v1/tasks/topic/prompts/j/versions/1/export?file=adapter_config.json', { key })).bytes;
    const model = (await api(s.url, 'GET', '/v1/tasks/topic/prompts/j/versions/1/export?file=adapter_model.safetensors', { key })).bytes;
    assert.equal(JSON.parse(Buffer.from(cfg).toString()).task_type, 'SEQ_CLS');
    const again = await api(s.url, 'POST', '/v1/tasks/topic/prompts?name=j', { key, body: peftForm(null, { config: cfg, model }) });
    assert.equal(again.status, 201, JSON.stringify(again.json));
    assert.equal(again.json.tensor_sha256, up.json.tensor_sha256);
  });

  it('a "mean_last" head task takes heads of [C, 2H]: upload, PEFT round trip (classify: serving.test.ts); a [C, H] head is refused, as is a wide head on a "last" task', async () => {
    const task = await api(s.url, 'POST', '/v1/tasks', { key, json: { name: 'wide', labels: ['a', 'b', 'c'], template: '{text}', scoring: { type: 'head', pooling: 'mean_last' } } });
    assert.equal(task.status, 201, JSON.stringify(task.json));
    assert.deepEqual(task.json.scoring, { type: 'head', pooling: 'mean_last' });
    const tensor = [Array.from(randomFloats(64, 300))];
    const wide = { weight: Array.from({ length: 3 }, (_, i) => Array.from(randomFloats(128, 310 + i))), bias: [0.1, 0, -0.1] };
    const up = await api(s.url, 'POST', '/v1/tasks/wide/prompts', { key, json: { name: 'w', kind: 'soft', tensor, head: wide } });
    assert.equal(up.status, 201, JSON.stringify(up.json));
    const cfg = (await api(s.url, 'GET', '/v1/tasks/wide/prompts/w/versions/1/export?file=adapter_config.json', { key })).bytes;
    const model = (await api(s.url, 'GET', '/v1/tasks/wide/prompts/w/versions/1/export?file=adapter_model.safetensors', { key })).bytes;
    const again = await api(s.url, 'POST', '/v1/tasks/wide/prompts?name=w', { key, body: peftForm(null, { config: cfg, model }) });
    assert.equal(again.status, 201, JSON.stringify(again.json));
    assert.equal(again.json.tensor_sha256, up.json.tensor_sha256);
    const narrow = { weight: Array.from({ length: 3 }, (_, i) => Array.from(randomFloats(64, 320 + i))) };
    expectError(await api(s.url, 'POST', '/v1/tasks/wide/prompts', { key, json: { name: 'n', kind: 'soft', tensor, head: narrow } }), 422, 'PROMPT_SHAPE_MISMATCH', /pools "mean_last" \(a feature of 128\)/);
    expectError(await api(s.url, 'POST', '/v1/tasks/topic/prompts', { key, json: { name: 'n', kind: 'soft', tensor, head: wide } }), 422, 'PROMPT_SHAPE_MISMATCH', /pools "last" \(a feature of 64\)/);
    expectError(await api(s.url, 'POST', '/v1/tasks', { key, json: { name: 'bad', labels: ['a', 'b'], template: '{text}', scoring: { type: 'head', pooling: 'max' } } }), 422, 'INVALID_TASK', /"last", "mean", "mean_last"/);
  });

  it('lists, gets, deletes versions and prompts; ensembles CRUD; deletes that would break an ensemble are 409', async () => {
    const list = await api(s.url, 'GET', '/v1/tasks/sentiment/prompts', { key });
    assert.ok(list.json.prompts.length >= 1);
    const p = await api(s.url, 'GET', '/v1/tasks/sentiment/prompts/soft-f32', { key });
    assert.deepEqual([p.json.latest_version, p.json.versions.map((v: { version: number }) => v.version)], [2, [1, 2]]);
    const e = await api(s.url, 'POST', '/v1/tasks/sentiment/ensembles', { key, json: { name: 'ens', members: [{ prompt: 'soft-f32', version: 1 }, 'prefix-bf16'] } });
    assert.equal(e.status, 201, JSON.stringify(e.json));
    assert.deepEqual(e.json.members, [{ prompt: 'soft-f32', version: 1 }, { prompt: 'prefix-bf16', version: null }]);
    assert.equal((await api(s.url, 'GET', '/v1/tasks/sentiment/ensembles', { key })).json.ensembles.length, 1);
    expectError(await api(s.url, 'POST', '/v1/tasks/sentiment/ensembles/ens', { key, json: { members: ['soft-f32'] } }), 409, 'CONFLICT');
    expectError(await api(s.url, 'DELETE', '/v1/tasks/sentiment/prompts/soft-f32/versions/1', { key }), 409, 'CONFLICT', /pinned/);
    expectError(await api(s.url, 'DELETE', '/v1/tasks/sentiment/prompts/prefix-bf16', { key }), 409, 'CONFLICT', /ens/);
    assert.equal((await api(s.url, 'DELETE', '/v1/tasks/sentiment/prompts/soft-f32/versions/2', { key })).status, 204);
    assert.equal((await api(s.url, 'DELETE', '/v1/tasks/sentiment/ensembles/ens', { key })).status, 204);
    assert.equal((await api(s.url, 'DELETE', '/v1/tasks/sentiment/prompts/prefix-bf16', { key })).status, 204);
    expectError(await api(s.url, 'GET', '/v1/tasks/sentiment/prompts/prefix-bf16', { key }), 404, 'NOT_FOUND');
    assert.equal((await api(s.url, 'DELETE', '/v1/tasks/sentiment', { key })).status, 204);
    const report = await s.store.fsck();
    assert.deepEqual([report.missing, report.orphans, report.temps, report.corrupt], [[], [], [], []]);
  });
});

describe('bad input: a stable 4xx code, nothing written, the server keeps serving', () => {
  let s: TestServer;
  let key: string;
  const p = 4;
  const cfg = (extra: Record<string, unknown> = {}) => Buffer.from(JSON.stringify(adapterConfig(SPEC, 'PROMPT_TUNING', p, extra)));
  const good = f32Bytes(randomFloats(p * 64, 7));
  const st = (opts: Parameters<typeof rawSafetensors>[1] = {}, t: Partial<Parameters<typeof rawSafetensors>[0][0]> = {}) =>
    rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: good, ...t }], opts);

  before(async () => {
    s = await startServer({ maxJsonBytes: 64 * 1024, maxUploadBytes: 4 * 1024 * 1024 });
    key = (await newTenant(s, 'bad')).key;
    await api(s.url, 'POST', '/v1/tasks', { key, json: SENTIMENT });
    assert.equal((await api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: peftForm('ok', { config: cfg(), model: st() }) })).status, 201);
  });
  after(async () => { await s.close(); });

  async function refused(r: Promise<ApiResponse>, status: number, code: string, re?: RegExp): Promise<ApiResponse> {
    const before = footprint(s);
    const res = await r;
    expectError(res, status, code, re);
    assert.equal(footprint(s), before, 'a refused request changed the store');
    assert.equal((await api(s.url, 'GET', '/healthz')).status, 200);
    return res;
  }
  const upload = (name: string | null, files: { config: Uint8Array; model: Uint8Array }) => api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: peftForm(name, files) });

  it('malformed safetensors', async () => {
    await refused(upload('x', { config: cfg(), model: st({ headerLenOverride: 1n << 40n }) }), 400, 'INVALID_SAFETENSORS', /runs past the end/);
    await refused(upload('x', { config: cfg(), model: st({}, { offsets: [8, 8 + good.length] }) }), 400, 'INVALID_SAFETENSORS', /out of range/);
    await refused(upload('x', { config: cfg(), model: rawSafetensors([
      { name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: good, offsets: [0, good.length] },
      { name: 'base_model.score.weight', dtype: 'F32', shape: [2, 64], bytes: new Uint8Array(512), offsets: [256, 768] },
    ]) }), 400, 'INVALID_SAFETENSORS', /overlap/);
    await refused(upload('x', { config: cfg(), model: st({}, { dtype: 'Q4_K' }) }), 400, 'INVALID_SAFETENSORS', /unknown dtype/);
    await refused(upload('x', { config: cfg(), model: st().subarray(0, 300) }), 400, 'INVALID_SAFETENSORS');
    await refused(upload('x', { config: cfg(), model: st({ headerPad: 3 * 1024 * 1024 }) }), 400, 'INVALID_SAFETENSORS', /exceeds the limit/);
    await refused(upload('x', { config: cfg(), model: new Uint8Array(3) }), 400, 'INVALID_SAFETENSORS');
  });

  it('malformed adapter_config.json, unknown peft_type', async () => {
    await refused(upload('x', { config: Buffer.from('{"peft_type": '), model: st() }), 400, 'INVALID_ADAPTER_CONFIG');
    await refused(upload('x', { config: Buffer.from('[]'), model: st() }), 400, 'INVALID_ADAPTER_CONFIG');
    await refused(upload('x', { config: cfg({ num_virtual_tokens: 0 }), model: st() }), 400, 'INVALID_ADAPTER_CONFIG');
    const r = await refused(upload('x', { config: cfg({ peft_type: 'LORA' }), model: st() }), 422, 'UNSUPPORTED_PEFT_TYPE', /LORA/);
    assert.deepEqual(r.json.error.details.expected, ['PROMPT_TUNING', 'P_TUNING', 'PREFIX_TUNING']);
  });

  it('a prompt for another model\'s size, a wrong dtype, too many tokens: 422 saying what was expected and what came', async () => {
    let r = await refused(upload('x', { config: cfg({ token_dim: 128 }), model: st() }), 422, 'PROMPT_SHAPE_MISMATCH', /token_dim is 128; the loaded model needs 64/);
    assert.deepEqual([r.json.error.details.expected, r.json.error.details.got], [64, 128]);
    r = await refused(upload('x', { config: Buffer.from(JSON.stringify({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: p })), model: rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, 128], bytes: new Uint8Array(p * 512) }]) }), 422, 'PROMPT_SHAPE_MISMATCH', /\[4, 128\]; the loaded model expects \[4, 64\]/);
    await refused(upload('x', buildPeft({ ...SPEC, numLayers: 6 }, 'PREFIX_TUNING', 2, 1)), 422, 'PROMPT_SHAPE_MISMATCH', /num_layers is 6; the loaded model needs 5/);
    await refused(upload('x', { config: cfg(), model: st({}, { dtype: 'F64', bytes: new Uint8Array(p * 64 * 8) }) }), 422, 'PROMPT_DTYPE_UNSUPPORTED', /F64/);
    await refused(upload('x', { config: Buffer.from(JSON.stringify(adapterConfig(SPEC, 'PROMPT_TUNING', 300))), model: rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [300, 64], bytes: new Uint8Array(300 * 256) }]) }), 422, 'PROMPT_TOO_LONG');
    await refused(api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, json: { name: 'x', kind: 'soft', tensor: [[1, 2, 3]] } }), 422, 'PROMPT_SHAPE_MISMATCH', /\[1, 64\]/);
  });

  it('NaN and Inf values', async () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const v = randomFloats(p * 64, 8);
      v[130] = bad;
      const r = await refused(upload('x', { config: cfg(), model: rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: f32Bytes(v) }]) }), 422, 'PROMPT_NOT_FINITE', /index 130/);
      assert.equal(r.json.error.details.index, 130);
    }
    await refused(api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: `{"name":"x","kind":"soft","tensor":[[${Array(63).fill(0).join(',')},1e999]]}`, headers: { 'content-type': 'application/json' } }), 422, 'PROMPT_NOT_FINITE');
  });

  it('names with path separators or control characters', async () => {
    for (const name of ['../evil', 'a/b', 'a\\b', 'a\u0000b', 'a\u001fb', 'a\nb', '.hidden', '', 'x'.repeat(65)]) {
      await refused(upload(name, { config: cfg(), model: st() }), 400, 'INVALID_NAME');
      await refused(api(s.url, 'POST', '/v1/tasks', { key, json: { ...SENTIMENT, name } }), 400, 'INVALID_NAME');
      await refused(api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, json: { name, kind: 'soft', tensor: [Array(64).fill(0)] } }), 400, 'INVALID_NAME');
    }
    await refused(upload(null, { config: cfg(), model: st() }), 400, 'INVALID_NAME', /needs a name/);
    for (const enc of ['..%2Fetc', 'a%2Fb', 'a%5Cb', 'a%00b', 'a%0Ab']) {
      await refused(api(s.url, 'GET', `/v1/tasks/${enc}`, { key }), 400, 'INVALID_NAME');
      await refused(api(s.url, 'GET', `/v1/tasks/sentiment/prompts/${enc}`, { key }), 400, 'INVALID_NAME');
      await refused(api(s.url, 'DELETE', `/v1/tasks/sentiment/prompts/${enc}`, { key }), 400, 'INVALID_NAME');
      await refused(api(s.url, 'POST', `/v1/tasks/sentiment/prompts?name=${enc}`, { key, body: peftForm(null, { config: cfg(), model: st() }) }), 400, 'INVALID_NAME');
    }
    await refused(api(s.url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name: 'evil/../x' } }), 400, 'INVALID_NAME');
  });

  it('oversized bodies: 413, and the connection is not left in a bad state', async () => {
    await refused(api(s.url, 'POST', '/v1/tasks', { key, json: { ...SENTIMENT, name: 'big', template: `{text}${'x'.repeat(100 * 1024)}` } }), 413, 'PAYLOAD_TOO_LARGE');
    await refused(api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, json: { name: 'x', kind: 'soft', tensor: Array.from({ length: 200 }, () => Array(64).fill(0.123456789)) } }), 413, 'PAYLOAD_TOO_LARGE');
    await refused(upload('x', { config: cfg(), model: new Uint8Array(5 * 1024 * 1024) }), 413, 'PAYLOAD_TOO_LARGE', /larger than the limit/);
    await refused(upload('x', { config: new Uint8Array(70 * 1024).fill(0x20), model: st() }), 413, 'PAYLOAD_TOO_LARGE', /adapter_config/);
    // a raw client that sends a big body and reads the answer
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${s.url}/v1/tasks/sentiment/prompts`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'multipart/form-data; boundary=XyZ' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.write('--XyZ\r\nContent-Disposition: form-data; name="adapter_model"; filename="adapter_model.safetensors"\r\n\r\n');
      const chunk = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < 6; i++) req.write(chunk);
      req.end('\r\n--XyZ--\r\n');
    });
    assert.equal(status, 413);
    assert.equal((await api(s.url, 'GET', '/healthz')).status, 200);
  });

  it('malformed requests: bad JSON, bad multipart, missing parts, wrong content type, unknown routes', async () => {
    await refused(api(s.url, 'POST', '/v1/tasks', { key, body: '{"name": ', headers: { 'content-type': 'application/json' } }), 400, 'INVALID_JSON');
    await refused(api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: '--nope\r\ngarbage', headers: { 'content-type': 'multipart/form-data' } }), 400, 'INVALID_MULTIPART');
    await refused(api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: '--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--b', headers: { 'content-type': 'multipart/form-data; boundary=b' } }), 400, 'INVALID_MULTIPART');
    const onlyConfig = new FormData();
    onlyConfig.append('name', 'x');
    onlyConfig.append('adapter_config', new Blob([cfg()]), 'adapter_config.json');
    await refused(api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: onlyConfig }), 400, 'INVALID_MULTIPART', /two file parts/);
    const extra = peftForm('x', { config: cfg(), model: st() });
    extra.append('pickle', new Blob([new Uint8Array(10)]), 'adapter_model.bin');
    await refused(api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: extra }), 400, 'INVALID_MULTIPART');
    await refused(api(s.url, 'POST', '/v1/tasks/sentiment/prompts', { key, body: 'hello', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    await refused(api(s.url, 'GET', '/v1/nope', { key }), 404, 'NOT_FOUND', /no route/);
    await refused(api(s.url, 'PATCH', '/v1/tasks/sentiment', { key }), 404, 'NOT_FOUND');
    await refused(api(s.url, 'GET', '/v1/tasks/sentiment/prompts/ok/versions/0', { key }), 400, 'BAD_REQUEST');
    await refused(api(s.url, 'GET', '/v1/tasks/sentiment/prompts/ok/versions/1/export?file=../../etc/passwd', { key }), 400, 'BAD_REQUEST');
  });

  it('after all of it the store is consistent and uploads still work', async () => {
    const ok = await upload('ok', { config: cfg(), model: st() });
    assert.equal(ok.status, 201);
    assert.equal(ok.json.version, 2);
    const report = await s.store.fsck();
    assert.deepEqual([report.rows, report.missing, report.orphans, report.temps, report.corrupt], [2, [], [], [], []]);
  });
});
