// The crash test's machinery, shared by its two backends (crash.test.ts on
// SQLite, crash-postgres.test.ts on PostgreSQL). A child process
// (crash-child.ts) uploads, re-versions and deletes PEFT prompts in a loop
// against one store and is killed with SIGKILL at a random instant, 200 times
// (two lanes of 100, each on its own data directory or database, side by
// side). After every kill:
//
// 1. Before anything repairs it, the store is read as it was left, and every
//    prompt version it records must be whole: its tensor exists, hashes to its
//    name, decodes to the row's kind and shape, and holds exactly the tensors
//    its upload carried (rebuilt from the seed in its stored adapter_config).
//    Leftovers (temp files, unreferenced tensors) may be lying around.
// 2. The store is reopened (its sweep runs) and fsck must find rows and
//    tensors in full agreement: nothing missing, orphaned, temporary or
//    corrupt; plus the backend's own integrity checks.
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
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

import { DEFAULT_PROMPT_LIMITS, decodePromptFile, type PromptKind } from '../prompts/kinds.ts';
import { importPeft } from '../prompts/peft.ts';
import type { PromptVersionInfo } from '../prompts/store/index.ts';
import { SPEC, buildPeft, type PeftTypeName } from './peft-builders.ts';

export const ITERATIONS = 200;
const LANES = 2;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Transpiles test/crash-child.ts and its relative imports (static and dynamic) to .js under node_modules/.cache. */
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
    // Dynamic imports too (prompts/store/open.ts loads a backend only when asked for).
    for (const m of src.matchAll(/\bimport\('(\.{1,2}\/[^']+\.ts)'\)/g)) queue.push(join(dirname(file), m[1]!));
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

/** One stored prompt version as the kill left it, with its tensor bytes (null: the tensor is missing). */
export type LeftRow = Pick<PromptVersionInfo, 'name' | 'version' | 'kind' | 'numVirtualTokens' | 'hasHead' | 'tensorHash'> & {
  /** JSON text, as stored. */
  peftConfig: string;
  /** JSON text, as stored. */
  modelDims: string;
  bytes: Uint8Array | null;
};

/** What the store held when the kill landed, before any repair. */
export interface LeftState {
  rows: LeftRow[];
  /** Half-written temp files (SQLite's tensor directory; PostgreSQL has none). */
  temps: number;
  /** Tensors no version names (an interrupted delete or put), which the sweep at open removes. */
  orphans: number;
}

/** A store under test, seen from outside the child. */
export interface CrashBackend {
  /** Makes one lane's store; returns what the child gets as its first argument. */
  lane(index: number): Promise<string>;
  /** Waits until the store has finished with the killed child (PostgreSQL: its connections are gone). */
  settle(target: string): Promise<void>;
  /** Step 1: the store exactly as the kill left it. */
  asLeft(target: string): Promise<LeftState>;
  /** Step 2: reopen (the sweep runs) and check that rows and tensors agree. */
  checkAfterReopen(target: string): Promise<void>;
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

/** Step 1's verdict on what was left: every recorded version whole and holding its upload's tensors. Returns the prompts present. */
function checkLeft(left: LeftState, stats: Stats): State {
  const state: State = new Map();
  stats.tempsFound += left.temps;
  stats.orphansFound += left.orphans;
  for (const r of left.rows) {
    assert.ok(r.bytes !== null, `row ${r.name} v${r.version} names a missing tensor ${r.tensorHash}`);
    assert.equal(sha256(r.bytes), r.tensorHash, `tensor of ${r.name} v${r.version} is not whole`);
    const decoded = decodePromptFile(r.bytes, JSON.parse(r.modelDims), r.kind, r.numVirtualTokens, r.hasHead);
    const seed = (JSON.parse(r.peftConfig) as { crash_seed: number }).crash_seed;
    assert.deepEqual(new Uint8Array(decoded.data.buffer), expectedBytes(seed), `${r.name} v${r.version} holds other tensors than its upload`);
    stats.rowsChecked++;
    if (!state.has(r.name)) state.set(r.name, new Set());
    state.get(r.name)!.add(r.version);
  }
  return state;
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

async function runOnce(entry: string, target: string, seed: number, rnd: () => number): Promise<{ lines: string[]; beforeReady: boolean }> {
  const child = spawn(process.execPath, [entry, target, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] });
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

async function lane(backend: CrashBackend, entry: string, target: string, iterations: number, seedBase: number, stats: Stats): Promise<void> {
  let rs = seedBase >>> 0 || 1;
  const rnd = (): number => {
    rs ^= rs << 13; rs >>>= 0; rs ^= rs >>> 17; rs ^= rs << 5; rs >>>= 0;
    return rs / 2 ** 32;
  };
  let expected: State = new Map();
  for (let i = 0; i < iterations; i++) {
    const { lines, beforeReady } = await runOnce(entry, target, seedBase * 1000 + i, rnd);
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
    await backend.settle(target);
    const actual = checkLeft(await backend.asLeft(target), stats);
    await backend.checkAfterReopen(target);
    if (checkAcked(expected, actual, inFlight)) stats.inFlightCommitted++;
    expected = actual;
  }
}

/** The whole crash run on one backend; returns the summary line it also prints. */
export async function crashTest(label: string, backend: CrashBackend): Promise<string> {
  const build = buildChild();
  try {
    const entry = join(build, 'test', 'crash-child.js');
    const stats: Stats = { kills: 0, beforeReady: 0, inFlight: {}, inFlightCommitted: 0, acked: 0, tempsFound: 0, orphansFound: 0, rowsChecked: 0 };
    const started = Date.now();
    const targets = await Promise.all(Array.from({ length: LANES }, (_, l) => backend.lane(l)));
    await Promise.all(targets.map((target, l) => lane(backend, entry, target, ITERATIONS / LANES, 7919 * (l + 1), stats)));
    assert.equal(stats.kills, ITERATIONS);
    // The kills must have landed in the interesting places, not only between operations.
    const inFlight = Object.values(stats.inFlight).reduce((a, b) => a + b, 0);
    assert.ok(inFlight >= ITERATIONS / 4, `only ${inFlight} kills landed during an operation`);
    assert.ok(stats.beforeReady > 0, 'no kill landed during start-up');
    assert.ok(stats.acked > 0 && stats.rowsChecked > 0, 'nothing was acknowledged or checked');
    const summary = `crash test (${label}): ${stats.kills} SIGKILLs in ${((Date.now() - started) / 1000).toFixed(1)} s; ${stats.beforeReady} during start-up, ` +
      `${inFlight} during an operation (${JSON.stringify(stats.inFlight)}; ${stats.inFlightCommitted} of those had committed); ` +
      `${stats.acked} acknowledged operations all present; ${stats.rowsChecked} prompt versions checked bit for bit; ` +
      `leftovers swept: ${stats.tempsFound} temp files, ${stats.orphansFound} unreferenced tensors; 0 inconsistencies`;
    console.log(summary);
    return summary;
  } finally {
    rmSync(build, { recursive: true, force: true });
  }
}
