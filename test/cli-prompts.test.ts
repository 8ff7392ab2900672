// The `softserve` CLI against a real server it started: prompts (PEFT push,
// pull back as the files PEFT loads, push again to the same tensors; ls,
// show, inspect, rm), ensembles, and classify (texts; a file split into
// requests of at most the server's max inputs from /info, in input order;
// 429s made for real by a one-request-per-tenant limit, retried after Retry-After).

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { runCli, startCliServer, type CliServer } from './cli-helpers.ts';
import { api, buildPeft, SPEC, tempDir } from './store-helpers.ts';

const ADMIN = 'cli-test-admin-key-0123456789';
const MAX_INPUTS = 4;
const work = tempDir('cli-prompts');
let srv: CliServer;
let key: string;

const cli = (args: string[], stdin?: string) => runCli(args, { env: { SOFTSERVE_URL: srv.url, SOFTSERVE_API_KEY: key }, ...(stdin !== undefined ? { stdin } : {}) });
const jsonOf = (r: { stdout: string }) => JSON.parse(r.stdout);
const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));

before(async () => {
  // MAX_INPUTS per request and one row per batch: the splitting test reads requests and batches from the logs.
  srv = await startCliServer(join(work, 'data'), {
    SOFTSERVE_ADMIN_KEY: ADMIN, SOFTSERVE_MAX_INPUTS: String(MAX_INPUTS), SOFTSERVE_QUEUE_MAX_TENANT_ROWS: String(MAX_INPUTS), SOFTSERVE_BATCH_MAX_ROWS: '1',
  });
  // Set-up over HTTP (the CLI's tenant and task commands are tested in cli.test.ts).
  const t = await api(srv.url, 'POST', '/v1/tenants', { key: ADMIN, json: { name: 'prompter' } });
  key = t.json.api_key;
  const task = await api(srv.url, 'POST', '/v1/tasks', { key, json: { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: ['sad', 'happy'] } } });
  assert.equal(task.status, 201);
});
after(async () => {
  await srv.stop();
  rmSync(work, { recursive: true, force: true });
});

/** The tensors of a safetensors file: name -> {dtype, shape, bytes}. */
function readSafetensors(bytes: Uint8Array): Map<string, { dtype: string; shape: number[]; bytes: Buffer }> {
  const buf = Buffer.from(bytes);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, { dtype: string; shape: number[]; bytes: Buffer }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out.set(name, { dtype: t.dtype, shape: t.shape, bytes: buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]) });
  }
  return out;
}

describe('prompts', () => {
  for (const type of ['PROMPT_TUNING', 'PREFIX_TUNING'] as const) {
    it(`${type}: push a PEFT directory, pull it back as the files PEFT loads, push those again to the same tensors`, async () => {
      const built = buildPeft(SPEC, type, 4, type === 'PREFIX_TUNING' ? 7 : 3);
      const dir = join(work, `peft-${type}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'adapter_config.json'), built.config);
      writeFileSync(join(dir, 'adapter_model.safetensors'), built.model);
      const name = type === 'PREFIX_TUNING' ? 'pre' : 'soft';
      const pushed = await cli(['prompts', 'push', dir, '--task', 'sentiment', '--name', name, '--json']);
      assert.equal(pushed.code, 0, pushed.stderr);
      const v1 = jsonOf(pushed);
      assert.equal(v1.kind, type === 'PREFIX_TUNING' ? 'prefix' : 'soft');

      const out = join(work, `pulled-${type}`);
      const pulled = await cli(['prompts', 'pull', name, out, '--task', 'sentiment']);
      assert.equal(pulled.code, 0, pulled.stderr);
      // The files PEFT loads: the same tensor (name, dtype, shape, bytes) and the shape-deciding config.
      const got = readSafetensors(readFileSync(join(out, 'adapter_model.safetensors')));
      const want = readSafetensors(built.model);
      assert.deepEqual([...got.keys()], ['prompt_embeddings']);
      assert.equal(got.get('prompt_embeddings')!.dtype, 'F32');
      assert.deepEqual(got.get('prompt_embeddings')!.shape, want.get('prompt_embeddings')!.shape);
      assert.ok(got.get('prompt_embeddings')!.bytes.equals(want.get('prompt_embeddings')!.bytes), 'bit-identical values');
      const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
      const orig = JSON.parse(Buffer.from(built.config).toString('utf8'));
      for (const k of ['peft_type', 'num_virtual_tokens', 'token_dim', 'num_layers', 'num_attention_heads', 'base_model_name_or_path', 'task_type']) assert.deepEqual(cfg[k], orig[k], k);
      // The pulled bytes are exactly the server's export; pushing them again gives the same stored tensors.
      const again = jsonOf(await cli(['prompts', 'push', out, '--task', 'sentiment', '--name', name, '--json']));
      assert.equal(again.version, 2);
      assert.equal(again.tensor_sha256, v1.tensor_sha256);
      const pulled2 = join(work, `pulled2-${type}`);
      assert.equal((await cli(['prompts', 'pull', `${name}@2`, pulled2, '--task', 'sentiment'])).code, 0);
      for (const f of ['adapter_config.json', 'adapter_model.safetensors']) assert.ok(readFileSync(join(pulled2, f)).equals(readFileSync(join(out, f))), f);
    });
  }

  it('push of a directory without PEFT files is a runtime error naming the file', async () => {
    const r = await cli(['prompts', 'push', join(work, 'nowhere'), '--task', 'sentiment']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot read .*adapter_config\.json: ENOENT/);
  });

  it('ls, show, inspect (nearest tokens; prefix norms), rm of a version and of a prompt', async () => {
    const ls = await cli(['prompts', 'ls', '-t', 'sentiment']);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^pre\s+v2\s+2\s+prefix\s+4\s+peft/m);
    assert.match(ls.stdout, /^soft\s+v2\s+2\s+soft\s+4\s+peft/m);
    const show = jsonOf(await cli(['prompts', 'show', 'soft', '-t', 'sentiment', '--json']));
    assert.deepEqual(show.versions.map((v: { version: number }) => v.version), [1, 2]);

    const soft = await cli(['prompts', 'inspect', 'soft', '-t', 'sentiment', '-k', '3', '--json']);
    assert.equal(soft.code, 0, soft.stderr);
    const sj = jsonOf(soft);
    assert.equal(sj.tokens.length, 4);
    for (const t of sj.tokens) assert.equal(t.nearest.length, 3);
    const softHuman = await cli(['prompts', 'inspect', 'soft', '-t', 'sentiment', '-k', '2']);
    assert.match(softHuman.stdout, /soft, 4 virtual tokens/);
    assert.match(softHuman.stdout, /^#0\s+\d+\.\d{3}\s+".*" -?\d\.\d\d/m);
    const pre = jsonOf(await cli(['prompts', 'inspect', 'pre@1', '-t', 'sentiment', '--json']));
    assert.equal(pre.layers.length, SPEC.numLayers);
    const preHuman = await cli(['prompts', 'inspect', 'pre', '-t', 'sentiment']);
    assert.match(preHuman.stdout, /^LAYER\s+KEY NORM\s+VALUE NORM/m);

    assert.equal((await cli(['prompts', 'rm', 'soft@1', '-t', 'sentiment'])).code, 0);
    assert.deepEqual(jsonOf(await cli(['prompts', 'show', 'soft', '-t', 'sentiment', '--json'])).versions.map((v: { version: number }) => v.version), [2]);
  });
});

describe('ensembles and classify', () => {
  it('ensembles create/ls/rm; classify texts with a prompt and an ensemble (JSON lines with votes)', async () => {
    const made = await cli(['ensembles', 'create', 'duo', 'soft', 'pre@1', '-t', 'sentiment', '--json']);
    assert.equal(made.code, 0, made.stderr);
    assert.deepEqual(jsonOf(made).members, [{ prompt: 'soft', version: null }, { prompt: 'pre', version: 1 }]);
    const ls = await cli(['ensembles', 'ls', '-t', 'sentiment']);
    assert.match(ls.stdout, /^duo\s+2\s+soft, pre@1/m);
    const inUse = await cli(['prompts', 'rm', 'soft', '-t', 'sentiment']);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, /error CONFLICT \(HTTP 409\)/);

    const zero = await cli(['classify', 'sentiment', 'a happy day', 'a sad day']);
    assert.equal(zero.code, 0, zero.stderr);
    const zl = lines(zero.stdout);
    assert.deepEqual(zl.map((l) => l.text), ['a happy day', 'a sad day']);
    for (const l of zl) {
      assert.ok(['negative', 'positive'].includes(l.label));
      assert.ok(Math.abs(l.scores.negative + l.scores.positive - 1) < 1e-6);
    }
    const voted = lines((await cli(['classify', 'sentiment', 'a happy day', '-e', 'duo'])).stdout);
    assert.deepEqual(voted[0].votes.map((v: { prompt: string }) => v.prompt), ['soft', 'pre']);
    const two = await cli(['classify', 'sentiment', 'x', '--prompt', 'soft', '--ensemble', 'duo']);
    assert.equal(two.code, 2);

    assert.equal((await cli(['ensembles', 'rm', 'duo', '-t', 'sentiment'])).code, 0);
    assert.deepEqual(jsonOf(await cli(['ensembles', 'ls', '-t', 'sentiment', '--json'])).ensembles, []);
  });

  it('classify --file: requests of at most /info max inputs, lines in input order, expected labels and accuracy', async () => {
    const texts = Array.from({ length: 10 }, (_, i) => `story number ${i} was ${i % 2 ? 'happy' : 'sad'}`);
    const file = join(work, 'in.jsonl');
    writeFileSync(file, texts.map((t, i) => (i === 3 ? JSON.stringify(t) : JSON.stringify({ text: t, label: i % 2 ? 'positive' : 'negative', id: `r${i}` }))).join('\n') + '\n\n');
    const before = srv.logs.filter((l) => l.path === '/v1/tasks/sentiment/classify').length;
    const r = await cli(['classify', 'sentiment', '--file', file, '--prompt', 'soft', '--concurrency', '1']);
    assert.equal(r.code, 0, r.stderr);
    const out = lines(r.stdout);
    assert.deepEqual(out.map((l) => l.text), texts);
    assert.deepEqual(out.map((l) => l.line), texts.map((_, i) => i + 1));
    assert.equal(out[3].expected, undefined);
    assert.equal(out[4].id, 'r4');
    assert.equal(out[4].expected, 'negative');
    const correct = out.filter((l) => l.expected !== undefined && l.expected === l.label).length;
    assert.match(r.stderr, new RegExp(`accuracy against the file's labels: [0-9.]+ \\(${correct}/9\\)`));
    // The server saw ceil(10 / MAX_INPUTS) requests of at most MAX_INPUTS rows.
    const expected = [4, 4, 2];
    await srv.waitLogs((logs) => logs.filter((l) => l.path === '/v1/tasks/sentiment/classify').length >= before + expected.length);
    const seen = srv.logs.filter((l) => l.path === '/v1/tasks/sentiment/classify').slice(before);
    assert.deepEqual(seen.map((l) => [l.status, l.rows]), expected.map((n) => [200, n]));

    const bad = join(work, 'bad.jsonl');
    writeFileSync(bad, '{"text": "ok"}\nnot json\n');
    const refused = await cli(['classify', 'sentiment', '--file', bad]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /bad\.jsonl:2: not JSON/);
    const stdin = await cli(['classify', 'sentiment', '--file', '-'], '"from stdin"\n');
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.equal(lines(stdin.stdout)[0].text, 'from stdin');
  });
});

// 429s made by state, not by luck: one request in flight per tenant, and a
// request's rows wait in the queue for company for 1.5 s (no other tenant
// sends any), so the requests the CLI sends together find the first one
// still in flight and are refused with TENANT_LIMIT.
describe('classify retries on 429', () => {
  let busy: CliServer;
  let busyKey: string;
  const busyCli = (args: string[]) => runCli(args, { env: { SOFTSERVE_URL: busy.url, SOFTSERVE_API_KEY: busyKey } });
  const refusals = () => busy.logs.filter((l) => l.path === '/v1/tasks/sentiment/classify' && l.status === 429);

  before(async () => {
    busy = await startCliServer(join(work, 'busy-data'), {
      SOFTSERVE_ADMIN_KEY: ADMIN, SOFTSERVE_MAX_INPUTS: String(MAX_INPUTS),
      SOFTSERVE_TENANT_MAX_CONCURRENCY: '1', SOFTSERVE_BATCH_MAX_WAIT_MS: '1500', SOFTSERVE_REFUSAL_DELAY_MS: '0',
    });
    const t = await api(busy.url, 'POST', '/v1/tenants', { key: ADMIN, json: { name: 'busy' } });
    busyKey = t.json.api_key;
    const task = await api(busy.url, 'POST', '/v1/tasks', { key: busyKey, json: { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: ['sad', 'happy'] } } });
    assert.equal(task.status, 201);
  });
  after(async () => {
    await busy.stop();
  });

  it('classify --file retries requests answered 429 after their Retry-After and still answers every line in order', async () => {
    const texts = Array.from({ length: 12 }, (_, i) => `the little dog ran to the park and played with the ball number ${i}`);
    const file = join(work, 'flood.jsonl');
    writeFileSync(file, texts.map((t) => JSON.stringify({ text: t })).join('\n'));
    const before = refusals().length;
    // Three requests of MAX_INPUTS rows at once against one request in flight per tenant.
    const r = await busyCli(['classify', 'sentiment', '--file', file, '--concurrency', '3', '--max-retries', '30']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r.stdout).map((l) => l.text), texts);
    const retries = [...r.stderr.matchAll(/server busy \(429 TENANT_LIMIT\), retry \d+\/30 in (\d+) s/g)];
    assert.ok(retries.length > 0, `no 429 was retried:\n${r.stderr}`);
    for (const m of retries) assert.ok(Number(m[1]) >= 1, 'waits what Retry-After says (at least 1 s)');
    await busy.waitLogs(() => refusals().length >= before + retries.length);
    const refused = refusals().slice(before);
    assert.equal(refused.length, retries.length, 'every 429 the server sent was retried');
    for (const l of refused) assert.equal(l.code, 'TENANT_LIMIT');
  });

  it('a 429 beyond --max-retries is an error with the server code', async () => {
    const texts = Array.from({ length: 8 }, (_, i) => `a cat sat on a warm mat in the sun all day ${i}`);
    const file = join(work, 'flood2.jsonl');
    writeFileSync(file, texts.map((t) => JSON.stringify(t)).join('\n'));
    const r = await busyCli(['classify', 'sentiment', '--file', file, '--concurrency', '2', '--max-retries', '0']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /error TENANT_LIMIT \(HTTP 429\)/);
  });
});
