// npm run eval [-- --write] [--quick] [--workers N] [--datasets sst2,trec,subj]
//
// Accuracy of every training method on stories260k for the sst2, trec and
// subj test sets (../shared/data), in the style of Lester et al. 2021 Table 3:
// majority class, zero-shot verbalizer, linear probes, prompt tuning (one seed,
// and 5 seeds: their average, the best, and their majority vote), P-tuning and
// prefix tuning, with the wall time of each. Every trained method goes through
// the same trainer the job API uses (prompts/training/trainer.ts), in-process:
// no server. Independent runs are spread over worker threads (one onnxruntime
// thread each).
//
// --write replaces the results block of docs/RESULTS.md. --quick trains on a
// small subset (a smoke test of the script, not a result).

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { TrainableModel } from '../models/training-graph.ts';
import type { PromptTensors } from '../prompts/kinds.ts';
import { parseJsonl, splitHeldOut, type Example } from '../prompts/training/data.ts';
import { parseTrainingOptions } from '../prompts/training/options.ts';
import { stream } from '../prompts/training/rng.ts';
import { evaluatePrompt, trainPrompt, type TaskSpec } from '../prompts/training/trainer.ts';

const ROOT = new URL('../', import.meta.url);
const MODEL_DIR = process.env.SOFTSERVE_MODEL_DIR ?? fileURLToPath(new URL('../shared/models/stories260k', ROOT));
const DATA_DIR = fileURLToPath(new URL('../shared/data', ROOT));
const RESULTS = fileURLToPath(new URL('docs/RESULTS.md', ROOT));
const REFERENCE = fileURLToPath(new URL('../shared/data/REFERENCE.md', ROOT));

/** REFERENCE.md's table: row name -> dataset -> accuracy (%). */
function referenceTable(): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  let text = '';
  try { text = readFileSync(REFERENCE, 'utf8'); } catch { return out; }
  const lines = text.split('\n').filter((l) => l.startsWith('|'));
  const head = lines[0]?.split('|').map((c) => c.trim()).filter(Boolean) ?? [];
  for (const line of lines.slice(2)) {
    const cells = line.split('|').map((c) => c.trim()).filter(Boolean);
    const row = new Map<string, number>();
    head.slice(1).forEach((ds, i) => { const v = Number(cells[i + 1]); if (Number.isFinite(v)) row.set(ds, v); });
    out.set(cells[0]!, row);
  }
  return out;
}

/** Our row -> the reference row it compares with. */
const REFERENCE_ROW: Record<string, string> = {
  'majority class (of train)': 'majority class',
  'zero-shot verbalizer (first token of label word)': 'zero-shot verbalizer (first token of label word)',
  'linear probe, last-token feature (template)': 'linear probe, last-token feature',
  'linear probe, mean-pooled feature (template)': 'linear probe, mean-pooled feature',
  'linear probe, last-token feature (bare input)': 'linear probe, last-token feature',
  'linear probe, mean-pooled feature (bare input)': 'linear probe, mean-pooled feature',
  'prompt tuning, P=16, one seed (seed 0)': 'prompt tuning, P=16, one seed',
  'prompt tuning, average of 5 seeds': 'prompt tuning, average of 5 seeds',
  'prompt tuning, best of 5 seeds (by test)': 'prompt tuning, best of 5 seeds',
  'prompt tuning, 5-prompt majority vote': 'prompt tuning, 5-prompt majority vote',
  'prefix tuning, P=8 per layer, linear head (mean)': 'prefix tuning, P=8 per layer, linear head (last token)',
};

// --- datasets and methods ----------------------------------------------------------------

interface Dataset {
  name: string;
  labels: string[];
  template: string;
  labelWords: string[];
  /** A dev file for model selection (sst2), else 10% of train held out. */
  dev: boolean;
}

const DATASETS: Dataset[] = [
  { name: 'sst2', labels: ['negative', 'positive'], template: '{text} It was', labelWords: [' sad', ' happy'], dev: true },
  { name: 'trec', labels: ['abbreviation', 'description', 'entity', 'human', 'location', 'number'], template: '{text} The answer is a', labelWords: [' letter', ' definition', ' thing', ' person', ' place', ' number'], dev: false },
  { name: 'subj', labels: ['subjective', 'objective'], template: '{text} This is a', labelWords: [' opinion', ' fact'], dev: false },
];

const MAX_TEXT_TOKENS = 96;
const ENSEMBLE = 5;

/** Options per trained method (the API's snake_case). */
const METHOD_OPTIONS: Record<string, Record<string, unknown>> = {
  prompt_tuning: { method: 'prompt_tuning', num_virtual_tokens: 16, init: 'vocab', learning_rate: 0.1, epochs: 5, batch_size: 32 },
  p_tuning: { method: 'p_tuning', num_virtual_tokens: 16, encoder: 'mlp', init: 'vocab', learning_rate: 0.1, epochs: 5, batch_size: 32 },
  prefix_tuning: { method: 'prefix_tuning', num_virtual_tokens: 8, init: 'vocab', learning_rate: 0.01, epochs: 5, batch_size: 32 },
  // Probes: 30 epochs in full (cheap), keeping the best held-out epoch.
  linear_head: { method: 'linear_head', epochs: 30, batch_size: 64, learning_rate: 0.01, patience: 0 },
};

type Unit =
  | { kind: 'zero_shot'; dataset: string }
  | { kind: 'train'; dataset: string; method: string; seed: number; scoring: 'verbalizer' | 'head'; pooling?: 'mean' | 'last'; options: Record<string, unknown>; label: string; bare?: boolean; keepTensors?: boolean };

/** A trained prompt as it crosses threads and the cache (plain arrays). */
interface PlainTensors { kind: PromptTensors['kind']; numVirtualTokens: number; data: number[]; head?: { weight: number[]; bias: number[] } }

interface UnitResult {
  unit: Unit;
  accuracy: number;
  probabilities: number[][];
  wallMs: number;
  heldOut: number | null;
  steps: number;
  bestStep: number;
  stoppedEarly: boolean;
  examplesPerSec: number;
  /** The trained prompt (members: teachers and transfer sources of later runs). */
  tensors?: PlainTensors;
  /** Read from the cache rather than run in this invocation. */
  cached?: boolean;
}

function toPlain(t: PromptTensors): PlainTensors {
  const out: PlainTensors = { kind: t.kind, numVirtualTokens: t.numVirtualTokens, data: Array.from(t.data) };
  if (t.head) out.head = { weight: Array.from(t.head.weight), bias: Array.from(t.head.bias) };
  return out;
}

export function fromPlain(t: PlainTensors): PromptTensors {
  const out: PromptTensors = { kind: t.kind, numVirtualTokens: t.numVirtualTokens, data: Float32Array.from(t.data) };
  if (t.head) out.head = { weight: Float32Array.from(t.head.weight), bias: Float32Array.from(t.head.bias) };
  return out;
}

function taskFor(ds: Dataset, scoring: 'verbalizer' | 'head', pooling: 'mean' | 'last' = 'mean', template = ds.template): TaskSpec {
  return {
    labels: ds.labels, template,
    scoring: scoring === 'verbalizer' ? { type: 'verbalizer', labelWords: ds.labelWords } : { type: 'head', pooling },
  };
}

function load(ds: Dataset, split: string): Example[] {
  const text = readFileSync(`${DATA_DIR}/${ds.name}/${split}.jsonl`, 'utf8');
  const parsed = parseJsonl(text, ds.labels, { maxExamples: 1e7, maxTextChars: 1e6 });
  if (parsed.errorCount > 0) throw new Error(`${ds.name}/${split}: ${parsed.errorCount} bad rows, first: ${JSON.stringify(parsed.errors[0])}`);
  return parsed.examples;
}

// --- worker side -----------------------------------------------------------------------------

async function workerMain(): Promise<void> {
  const { quick } = workerData as { quick: boolean };
  const model = await TrainableModel.load(MODEL_DIR, { intraOpThreads: 1 });
  const cache = new Map<string, { train: Example[]; heldOut: Example[]; test: Example[] }>();
  const data = (name: string) => {
    let d = cache.get(name);
    if (!d) {
      const ds = DATASETS.find((x) => x.name === name)!;
      let all = load(ds, 'train');
      if (quick) all = all.slice(0, 300);
      const split = ds.dev ? { train: all, heldOut: load(ds, 'dev').slice(0, quick ? 100 : undefined) } : splitHeldOut(all, 0.1, stream(0, 'split'));
      d = { ...split, test: quick ? load(ds, 'test').slice(0, 200) : load(ds, 'test') };
      cache.set(name, d);
    }
    return d;
  };
  parentPort!.on('message', async (unit: Unit | null) => {
    if (unit === null) {
      await model.release();
      process.exit(0);
    }
    const ds = DATASETS.find((x) => x.name === unit.dataset)!;
    const d = data(unit.dataset);
    const started = performance.now();
    let out: UnitResult;
    if (unit.kind === 'zero_shot') {
      const ev = await evaluatePrompt(model, taskFor(ds, 'verbalizer'), d.test, null, MAX_TEXT_TOKENS);
      out = { unit, accuracy: ev.accuracy, probabilities: ev.probabilities.map((p) => Array.from(p)), wallMs: performance.now() - started, heldOut: null, steps: 0, bestStep: 0, stoppedEarly: false, examplesPerSec: 0 };
    } else {
      // Linear probes read the dataset's template or the bare input; the other methods the template.
      const task = taskFor(ds, unit.scoring, unit.pooling, unit.bare ? '{text}' : ds.template);
      const opts = parseTrainingOptions({ ...unit.options, seed: unit.seed, max_text_tokens: MAX_TEXT_TOKENS, ...(quick ? { epochs: 1 } : {}) });
      // A plain linear probe: no virtual token at all (the API's linear_head carries one fixed token).
      if (unit.method === 'linear_head') opts.numVirtualTokens = 0;
      const r = await trainPrompt(model, task, d.train, d.heldOut, opts);
      const ev = await evaluatePrompt(model, task, d.test, r.tensors, MAX_TEXT_TOKENS);
      out = {
        unit, accuracy: ev.accuracy, probabilities: ev.probabilities.map((p) => Array.from(p)), wallMs: performance.now() - started,
        heldOut: r.heldOut?.accuracy ?? null, steps: r.steps, bestStep: r.bestStep, stoppedEarly: r.stoppedEarly, examplesPerSec: r.examplesPerSec,
      };
      if (unit.keepTensors) out.tensors = toPlain(r.tensors);
    }
    parentPort!.postMessage(out);
  });
  parentPort!.postMessage('ready');
}

// --- main side -----------------------------------------------------------------------------------

function majorityVote(members: number[][][], n: number): number[] {
  // members[m][i] = probabilities of example i; ties go to the higher mean probability.
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const C = members[0]![i]!.length;
    const votes = new Array<number>(C).fill(0);
    const mean = new Array<number>(C).fill(0);
    for (const m of members) {
      const p = m[i]!;
      let best = 0;
      for (let c = 1; c < C; c++) if (p[c]! > p[best]!) best = c;
      votes[best]!++;
      p.forEach((x, c) => { mean[c]! += x; });
    }
    let w = 0;
    for (let c = 1; c < C; c++) if (votes[c]! > votes[w]! || (votes[c] === votes[w] && mean[c]! > mean[w]!)) w = c;
    out.push(w);
  }
  return out;
}

/**
 * Groups of runs that `--only` selects: base (the methods' table), votes (the
 * ensemble's members: vote modes, abstention), distill (members, then a prompt
 * distilled from them), transfer (an sst2 member, then short runs on trec and
 * subj from it, vocabulary and label words), probe (exact and Adam probes).
 */
export const GROUPS = ['base', 'votes', 'distill', 'transfer', 'probe'] as const;
export type Group = (typeof GROUPS)[number];

function memberUnit(ds: Dataset, seed: number): Unit {
  // keepTensors: members teach the distilled prompt and seed the transfer runs.
  return { kind: 'train', dataset: ds.name, method: 'prompt_tuning', seed, scoring: 'verbalizer', options: METHOD_OPTIONS.prompt_tuning!, label: `prompt tuning seed ${seed}`, keepTensors: true };
}

function units(datasets: Dataset[], groups: Set<Group>): Unit[] {
  const list: Unit[] = [];
  const probe = (ds: Dataset, pooling: 'mean' | 'last', bare: boolean) => list.push({ kind: 'train', dataset: ds.name, method: 'linear_head', seed: 0, scoring: 'head', pooling, bare, options: METHOD_OPTIONS.linear_head!, label: `linear probe (${pooling}${bare ? ', bare' : ''})` });
  for (const ds of datasets) {
    if (groups.has('base') || groups.has('votes') || groups.has('distill')) {
      for (let seed = 0; seed < ENSEMBLE; seed++) list.push(memberUnit(ds, seed));
    } else if (groups.has('transfer') && ds.name === 'sst2') {
      list.push(memberUnit(ds, 0));
    }
    if (groups.has('base')) {
      list.push({ kind: 'train', dataset: ds.name, method: 'p_tuning', seed: 0, scoring: 'verbalizer', options: METHOD_OPTIONS.p_tuning!, label: 'P-tuning' });
      list.push({ kind: 'train', dataset: ds.name, method: 'prefix_tuning', seed: 0, scoring: 'head', pooling: 'mean', options: METHOD_OPTIONS.prefix_tuning!, label: 'prefix tuning' });
    }
    if (groups.has('base') || groups.has('probe')) {
      for (const bare of [false, true]) for (const pooling of ['last', 'mean'] as const) probe(ds, pooling, bare);
    }
    if (groups.has('base')) list.push({ kind: 'zero_shot', dataset: ds.name });
  }
  return extraUnits(datasets, groups, list);
}

/** Runs that need nothing trained first (exact probes, transfer baselines); see the sections below. */
function extraUnits(_datasets: Dataset[], _groups: Set<Group>, list: Unit[]): Unit[] {
  return list;
}

/** Runs built from finished ones (distillation from the members, transfer from an sst2 prompt). */
function dependentUnits(_datasets: Dataset[], _groups: Set<Group>, _done: UnitResult[]): Unit[] {
  return [];
}

// --- the cache: a finished run's result, by what it ran --------------------------------------

function cacheKey(unit: Unit, quick: boolean): string {
  return createHash('sha256').update(JSON.stringify({ unit, quick, maxTextTokens: MAX_TEXT_TOKENS })).digest('hex').slice(0, 32);
}

function readCache(dir: string | undefined, unit: Unit, quick: boolean): UnitResult | null {
  if (!dir) return null;
  try {
    const r = JSON.parse(readFileSync(`${dir}/${cacheKey(unit, quick)}.json`, 'utf8')) as UnitResult;
    return { ...r, unit, cached: true };
  } catch {
    return null;
  }
}

function writeCache(dir: string | undefined, r: UnitResult, quick: boolean): void {
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(`${dir}/${cacheKey(r.unit, quick)}.json`, JSON.stringify(r));
}

const pct = (x: number) => (100 * x).toFixed(1);
const secs = (ms: number) => (ms >= 100_000 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`);

interface RunContext { quick: boolean; workers: number; cacheDir: string | undefined; started: number; results: UnitResult[] }

/** Runs the units on worker threads (cached ones are read back instead), appending to ctx.results. */
async function runAll(all: Unit[], ctx: RunContext): Promise<void> {
  const todo: Unit[] = [];
  for (const u of all) {
    const hit = readCache(ctx.cacheDir, u, ctx.quick);
    if (hit) ctx.results.push(hit);
    else todo.push(u);
  }
  // Longest first, for balance.
  const weight = (u: Unit) => (u.kind === 'zero_shot' ? 0 : u.method === 'linear_head' ? 1 : 3) * (u.dataset === 'trec' ? 1 : 2);
  todo.sort((a, b) => weight(b) - weight(a));
  console.log(`eval: ${todo.length} runs on ${ctx.workers} worker thread(s)${all.length > todo.length ? `, ${all.length - todo.length} from the cache` : ''}${ctx.quick ? ' (quick: subsets, 1 epoch)' : ''}`);
  if (todo.length === 0) return;
  let finished = 0;
  await new Promise<void>((resolve, reject) => {
    let next = 0;
    let live = 0;
    for (let w = 0; w < Math.min(ctx.workers, todo.length); w++) {
      const worker = new Worker(new URL('./eval-worker.mjs', import.meta.url), { workerData: { quick: ctx.quick, worker: true }, execArgv: [] });
      live++;
      const feed = () => {
        if (next < todo.length) worker.postMessage(todo[next++]);
        else worker.postMessage(null);
      };
      worker.on('message', (msg: UnitResult | 'ready') => {
        if (msg !== 'ready') {
          ctx.results.push(msg);
          writeCache(ctx.cacheDir, msg, ctx.quick);
          finished++;
          const u = msg.unit;
          const name = u.kind === 'zero_shot' ? 'zero-shot' : u.label;
          console.log(`  ${u.dataset.padEnd(5)} ${name.padEnd(22)} test ${pct(msg.accuracy).padStart(5)}  held-out ${msg.heldOut === null ? '  -  ' : pct(msg.heldOut).padStart(5)}  ${secs(msg.wallMs).padStart(7)}  steps ${msg.steps}${msg.stoppedEarly ? ' (early stop)' : ''}  [${finished}/${todo.length}, ${secs(performance.now() - ctx.started)}]`);
        }
        feed();
      });
      worker.on('error', reject);
      worker.on('exit', () => { if (--live === 0) resolve(); });
    }
  });
}

/** The new sections' tables (votes, distillation, transfer, probes); see below. */
function extraReports(_datasets: Dataset[], _groups: Set<Group>, _results: UnitResult[], _quick: boolean, _workers: number, _totalMs: number): string[] {
  return [];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string) => args.includes(name);
  const value = (name: string) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
  const quick = flag('--quick');
  const write = flag('--write');
  const workers = Number(value('--workers') ?? Math.max(1, cpus().length));
  const wanted = (value('--datasets') ?? DATASETS.map((d) => d.name).join(',')).split(',');
  const datasets = DATASETS.filter((d) => wanted.includes(d.name));
  const only = (value('--only') ?? GROUPS.join(',')).split(',');
  for (const g of only) if (!(GROUPS as readonly string[]).includes(g)) throw new Error(`--only: unknown group ${g} (groups: ${GROUPS.join(', ')})`);
  const groups = new Set(only as Group[]);
  // --cache DIR: results of finished runs are kept there and reused by a later invocation.
  const cacheDir = value('--cache');
  const started = performance.now();
  const results: UnitResult[] = [];
  const first = units(datasets, groups);
  await runAll(first, { quick, workers, cacheDir, started, results });
  const second = dependentUnits(datasets, groups, results);
  if (second.length > 0) await runAll(second, { quick, workers, cacheDir, started, results });
  const totalMs = performance.now() - started;
  const table = [
    ...(groups.has('base') ? [report(datasets, results, quick, workers, totalMs)] : []),
    ...extraReports(datasets, groups, results, quick, workers, totalMs),
  ].join('\n\n');
  console.log(`\n${table}`);
  if (write) {
    if (quick) throw new Error('--quick results are not written');
    const doc = readFileSync(RESULTS, 'utf8');
    const begin = '<!-- eval:begin -->';
    const end = '<!-- eval:end -->';
    const a = doc.indexOf(begin);
    const b = doc.indexOf(end);
    if (a < 0 || b < a) throw new Error(`docs/RESULTS.md has no ${begin} ... ${end} block`);
    writeFileSync(RESULTS, `${doc.slice(0, a + begin.length)}\n${table}\n${doc.slice(b)}`);
    console.log('docs/RESULTS.md updated');
  }
}

function report(datasets: Dataset[], results: UnitResult[], quick: boolean, workers: number, totalMs: number): string {
  const find = (ds: string, pred: (u: Unit) => boolean) => results.filter((r) => r.unit.dataset === ds && pred(r.unit));
  const train = (label: string) => (u: Unit) => u.kind === 'train' && u.label === label;
  type Cell = { acc: number; ms: number } | null;
  const rows: Array<{ name: string; cells: Cell[]; note?: string }> = [];
  const cellOf = (rs: UnitResult[]): Cell => (rs.length ? { acc: rs[0]!.accuracy, ms: rs[0]!.wallMs } : null);

  rows.push({
    name: 'majority class (of train)',
    cells: datasets.map((ds) => {
      const trainSet = load(ds, 'train');
      const test = load(ds, 'test');
      const counts = new Array<number>(ds.labels.length).fill(0);
      for (const e of trainSet) counts[e.label]!++;
      const major = counts.indexOf(Math.max(...counts));
      return { acc: test.filter((e) => e.label === major).length / test.length, ms: 0 };
    }),
  });
  rows.push({ name: 'zero-shot verbalizer (first token of label word)', cells: datasets.map((ds) => cellOf(find(ds.name, (u) => u.kind === 'zero_shot'))) });
  rows.push({ name: 'linear probe, last-token feature (template)', cells: datasets.map((ds) => cellOf(find(ds.name, train('linear probe (last)')))) });
  rows.push({ name: 'linear probe, mean-pooled feature (template)', cells: datasets.map((ds) => cellOf(find(ds.name, train('linear probe (mean)')))) });
  rows.push({ name: 'linear probe, last-token feature (bare input)', cells: datasets.map((ds) => cellOf(find(ds.name, train('linear probe (last, bare)')))) });
  rows.push({ name: 'linear probe, mean-pooled feature (bare input)', cells: datasets.map((ds) => cellOf(find(ds.name, train('linear probe (mean, bare)')))) });
  rows.push({ name: 'prompt tuning, P=16, one seed (seed 0)', cells: datasets.map((ds) => cellOf(find(ds.name, train('prompt tuning seed 0')))) });
  const members = (ds: string) => find(ds, (u) => u.kind === 'train' && u.method === 'prompt_tuning').sort((a, b) => (a.unit as { seed: number }).seed - (b.unit as { seed: number }).seed);
  rows.push({
    name: `prompt tuning, average of ${ENSEMBLE} seeds`,
    cells: datasets.map((ds) => {
      const m = members(ds.name);
      return m.length ? { acc: m.reduce((s, r) => s + r.accuracy, 0) / m.length, ms: m.reduce((s, r) => s + r.wallMs, 0) / m.length } : null;
    }),
  });
  rows.push({
    name: `prompt tuning, best of ${ENSEMBLE} seeds (by test)`,
    cells: datasets.map((ds) => {
      const m = members(ds.name);
      return m.length ? { acc: Math.max(...m.map((r) => r.accuracy)), ms: m.reduce((s, r) => s + r.wallMs, 0) } : null;
    }),
  });
  rows.push({
    name: `prompt tuning, best of ${ENSEMBLE} seeds (by held-out)`,
    cells: datasets.map((ds) => {
      const m = members(ds.name);
      if (!m.length) return null;
      const pick = m.reduce((a, b) => ((b.heldOut ?? 0) > (a.heldOut ?? 0) ? b : a));
      return { acc: pick.accuracy, ms: m.reduce((s, r) => s + r.wallMs, 0) };
    }),
  });
  rows.push({
    name: `prompt tuning, ${ENSEMBLE}-prompt majority vote`,
    cells: datasets.map((ds) => {
      const m = members(ds.name);
      if (m.length < 2) return null;
      const test = load(ds, 'test').slice(0, m[0]!.probabilities.length);
      const votes = majorityVote(m.map((r) => r.probabilities), test.length);
      return { acc: votes.filter((v, i) => v === test[i]!.label).length / test.length, ms: m.reduce((s, r) => s + r.wallMs, 0) };
    }),
  });
  rows.push({ name: 'P-tuning (MLP encoder), P=16', cells: datasets.map((ds) => cellOf(find(ds.name, train('P-tuning')))) });
  rows.push({ name: 'prefix tuning, P=8 per layer, linear head (mean)', cells: datasets.map((ds) => cellOf(find(ds.name, train('prefix tuning')))) });

  const head = `| method | ${datasets.map((d) => d.name).join(' | ')} | ${datasets.map((d) => `${d.name} time`).join(' | ')} |`;
  const sep = `|---|${datasets.map(() => '---:').join('|')}|${datasets.map(() => '---:').join('|')}|`;
  const ref = referenceTable();
  const refCell = (row: string, ds: string): string => {
    const v = ref.get(REFERENCE_ROW[row] ?? '')?.get(ds);
    return v === undefined ? '' : ` (${v.toFixed(1)})`;
  };
  const lines = rows.map((r) => `| ${r.name} | ${r.cells.map((c, i) => (c ? `${pct(c.acc)}${refCell(r.name, datasets[i]!.name)}` : '–')).join(' | ')} | ${r.cells.map((c) => (c && c.ms > 0 ? secs(c.ms) : '–')).join(' | ')} |`);
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const meta = [
    '',
    `Test accuracy (%) on stories260k, frozen. Generated by \`npm run eval${quick ? ' -- --quick' : ''}\` on ${new Date().toISOString().slice(0, 10)}:`,
    `${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, onnxruntime-node CPU,`,
    `${workers} worker thread(s) × 1 onnxruntime thread; total wall time ${secs(totalMs)}. Times are per run`,
    '(a 5-seed row counts all five runs, the average row one run on average), including the test-set evaluation.',
    'In parentheses: the reference implementation\'s accuracy for the comparable row (../shared/data/REFERENCE.md).',
  ];
  return [...meta, '', head, sep, ...lines].join('\n');
}

if (isMainThread && !(workerData as { worker?: boolean } | null)?.worker) {
  await main();
} else {
  await workerMain();
}
