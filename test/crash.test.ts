// Crash consistency of the prompt store. A child process (crash-child.ts)
// uploads, re-versions and deletes PEFT prompts in a loop against a data
// directory and is killed with SIGKILL at a random instant, 200 times (two
// lanes of 100, each on its own directory, side by side). After every kill:
//
// 1. Before anything repairs it, the database is opened as it was left, and
//    every prompt version it records must be whole: its file exists, hashes
//    to its name, decodes to the row's kind and shape, and holds exactly the
//    tensors its upload carried (rebuilt from the seed in its stored
//    adapter_config). Temp and unreferenced files may be lying around.
// 2. The store is reopened (its sweep runs) and fsck must find the database
//    and the files in full agreement: no missing, orphan, temp or corrupt
//    files; SQLite's integrity and foreign-key checks pass.
// 3. Every operation the child reported done is there (acknowledged uploads
//    present, acknowledged deletes gone); the one in flight at the kill, if
//    any, either happened entirely or not at all.
//
// The child is compiled once to plain JavaScript with the project's own
// TypeScript (transpileModule), so each restart costs a Node start rather
// than a TypeScript loader start.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { after, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import ts from 'typescript';

import { DEFAULT_PROMPT_LIMITS, decodePromptFile, type PromptKind } from '../prompts/kinds.ts';
import { importPeft } from '../prompts/peft.ts';
import { PromptStore } from '../prompts/store.ts';
import { SPEC, buildPeft, type PeftTypeName } from './peft-builders.ts';
import { tempDir } from './store-helpers.ts';

const ITERATIONS = 200;
const LANES = 2;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Transpiles test/crash-child.ts and its relative imports to .js under node_modules/.cache. */
function buildChild(): string {
  const out = join(ROOT, 'node_modules', '.cache', `softserve-crash-child-${process.pid}`);
  rmSync(out, { recursive: true, force: true });
  const queue = [join(ROOT, 'test', 'crash-child.ts')];
  const seen = new Set<string>();
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const src = readFileSync(file, 'utf8');
    for (const m of src.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+\.ts)';/gms)) {
      if (/^import\s+type\s/.test(m[0])) continue;
      queue.push(join(dirname(file), m[1]!));
    }
    const js = ts.transpileModule(src, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, rewriteRelativeImportExtensions: true, sourceMap: false },
    }).outputText;
    const dest = join(out, relative(ROOT, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, js);
  }
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
  return out;
}

interface Row {
  name: string; version: number; kind: PromptKind; num_virtual_tokens: number; has_head: number;
  tensor_hash: string; source_dtype: string; peft_config: string; model_dims: string;
}

type State = Map<string, Set<number>>;

interface Stats {
  kills: number;
  beforeReady: number;
  inFlight: Record<string, number>;
  inFlightCommitted: number;
  acked: number;
  tempsFound: number;
  orphansFound: number;
  rowsChecked: number;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

const expectedCache = new Map<number, Uint8Array>();
/** The tensors an upload with this seed carried, in stored (engine) layout. */
function expectedBytes(seed: number): Uint8Array {
  let e = expectedCache.get(seed);
  if (!e) {
    const types: PeftTypeName[] = ['PROMPT_TUNING', 'P_TUNING', 'PREFIX_TUNING'];
    const dtypes = ['F32', 'F16', 'BF16'] as const;
    const t = importPeft(buildPeft(SPEC, types[seed % 3]!, 1 + (seed % 48), seed, { dtype: dtypes[(seed >>> 3) % 3]! }), SPEC, DEFAULT_PROMPT_LIMITS).tensors;
    e = new Uint8Array(t.data.buffer.slice(0));
    expectedCache.set(seed, e);
  }
  return e;
}

/** Step 1: the state exactly as the kill left it. Returns the prompts present. */
function checkAsLeft(dir: string, stats: Stats): State {
  const dbFile = join(dir, 'softserve.db');
  const state: State = new Map();
  if (!existsSync(dbFile)) return state;
  const db = new Database(dbFile);
  let rows: Row[] = [];
  try {
    const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'prompt_versions'").get();
    if (hasTable) {
      rows = db.prepare(`SELECT p.name, v.version, v.kind, v.num_virtual_tokens, v.has_head, v.tensor_hash, v.source_dtype, v.peft_config, v.model_dims
        FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id`).all() as Row[];
    }
  } finally {
    db.close();
  }
  const tdir = join(dir, 'tensors');
  const names = existsSync(tdir) ? readdirSync(tdir) : [];
  const referenced = new Set(rows.map((r) => r.tensor_hash));
  stats.tempsFound += names.filter((n) => n.startsWith('.tmp-')).length;
  stats.orphansFound += names.filter((n) => n.endsWith('.safetensors') && !referenced.has(n.slice(0, 64))).length;
  for (const r of rows) {
    const path = join(tdir, `${r.tensor_hash}.safetensors`);
    assert.ok(existsSync(path), `row ${r.name} v${r.version} names a missing file ${r.tensor_hash}`);
    const bytes = readFileSync(path);
    assert.equal(sha256(bytes), r.tensor_hash, `file of ${r.name} v${r.version} is not whole`);
    const decoded = decodePromptFile(bytes, JSON.parse(r.model_dims), r.kind, r.num_virtual_tokens, r.has_head === 1);
    const seed = (JSON.parse(r.peft_config) as { crash_seed: number }).crash_seed;
    assert.deepEqual(new Uint8Array(decoded.data.buffer), expectedBytes(seed), `${r.name} v${r.version} holds other tensors than its upload`);
    stats.rowsChecked++;
    if (!state.has(r.name)) state.set(r.name, new Set());
    state.get(r.name)!.add(r.version);
  }
  return state;
}

/** Step 2: reopen (the sweep runs) and check that database and files agree. */
async function checkAfterReopen(dir: string): Promise<void> {
  const store = PromptStore.open({ dataDir: dir, spec: SPEC });
  try {
    assert.deepEqual(store.backend.openSweep.missing, []);
    const report = await store.fsck();
    assert.deepEqual({ missing: report.missing, orphans: report.orphans, temps: report.temps, corrupt: report.corrupt }, { missing: [], orphans: [], temps: [], corrupt: [] });
    assert.equal(store.backend.db.pragma('integrity_check', { simple: true }), 'ok');
    assert.deepEqual(store.backend.db.pragma('foreign_key_check'), []);
  } finally {
    await store.close();
  }
}

type Op = { op: 'up'; name: string; version?: number } | { op: 'del'; name: string } | { op: 'delv'; name: string; version: number };

function parseOp(words: string[]): Op {
  const [op, name, v] = words;
  if (op === 'up') return v === undefined ? { op, name: name! } : { op, name: name!, version: Number(v) };
  if (op === 'del') return { op, name: name! };
  return { op: 'delv', name: name!, version: Number(v) };
}

function apply(state: State, op: Op): void {
  if (op.op === 'up') {
    if (!state.has(op.name)) state.set(op.name, new Set());
    state.get(op.name)!.add(op.version!);
  } else if (op.op === 'del') {
    state.delete(op.name);
  } else {
    state.get(op.name)?.delete(op.version);
    if (state.get(op.name)?.size === 0) state.delete(op.name);
  }
}

function sameState(a: State, b: State, except?: string): boolean {
  const norm = (s: State) => JSON.stringify([...s].filter(([k]) => k !== except).map(([k, v]) => [k, [...v].sort((x, y) => x - y)]).sort());
  return norm(a) === norm(b);
}

/** Step 3: acknowledged operations are all there; the one in flight happened whole or not at all. */
function checkAcked(expected: State, actual: State, inFlight: Op | null): boolean {
  if (!inFlight) {
    assert.ok(sameState(expected, actual), `acknowledged state ${JSON.stringify([...expected].map(([k, v]) => [k, [...v]]))} != stored ${JSON.stringify([...actual].map(([k, v]) => [k, [...v]]))}`);
    return false;
  }
  assert.ok(sameState(expected, actual, inFlight.name), `prompts other than the one in flight (${inFlight.name}) differ from what was acknowledged`);
  const before = [...(expected.get(inFlight.name) ?? [])].sort((x, y) => x - y);
  const after = [...(actual.get(inFlight.name) ?? [])].sort((x, y) => x - y);
  const same = JSON.stringify(before) === JSON.stringify(after);
  if (same) return false;
  if (inFlight.op === 'up') {
    // committed: exactly one new version, above all others
    assert.equal(after.length, before.length + 1, `upload of ${inFlight.name} half-applied`);
    assert.ok(before.every((v) => after.includes(v)));
    assert.ok(after[after.length - 1]! > (before[before.length - 1] ?? 0));
  } else if (inFlight.op === 'del') {
    assert.deepEqual(after, [], `delete of ${inFlight.name} half-applied`);
  } else {
    assert.deepEqual(after, before.filter((v) => v !== inFlight.version), `version delete of ${inFlight.name} half-applied`);
  }
  return true;
}

async function runOnce(entry: string, dir: string, seed: number, rnd: () => number): Promise<{ lines: string[]; beforeReady: boolean }> {
  const child = spawn(process.execPath, [entry, dir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let ready = false;
  let onReady: () => void = () => {};
  const readyP = new Promise<void>((r) => { onReady = r; });
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString('utf8');
    if (!ready && out.includes('\nready ')) { ready = true; onReady(); }
  });
  child.stderr.on('data', (c: Buffer) => { err += c.toString('utf8'); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const early = rnd() < 0.1;
  if (early) {
    // somewhere in start-up: loading, migrations, the sweep
    await new Promise((r) => setTimeout(r, rnd() * 250));
  } else {
    const died = await Promise.race([readyP.then(() => false), exited.then(() => true)]);
    assert.equal(died, false, `child died on its own: ${err}`);
    await new Promise((r) => setTimeout(r, rnd() * 150));
  }
  child.kill('SIGKILL');
  const code = await exited;
  assert.equal(code, null, `child exited by itself (${code}): ${err}`);
  // the pipe may still hold what was written before the kill
  await new Promise((r) => setImmediate(r));
  return { lines: out.split('\n').filter((l) => l.length > 0), beforeReady: !ready };
}

async function lane(entry: string, dir: string, iterations: number, seedBase: number, stats: Stats): Promise<void> {
  let rs = seedBase >>> 0 || 1;
  const rnd = (): number => {
    rs ^= rs << 13; rs >>>= 0; rs ^= rs >>> 17; rs ^= rs << 5; rs >>>= 0;
    return rs / 2 ** 32;
  };
  let expected: State = new Map();
  for (let i = 0; i < iterations; i++) {
    const { lines, beforeReady } = await runOnce(entry, dir, seedBase * 1000 + i, rnd);
    stats.kills++;
    if (beforeReady) stats.beforeReady++;
    let inFlight: Op | null = null;
    for (const line of lines) {
      const words = line.split(' ');
      if (words[0] === 'begin') {
        inFlight = parseOp(words.slice(1));
      } else if (words[0] === 'ok') {
        apply(expected, parseOp(words.slice(1)));
        stats.acked++;
        inFlight = null;
      }
    }
    if (inFlight) stats.inFlight[inFlight.op] = (stats.inFlight[inFlight.op] ?? 0) + 1;
    const actual = checkAsLeft(dir, stats);
    await checkAfterReopen(dir);
    if (checkAcked(expected, actual, inFlight)) stats.inFlightCommitted++;
    expected = actual;
  }
}

const dirs: string[] = [];
let build = '';
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  if (build) rmSync(build, { recursive: true, force: true });
});

it(`SIGKILL at random instants, ${ITERATIONS} times: every prompt whole or absent, database and files agree`, { timeout: 240_000 }, async () => {
  build = buildChild();
  const entry = join(build, 'test', 'crash-child.js');
  const stats: Stats = { kills: 0, beforeReady: 0, inFlight: {}, inFlightCommitted: 0, acked: 0, tempsFound: 0, orphansFound: 0, rowsChecked: 0 };
  const started = Date.now();
  await Promise.all(Array.from({ length: LANES }, (_, l) => {
    const dir = tempDir(`crash${l}`);
    dirs.push(dir);
    return lane(entry, dir, ITERATIONS / LANES, 7919 * (l + 1), stats);
  }));
  assert.equal(stats.kills, ITERATIONS);
  // The kills must have landed in the interesting places, not only between operations.
  const inFlight = Object.values(stats.inFlight).reduce((a, b) => a + b, 0);
  assert.ok(inFlight >= ITERATIONS / 4, `only ${inFlight} kills landed during an operation`);
  assert.ok(stats.beforeReady > 0, 'no kill landed during start-up');
  console.log(`crash test: ${stats.kills} SIGKILLs in ${((Date.now() - started) / 1000).toFixed(1)} s; ${stats.beforeReady} during start-up, ` +
    `${inFlight} during an operation (${JSON.stringify(stats.inFlight)}; ${stats.inFlightCommitted} of those had committed); ` +
    `${stats.acked} acknowledged operations all present; ${stats.rowsChecked} prompt versions checked bit for bit; ` +
    `leftovers swept: ${stats.tempsFound} temp files, ${stats.orphansFound} unreferenced files; 0 inconsistencies`);
});
