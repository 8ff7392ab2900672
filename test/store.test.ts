// The prompt store on a real SQLite file and tensor directory: tenants and
// hashed keys, task validation, immutable versions, content-addressed files
// shared and removed by reference, ensembles, the classify-path resolve, the
// residency cache and its metrics, and the sweep of crash leftovers at open.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Registry } from 'prom-client';

import { SoftserveError, type ErrorCode } from '../kernels/errors.ts';
import { DEFAULT_PROMPT_LIMITS, type PromptTensors } from '../prompts/kinds.ts';
import { PromptStore, type TaskDefinition } from '../prompts/store.ts';
import type { SqliteStore } from '../prompts/store/sqlite/index.ts';
import { SPEC, buildPeft, randomFloats, tempDir } from './store-helpers.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function open(opts: { cacheBytes?: number; registry?: Registry; dir?: string } = {}): PromptStore<SqliteStore> {
  const dir = opts.dir ?? tempDir('store');
  if (!opts.dir) dirs.push(dir);
  return PromptStore.open({ dataDir: dir, spec: SPEC, ...(opts.cacheBytes ? { cacheBytes: opts.cacheBytes } : {}), ...(opts.registry ? { registry: opts.registry } : {}) });
}

async function rejects(p: Promise<unknown> | (() => unknown), code: ErrorCode, re?: RegExp): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    assert.ok(err instanceof SoftserveError, String(err));
    assert.equal(err.code, code, err.message);
    if (re) assert.match(err.message, re);
    return;
  }
  assert.fail(`expected ${code}`);
}

const VERBALIZER: TaskDefinition = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', labelWords: [' bad', ' good'] } };
const HEAD: TaskDefinition = { name: 'topic', labels: ['a', 'b', 'c'], template: 'Topic: {text}', scoring: { type: 'head', pooling: 'mean' } };

function soft(p: number, seed: number): PromptTensors {
  return { kind: 'soft', numVirtualTokens: p, data: randomFloats(p * 64, seed) };
}

function tensorFiles(store: PromptStore<SqliteStore>): string[] {
  return readdirSync(store.backend.files.dir).sort();
}

describe('tenants and keys', () => {
  it('keys are shown once, stored only as hashes, and revocable', async () => {
    const s = open();
    const { tenant, apiKey, key } = await s.createTenant('acme');
    assert.match(apiKey, /^ss_[A-Za-z0-9_-]{43}$/);
    assert.equal((await s.authenticate(apiKey))?.id, tenant.id);
    assert.equal(await s.authenticate(apiKey + 'x'), null);
    assert.equal(await s.authenticate(''), null);
    const second = await s.createApiKey(tenant.id);
    assert.equal((await s.authenticate(second.apiKey))?.id, tenant.id);
    assert.equal((await s.listApiKeys(tenant.id)).length, 2);
    await s.revokeApiKey(tenant.id, key.id);
    assert.equal(await s.authenticate(apiKey), null);
    assert.equal((await s.authenticate(second.apiKey))?.id, tenant.id);
    s.backend.db.pragma('wal_checkpoint(TRUNCATE)');
    const dbBytes = readFileSync(join(s.backend.dataDir, 'softserve.db'));
    assert.equal(dbBytes.includes(Buffer.from(apiKey)), false, 'a raw key is in the database file');
    assert.equal(dbBytes.includes(Buffer.from(second.apiKey)), false);
    await assert.rejects(async () => s.createTenant('acme'), (e: SoftserveError) => e.code === 'CONFLICT');
    await assert.rejects(async () => s.createTenant('../acme'), (e: SoftserveError) => e.code === 'INVALID_NAME');
    await assert.rejects(async () => s.createApiKey('ten_nope'), (e: SoftserveError) => e.code === 'NOT_FOUND');
    await s.close();
  });
});

describe('tasks', () => {
  it('validates labels, template and scoring', async () => {
    const s = open();
    const t = (await s.createTenant('t1')).tenant.id;
    const task = await s.createTask(t, VERBALIZER);
    assert.deepEqual(task.labels, ['negative', 'positive']);
    assert.deepEqual((await s.getTask(t, 'sentiment')).scoring, { type: 'verbalizer', labelWords: [' bad', ' good'] });
    const bad: Array<[Partial<TaskDefinition>, ErrorCode, RegExp]> = [
      [{ labels: ['only'] }, 'INVALID_TASK', /2-256 labels/],
      [{ labels: ['a', 'a'] }, 'INVALID_TASK', /distinct/],
      [{ labels: ['a', 'b\u0000'] }, 'INVALID_TASK', /control/],
      [{ template: 'no slot' }, 'INVALID_TASK', /exactly once, found 0/],
      [{ template: '{text} {text}' }, 'INVALID_TASK', /found 2/],
      [{ scoring: { type: 'verbalizer', labelWords: [' bad'] } }, 'INVALID_TASK', /1 label words for 2 labels/],
      [{ scoring: { type: 'other' } as never }, 'BAD_REQUEST', /verbalizer.*head/],
      [{ name: 'a/b' }, 'INVALID_NAME', /path separator/],
      [{ name: 'a\nb' }, 'INVALID_NAME', /control character/],
    ];
    for (const [patch, code, re] of bad) {
      await assert.rejects(async () => s.createTask(t, { ...VERBALIZER, name: 'x', ...patch }), (e: SoftserveError) => e.code === code && re.test(e.message), JSON.stringify(patch));
    }
    await assert.rejects(async () => s.createTask(t, VERBALIZER), (e: SoftserveError) => e.code === 'CONFLICT');
    await s.createTask(t, HEAD);
    assert.deepEqual((await s.listTasks(t)).map((x) => x.name), ['sentiment', 'topic']);
    await s.close();
  });
});

describe('prompts', () => {
  it('versions are immutable and numbered; identical tensors share one file; files go with their last row', async () => {
    const s = open();
    const t = (await s.createTenant('t1')).tenant.id;
    await s.createTask(t, VERBALIZER);
    const v1 = await s.putPrompt(t, 'sentiment', 'p', soft(3, 1), { source: 'json' });
    const v2 = await s.putPrompt(t, 'sentiment', 'p', soft(4, 2), { source: 'json' });
    assert.deepEqual([v1.version, v2.version], [1, 2]);
    assert.notEqual(v1.tensorHash, v2.tensorHash);
    const same = await s.putPrompt(t, 'sentiment', 'q', soft(3, 1), { source: 'json' });
    assert.equal(same.tensorHash, v1.tensorHash);
    assert.equal(tensorFiles(s).length, 2);
    assert.equal((await s.getPromptVersion(t, 'sentiment', 'p')).version, 2, 'latest');
    assert.deepEqual((await s.getPromptTensors(t, 'sentiment', 'p', 1)).tensors.data, soft(3, 1).data);

    await s.deletePromptVersion(t, 'sentiment', 'p', 2);
    assert.equal(tensorFiles(s).length, 1, 'v2 file removed');
    // a new version never reuses a number
    assert.equal((await s.putPrompt(t, 'sentiment', 'p', soft(2, 3), { source: 'json' })).version, 3);
    await s.deletePrompt(t, 'sentiment', 'p');
    assert.deepEqual(tensorFiles(s), [`${v1.tensorHash}.safetensors`], 'still used by q');
    await s.deletePrompt(t, 'sentiment', 'q');
    assert.deepEqual(tensorFiles(s), []);
    assert.deepEqual(await s.fsck(), { rows: 0, files: 0, missing: [], orphans: [], temps: [], corrupt: [] });
    await s.close();
  });

  it('checks prompts against the task: heads where the task scores with one, and their class count', async () => {
    const s = open();
    const t = (await s.createTenant('t1')).tenant.id;
    await s.createTask(t, VERBALIZER);
    await s.createTask(t, HEAD);
    const withHead = (c: number): PromptTensors => ({ ...soft(2, 5), head: { weight: randomFloats(c * 64, 6), bias: new Float32Array(c) } });
    await rejects(s.putPrompt(t, 'topic', 'p', soft(2, 5), { source: 'json' }), 'INVALID_TASK', /linear head/);
    await rejects(s.putPrompt(t, 'sentiment', 'p', withHead(2), { source: 'json' }), 'INVALID_TASK', /verbalizer/);
    await rejects(s.putPrompt(t, 'topic', 'p', withHead(2), { source: 'json' }), 'PROMPT_SHAPE_MISMATCH', /2 classes; the task has 3/);
    const ok = await s.putPrompt(t, 'topic', 'p', withHead(3), { source: 'json' });
    assert.equal(ok.hasHead, true);
    const r = await s.resolve(t, 'topic', { prompt: 'p' });
    assert.equal(r.members[0]!.tensors.head!.weight.length, 3 * 64);
    await rejects(s.putPrompt(t, 'nope', 'p', soft(2, 5), { source: 'json' }), 'NOT_FOUND');
    await rejects(s.putPrompt(t, 'sentiment', 'a b', soft(2, 5), { source: 'json' }), 'INVALID_NAME');
    assert.equal((await s.fsck()).files, 1, 'refused prompts wrote nothing');
    await s.close();
  });

  it('PEFT uploads go through the same path', async () => {
    const s = open();
    const t = (await s.createTenant('t1')).tenant.id;
    await s.createTask(t, VERBALIZER);
    const v = await s.putPeftPrompt(t, 'sentiment', 'pre', buildPeft(SPEC, 'PREFIX_TUNING', 2, 9, { dtype: 'F16' }));
    assert.deepEqual([v.kind, v.sourceDtype, v.source, v.numVirtualTokens], ['prefix', 'F16', 'peft', 2]);
    const exp = await s.exportPrompt(t, 'sentiment', 'pre');
    const again = await s.putPeftPrompt(t, 'sentiment', 'pre', exp);
    assert.equal(again.version, 2);
    assert.equal(again.tensorHash, v.tensorHash, 'round trip is bit-identical');
    await s.close();
  });
});

describe('ensembles and resolve (the classify path)', () => {
  it('resolves a prompt, a pinned version, an ensemble, or nothing; refuses deletes that would break an ensemble', async () => {
    const s = open();
    const t = (await s.createTenant('t1')).tenant.id;
    await s.createTask(t, VERBALIZER);
    for (let i = 0; i < 3; i++) await s.putPrompt(t, 'sentiment', `m${i}`, soft(2 + i, 10 + i), { source: 'training' });
    await s.putPrompt(t, 'sentiment', 'm0', soft(5, 99), { source: 'json' });
    const e = await s.createEnsemble(t, 'sentiment', 'trio', [{ prompt: 'm0', version: 1 }, { prompt: 'm1' }, { prompt: 'm2' }]);
    assert.equal(e.members.length, 3);

    const one = await s.resolve(t, 'sentiment', { prompt: 'm0' });
    assert.equal(one.members[0]!.version, 2);
    assert.deepEqual(one.task.labels, ['negative', 'positive']);
    assert.equal(one.task.template, '{text} It was');
    const pinned = await s.resolve(t, 'sentiment', { prompt: 'm0', version: 1 });
    assert.equal(pinned.members[0]!.numVirtualTokens, 2);
    const ens = await s.resolve(t, 'sentiment', { ensemble: 'trio' });
    assert.equal(ens.ensemble, 'trio');
    assert.deepEqual(ens.members.map((m) => [m.name, m.version, m.numVirtualTokens]), [['m0', 1, 2], ['m1', 1, 3], ['m2', 1, 4]]);
    assert.ok(ens.members.every((m) => m.tensors.data instanceof Float32Array && m.tensors.data.length === m.numVirtualTokens * 64));
    const none = await s.resolve(t, 'sentiment');
    assert.deepEqual(none.members, []);

    await rejects(s.resolve(t, 'sentiment', { prompt: 'm0', ensemble: 'trio' }), 'BAD_REQUEST');
    await rejects(s.resolve(t, 'sentiment', { ensemble: 'nope' }), 'NOT_FOUND');
    await rejects(s.resolve(t, 'sentiment', { prompt: 'm0', version: 7 }), 'NOT_FOUND');
    await rejects(s.deletePrompt(t, 'sentiment', 'm1'), 'CONFLICT', /trio/);
    await rejects(s.deletePromptVersion(t, 'sentiment', 'm0', 1), 'CONFLICT', /pinned/);
    await s.deletePromptVersion(t, 'sentiment', 'm0', 2); // latest of m0, not pinned
    await rejects(() => s.createEnsemble(t, 'sentiment', 'trio', [{ prompt: 'm1' }]), 'CONFLICT');
    await rejects(() => s.createEnsemble(t, 'sentiment', 'dup', [{ prompt: 'm1' }, { prompt: 'm1' }]), 'DUPLICATE_ENSEMBLE_MEMBER', /distinct/);
    // The same prompt at a pinned version and at its latest (or two versions) would vote twice too.
    await rejects(() => s.createEnsemble(t, 'sentiment', 'dup', [{ prompt: 'm0' }, { prompt: 'm0', version: 1 }]), 'DUPLICATE_ENSEMBLE_MEMBER', /"m0" is listed twice/);
    await rejects(() => s.createEnsemble(t, 'sentiment', 'ghost', [{ prompt: 'nope' }]), 'INVALID_INPUT', /no prompt/);
    await rejects(() => s.createEnsemble(t, 'sentiment', 'big', Array.from({ length: 17 }, (_, i) => ({ prompt: `m${i}` }))), 'INVALID_INPUT', /1-16/);
    await s.deleteEnsemble(t, 'sentiment', 'trio');
    await s.deletePrompt(t, 'sentiment', 'm1');

    // head tasks need a prompt
    await s.createTask(t, HEAD);
    await rejects(s.resolve(t, 'topic'), 'INVALID_INPUT', /name a prompt or an ensemble/);
    await s.close();
  });

  it('isolates tenants: every read, use and delete of another tenant\'s things is NOT_FOUND', async () => {
    const s = open();
    const a = (await s.createTenant('a')).tenant.id;
    const b = (await s.createTenant('b')).tenant.id;
    await s.createTask(a, VERBALIZER);
    await s.putPrompt(a, 'sentiment', 'secret', soft(2, 1), { source: 'json' });
    await s.createEnsemble(a, 'sentiment', 'e', [{ prompt: 'secret' }]);
    assert.deepEqual(await s.listTasks(b), []);
    await rejects(() => s.getTask(b, 'sentiment'), 'NOT_FOUND');
    await rejects(() => s.listPrompts(b, 'sentiment'), 'NOT_FOUND');
    await rejects(() => s.getPrompt(b, 'sentiment', 'secret'), 'NOT_FOUND');
    await rejects(s.getPromptTensors(b, 'sentiment', 'secret'), 'NOT_FOUND');
    await rejects(s.exportPrompt(b, 'sentiment', 'secret'), 'NOT_FOUND');
    await rejects(s.resolve(b, 'sentiment', { prompt: 'secret' }), 'NOT_FOUND');
    await rejects(s.resolve(b, 'sentiment', { ensemble: 'e' }), 'NOT_FOUND');
    await rejects(s.deletePrompt(b, 'sentiment', 'secret'), 'NOT_FOUND');
    await rejects(s.deleteTask(b, 'sentiment'), 'NOT_FOUND');
    await rejects(() => s.deleteEnsemble(b, 'sentiment', 'e'), 'NOT_FOUND');
    await rejects(s.putPrompt(b, 'sentiment', 'x', soft(2, 2), { source: 'json' }), 'NOT_FOUND');
    // b's own task of the same name is b's alone
    await s.createTask(b, VERBALIZER);
    assert.deepEqual(await s.listPrompts(b, 'sentiment'), []);
    assert.equal((await s.listPrompts(a, 'sentiment')).length, 1);
    await s.close();
  });

  it('deleting a tenant removes its tasks, prompts and now-unreferenced files', async () => {
    const s = open();
    const a = await s.createTenant('a');
    const b = (await s.createTenant('b')).tenant.id;
    await s.createTask(a.tenant.id, VERBALIZER);
    await s.createTask(b, VERBALIZER);
    await s.putPrompt(a.tenant.id, 'sentiment', 'p', soft(2, 1), { source: 'json' });
    await s.putPrompt(a.tenant.id, 'sentiment', 'q', soft(2, 2), { source: 'json' });
    await s.putPrompt(b, 'sentiment', 'shared', soft(2, 1), { source: 'json' });
    await s.deleteTenant(a.tenant.id);
    assert.equal(await s.authenticate(a.apiKey), null);
    assert.equal(tensorFiles(s).length, 1, 'the file b shares survives');
    assert.deepEqual((await s.resolve(b, 'sentiment', { prompt: 'shared' })).members[0]!.tensors.data, soft(2, 1).data);
    await s.close();
  });
});

describe('residency', () => {
  it('an LRU bounded in bytes, counting hits, misses, evictions and bytes, exported as metrics', async () => {
    const registry = new Registry();
    const per = 2 * 64 * 4; // one 2-token soft prompt
    const s = open({ cacheBytes: per * 2 + 10, registry });
    const t = (await s.createTenant('t')).tenant.id;
    await s.createTask(t, VERBALIZER);
    for (let i = 0; i < 3; i++) await s.putPrompt(t, 'sentiment', `p${i}`, soft(2, i), { source: 'json' });
    await s.getPromptTensors(t, 'sentiment', 'p0'); // miss
    await s.getPromptTensors(t, 'sentiment', 'p0'); // hit
    await s.getPromptTensors(t, 'sentiment', 'p1'); // miss
    await s.getPromptTensors(t, 'sentiment', 'p2'); // miss, evicts p0
    await s.getPromptTensors(t, 'sentiment', 'p0'); // miss, evicts p1
    assert.deepEqual(s.cacheStats(), { hits: 1, misses: 4, evictions: 2, bytes: per * 2, entries: 2, maxBytes: per * 2 + 10 });
    // overlapping loads of one prompt read the file once
    await Promise.all([s.getPromptTensors(t, 'sentiment', 'p1'), await s.getPromptTensors(t, 'sentiment', 'p1')]);
    assert.equal(s.cacheStats().misses, 5);
    const text = await registry.metrics();
    assert.match(text, /softserve_prompt_cache_hits_total 2/);
    assert.match(text, /softserve_prompt_cache_misses_total 5/);
    assert.match(text, /softserve_prompt_cache_evictions_total 3/);
    assert.match(text, new RegExp(`softserve_prompt_cache_bytes ${per * 2}`));
    assert.match(text, /softserve_prompt_cache_entries 2/);
    // deleting a prompt drops it from memory too
    await s.deletePrompt(t, 'sentiment', 'p1');
    assert.equal(s.cacheStats().entries, 1);
    await s.close();
  });
});

describe('crash leftovers and consistency', () => {
  it('the sweep at open removes temp files and unreferenced files, keeps the rest, and leaves unknown files alone', async () => {
    const dir = tempDir('sweep');
    dirs.push(dir);
    let s = open({ dir });
    const t = (await s.createTenant('t')).tenant.id;
    await s.createTask(t, VERBALIZER);
    const kept = await s.putPrompt(t, 'sentiment', 'kept', soft(2, 1), { source: 'json' });
    await s.close();
    const tdir = join(dir, 'tensors');
    writeFileSync(join(tdir, '.tmp-deadbeef'), 'half a file');
    writeFileSync(join(tdir, `${'a'.repeat(64)}.safetensors`), 'an orphan');
    writeFileSync(join(tdir, 'README'), 'not ours');
    s = open({ dir });
    assert.deepEqual({ ...s.backend.openSweep }, { removedTemps: 1, removedOrphans: 1, missing: [], unknownFiles: ['README'] });
    assert.deepEqual(readdirSync(tdir).sort(), [`${kept.tensorHash}.safetensors`, 'README'].sort());
    const report = await s.fsck();
    assert.deepEqual([report.rows, report.missing, report.orphans, report.temps, report.corrupt], [1, [], [], [], []]);
    await s.close();
  });

  it('fsck notices a corrupted file, and reading it is a 500 PROMPT_FILE_CORRUPT, not bad data', async () => {
    const s = open();
    const t = (await s.createTenant('t')).tenant.id;
    await s.createTask(t, VERBALIZER);
    const v = await s.putPrompt(t, 'sentiment', 'p', soft(2, 1), { source: 'json' });
    const path = s.backend.files.pathOf(v.tensorHash);
    const bytes = readFileSync(path);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(path, bytes);
    assert.deepEqual((await s.fsck()).corrupt, [v.tensorHash]);
    await rejects(s.getPromptTensors(t, 'sentiment', 'p'), 'PROMPT_FILE_CORRUPT');
    await s.close();
  });

  it('a prompt stored for another model size is refused at use, not misread', async () => {
    const dir = tempDir('dims');
    dirs.push(dir);
    let s = open({ dir });
    const t = (await s.createTenant('t')).tenant.id;
    await s.createTask(t, VERBALIZER);
    await s.putPrompt(t, 'sentiment', 'p', soft(2, 1), { source: 'json' });
    await s.close();
    s = PromptStore.open({ dataDir: dir, spec: { ...SPEC, numLayers: 6 }, limits: DEFAULT_PROMPT_LIMITS });
    await rejects(s.resolve(t, 'sentiment', { prompt: 'p' }), 'PROMPT_SHAPE_MISMATCH', /stored for a model/);
    await s.close();
  });
});
