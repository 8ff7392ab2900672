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
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { TrainableModel } from '../models/training-graph.ts';
import type { Pooling } from '../models/pooling.ts';
import type { PromptTensors } from '../prompts/kinds.ts';
import { parseJsonl, splitHeldOut, type Example } from '../prompts/training/data.ts';
import { parseTrainingOptions } from '../prompts/training/options.ts';
import { shuffle, stream } from '../prompts/training/rng.ts';
import { distillTrainingSet } from '../prompts/training/distill.ts';
import { evaluatePrompt, trainPrompt, type TaskSpec } from '../prompts/training/trainer.ts';
import { accuracyWeight, reduceVotes, type VoteMode } from '../prompts/vote.ts';

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
  linear_head: { method: 'linear_head', solver: 'adam', epochs: 30, batch_size: 64, learning_rate: 0.01, patience: 0 },
  // The exact probe: L-BFGS to the optimum for each λ of the grid, λ chosen on the held-out split.
  linear_head_exact: { method: 'linear_head', solver: 'lbfgs' },
};

/** Transfer runs' fixed budget (optimiser steps), held-out evaluation every 25 steps, the best kept. */
export const TRANSFER_STEPS = 200;
const TRANSFER_OPTIONS = { method: 'prompt_tuning', num_virtual_tokens: 16, learning_rate: 0.1, epochs: 100, max_steps: TRANSFER_STEPS, eval_every: 25, patience: 0, batch_size: 32 };
/**
 * Distillation variants. The full-budget run trains one: half the teacher's
 * soft labels, half gold (each student costs as much as a member; the
 * shared-machine run also tried the soft labels alone, and sharpened to
 * T = 0.1, see docs/RESULTS.md). Add { goldWeight: 0, temperature: 1 } etc. to compare.
 */
export const DISTILL_VARIANTS: Array<{ goldWeight: number; temperature: number }> = [
  { goldWeight: 0.5, temperature: 1 },
];
const distillLabel = (v: { goldWeight: number; temperature: number }) => `distilled gold ${v.goldWeight}${v.temperature === 1 ? '' : ` T ${v.temperature}`}`;

type Unit =
  | { kind: 'zero_shot'; dataset: string }
  | {
    kind: 'train'; dataset: string; method: string; seed: number; scoring: 'verbalizer' | 'head'; pooling?: Pooling;
    options: Record<string, unknown>; label: string; bare?: boolean; keepTensors?: boolean;
    /** Transfer: start from this prompt. */
    initPrompt?: PlainTensors;
    /** Distillation: the teacher's members and the gold weight. */
    teacher?: PlainTensors[]; goldWeight?: number; temperature?: number;
    /** Train on a seeded sample of this many training examples, select on this many held-out ones (the test set is always whole). */
    subset?: { train: number; heldOut: number };
  };

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

function taskFor(ds: Dataset, scoring: 'verbalizer' | 'head', pooling: Pooling = 'mean', template = ds.template): TaskSpec {
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
      // Distillation: the job's code path (teacher's mean probabilities over the training texts, mixed with gold).
      const sample = <T>(xs: T[], n: number | undefined) => (n === undefined || n >= xs.length ? xs : shuffle([...xs], stream(0, 'subset')).slice(0, n));
      const baseTrain = sample(d.train, unit.subset?.train);
      const heldOut = sample(d.heldOut, unit.subset?.heldOut);
      const train = unit.teacher
        ? await distillTrainingSet(model, task, baseTrain, [], unit.teacher.map(fromPlain), unit.goldWeight ?? 0, MAX_TEXT_TOKENS, unit.temperature ?? 1)
        : baseTrain;
      const r = await trainPrompt(model, task, train, heldOut, opts, {}, undefined, unit.initPrompt ? { initPrompt: fromPlain(unit.initPrompt) } : {});
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

/**
 * The vote/distill/transfer sections' ensemble members: prompt tuning exactly
 * as in the base table (5 epochs on the whole training set, selected on the
 * whole held-out split). An earlier shared-machine run used 2 epochs on a
 * 1,200-example sample; set SUBSET to repeat that kind of run.
 */
export const MEMBER_EPOCHS = 5;
/** A seeded sample of the training and held-out sets for members, distillation and transfer (undefined: the whole sets; the test sets are always whole). */
export const SUBSET: { train: number; heldOut: number } | undefined = undefined;
/** What every member, distillation and transfer unit carries of SUBSET (nothing for the whole sets). */
const SUBSET_FIELD: { subset?: { train: number; heldOut: number } } = SUBSET ? { subset: SUBSET } : {};
/** The section headings' wording: "1200 sampled" or "all the" (training / held-out examples). */
const budgetWords = (what: 'train' | 'heldOut') => (SUBSET ? `${SUBSET[what]} sampled` : 'all the');

function memberUnit(ds: Dataset, seed: number): Unit {
  // keepTensors: members teach the distilled prompt and seed the transfer runs.
  return { kind: 'train', dataset: ds.name, method: 'prompt_tuning', seed, scoring: 'verbalizer', options: { ...METHOD_OPTIONS.prompt_tuning!, epochs: MEMBER_EPOCHS }, label: `member seed ${seed}`, keepTensors: true, ...SUBSET_FIELD };
}

function baseMemberUnit(ds: Dataset, seed: number): Unit {
  return { kind: 'train', dataset: ds.name, method: 'prompt_tuning', seed, scoring: 'verbalizer', options: METHOD_OPTIONS.prompt_tuning!, label: `prompt tuning seed ${seed}` };
}

function units(datasets: Dataset[], groups: Set<Group>): Unit[] {
  const list: Unit[] = [];
  const probe = (ds: Dataset, pooling: 'mean' | 'last', bare: boolean) => list.push({ kind: 'train', dataset: ds.name, method: 'linear_head', seed: 0, scoring: 'head', pooling, bare, options: METHOD_OPTIONS.linear_head!, label: `linear probe (${pooling}${bare ? ', bare' : ''})` });
  for (const ds of datasets) {
    if (groups.has('votes') || groups.has('distill')) {
      for (let seed = 0; seed < ENSEMBLE; seed++) list.push(memberUnit(ds, seed));
    } else if (groups.has('transfer') && ds.name === 'sst2') {
      list.push(memberUnit(ds, 0));
    }
    if (groups.has('base')) {
      for (let seed = 0; seed < ENSEMBLE; seed++) list.push(baseMemberUnit(ds, seed));
      list.push({ kind: 'train', dataset: ds.name, method: 'p_tuning', seed: 0, scoring: 'verbalizer', options: METHOD_OPTIONS.p_tuning!, label: 'P-tuning' });
      list.push({ kind: 'train', dataset: ds.name, method: 'prefix_tuning', seed: 0, scoring: 'head', pooling: 'mean', options: METHOD_OPTIONS.prefix_tuning!, label: 'prefix tuning' });
    }
    if (groups.has('base')) {
      for (const bare of [false, true]) for (const pooling of ['last', 'mean'] as const) probe(ds, pooling, bare);
    } else if (groups.has('probe')) {
      probe(ds, 'mean', false);
    }
    if (groups.has('base')) list.push({ kind: 'zero_shot', dataset: ds.name });
  }
  return extraUnits(datasets, groups, list);
}

/** Runs that need nothing trained first (exact probes, transfer baselines); see the sections below. */
function extraUnits(datasets: Dataset[], groups: Set<Group>, list: Unit[]): Unit[] {
  for (const ds of datasets) {
    if (groups.has('probe')) {
      for (const bare of [false, true]) {
        for (const pooling of ['mean', 'mean_last'] as const) {
          list.push({ kind: 'train', dataset: ds.name, method: 'linear_head', seed: 0, scoring: 'head', pooling, bare, options: METHOD_OPTIONS.linear_head_exact!, label: `exact probe (${pooling}${bare ? ', bare' : ''})` });
        }
      }
    }
    if (groups.has('transfer') && ds.name !== 'sst2') {
      for (const init of ['vocab', 'label_words']) {
        list.push({ kind: 'train', dataset: ds.name, method: 'prompt_tuning', seed: 0, scoring: 'verbalizer', options: { ...TRANSFER_OPTIONS, init }, label: `transfer baseline ${init}`, ...SUBSET_FIELD });
      }
    }
  }
  return list;
}

/** Runs built from finished ones (distillation from the members, transfer from an sst2 prompt). */
function dependentUnits(datasets: Dataset[], groups: Set<Group>, done: UnitResult[]): Unit[] {
  const list: Unit[] = [];
  for (const ds of datasets) {
    if (groups.has('distill') && memberResults(done, ds.name).length === ENSEMBLE) {
      const teacher = memberResults(done, ds.name).map((r) => r.tensors!);
      for (const v of DISTILL_VARIANTS) {
        const unit: Unit = {
          kind: 'train', dataset: ds.name, method: 'prompt_tuning', seed: 0, scoring: 'verbalizer', options: { ...METHOD_OPTIONS.prompt_tuning!, epochs: MEMBER_EPOCHS },
          label: distillLabel(v), teacher, goldWeight: v.goldWeight, ...SUBSET_FIELD,
        };
        if (v.temperature !== 1) unit.temperature = v.temperature;
        list.push(unit);
      }
    }
    if (groups.has('transfer') && ds.name !== 'sst2') {
      const source = done.find((r) => r.unit.dataset === 'sst2' && r.unit.kind === 'train' && r.unit.label === 'member seed 0');
      if (source?.tensors) list.push({ kind: 'train', dataset: ds.name, method: 'prompt_tuning', seed: 0, scoring: 'verbalizer', options: TRANSFER_OPTIONS, label: 'transfer from sst2', initPrompt: source.tensors, ...SUBSET_FIELD });
    }
  }
  return list;
}

function memberResults(results: UnitResult[], ds: string): UnitResult[] {
  return results.filter((r) => r.unit.dataset === ds && r.unit.kind === 'train' && r.unit.label.startsWith('member seed'))
    .sort((a, b) => (a.unit as { seed: number }).seed - (b.unit as { seed: number }).seed);
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

interface RunContext { quick: boolean; workers: number; cacheDir: string | undefined; started: number; results: UnitResult[]; cachedOnly?: boolean }

/** Order of work: members first (others depend on them), then distillation, transfer, the rest. */
function priority(u: Unit): number {
  if (u.kind !== 'train') return 5;
  if (u.label.startsWith('member seed')) return 0;
  if (u.teacher) return 1;
  if (u.label.startsWith('transfer')) return 2;
  if (u.method === 'linear_head') return 4;
  return 3;
}

const unitKey = (u: Unit) => `${u.dataset}\u0000${u.kind === 'train' ? u.label : 'zero-shot'}`;

/**
 * Runs the units on worker threads (cached ones are read back instead),
 * appending to ctx.results. `more` is asked after every result for units that
 * have become possible (distillation once a dataset's members are done); they
 * join the queue by priority, so a worker never waits for a whole phase.
 */
async function runAll(all: Unit[], ctx: RunContext, more: (done: UnitResult[]) => Unit[] = () => []): Promise<void> {
  const queue: Unit[] = [];
  const seen = new Set<string>();
  let fromCache = 0;
  const weight = (u: Unit) => (u.kind === 'zero_shot' ? 0 : u.method === 'linear_head' ? 1 : 3) * (u.dataset === 'trec' ? 1 : 2);
  const add = (units: Unit[]) => {
    let again = false;
    for (const u of units) {
      const k = unitKey(u);
      if (seen.has(k)) continue;
      seen.add(k);
      const hit = readCache(ctx.cacheDir, u, ctx.quick);
      if (hit) { ctx.results.push(hit); fromCache++; again = true; } else queue.push(u);
    }
    // Members first, then by priority; longest first within one, for balance.
    queue.sort((a, b) => priority(a) - priority(b) || weight(b) - weight(a));
    if (again) add(more(ctx.results));
  };
  add(all);
  add(more(ctx.results));
  console.log(`eval: ${queue.length} runs queued on ${ctx.workers} worker thread(s), ${fromCache} from the cache${ctx.quick ? ' (quick: subsets, 1 epoch)' : ''}; more join as their inputs finish`);
  if (ctx.cachedOnly) {
    if (queue.length > 0) console.log(`--cached-only: not run: ${queue.map((u) => `${u.dataset} ${u.kind === 'train' ? u.label : 'zero-shot'}`).join(', ')}`);
    return;
  }
  if (queue.length === 0) return;
  let finished = 0;
  let inFlight = 0;
  const idle: Worker[] = [];
  await new Promise<void>((resolve, reject) => {
    let live = 0;
    const feed = (worker: Worker) => {
      const u = queue.shift();
      if (u) { inFlight++; worker.postMessage(u); return; }
      idle.push(worker);
      // Nothing queued and nothing running that could add work: everyone stops.
      if (inFlight === 0) for (const w of idle.splice(0)) w.postMessage(null);
    };
    for (let w = 0; w < ctx.workers; w++) {
      const worker = new Worker(new URL('./eval-worker.mjs', import.meta.url), { workerData: { quick: ctx.quick, worker: true }, execArgv: [] });
      live++;
      worker.on('message', (msg: UnitResult | 'ready') => {
        if (msg !== 'ready') {
          inFlight--;
          ctx.results.push(msg);
          writeCache(ctx.cacheDir, msg, ctx.quick);
          finished++;
          const u = msg.unit;
          const name = u.kind === 'zero_shot' ? 'zero-shot' : u.label;
          console.log(`  ${u.dataset.padEnd(5)} ${name.padEnd(22)} test ${pct(msg.accuracy).padStart(5)}  held-out ${msg.heldOut === null ? '  -  ' : pct(msg.heldOut).padStart(5)}  ${secs(msg.wallMs).padStart(7)}  steps ${msg.steps}${msg.stoppedEarly ? ' (early stop)' : ''}  [${finished} done, ${queue.length} queued, ${secs(performance.now() - ctx.started)}]`);
          add(more(ctx.results));
          for (const w of idle.splice(0)) feed(w);
        }
        feed(worker);
      });
      worker.on('error', reject);
      worker.on('exit', () => { if (--live === 0) resolve(); });
    }
  });
}

/** Test labels of a dataset (quick: the subset the workers used). */
function testLabels(ds: Dataset, n: number): number[] {
  return load(ds, 'test').slice(0, n).map((e) => e.label);
}

function accuracyOf(pred: number[], gold: number[]): number {
  return pred.filter((p, i) => p === gold[i]).length / Math.max(1, gold.length);
}

interface VoteStudy {
  ds: Dataset;
  members: UnitResult[];
  gold: number[];
  byMode: Record<VoteMode, { pred: number[]; agreement: number[] }>;
}

function voteStudy(ds: Dataset, members: UnitResult[]): VoteStudy {
  const n = members[0]!.probabilities.length;
  const gold = testLabels(ds, n);
  const C = ds.labels.length;
  // weighted: each member's held-out accuracy recorded by its run (what the job API records as provenance).
  const weights = members.map((m) => accuracyWeight(m.heldOut ?? 1 / C, C));
  const byMode = {} as VoteStudy['byMode'];
  for (const mode of ['majority', 'mean_probability', 'weighted'] as const) {
    const pred: number[] = [];
    const agreement: number[] = [];
    for (let i = 0; i < n; i++) {
      const out = reduceVotes(members.map((m) => m.probabilities[i]!), mode, weights);
      pred.push(out.winner);
      agreement.push(out.agreement);
    }
    byMode[mode] = { pred, agreement };
  }
  return { ds, members, gold, byMode };
}

/** Coverage and accuracy on the answered inputs when abstaining below each threshold (majority vote). */
function coverageCurve(v: VoteStudy, thresholds: number[]): Array<{ threshold: number; coverage: number; accuracy: number | null }> {
  const { pred, agreement } = v.byMode.majority;
  return thresholds.map((t) => {
    const kept = pred.map((_, i) => i).filter((i) => agreement[i]! >= t - 1e-12);
    const correct = kept.filter((i) => pred[i] === v.gold[i]).length;
    return { threshold: t, coverage: kept.length / pred.length, accuracy: kept.length ? correct / kept.length : null };
  });
}

const THRESHOLDS = [0, 0.4, 0.6, 0.8, 1];
const COVERAGE_SVG = fileURLToPath(new URL('docs/eval/agreement-coverage.svg', ROOT));

/** A small line plot: accuracy on answered inputs against coverage, one line per dataset. */
function coverageSvg(curves: Array<{ name: string; points: Array<{ threshold: number; coverage: number; accuracy: number | null }> }>): string {
  const W = 560, Hh = 360, L = 60, R = 150, T = 30, B = 50;
  const pw = W - L - R, ph = Hh - T - B;
  const all = curves.flatMap((c) => c.points.filter((p) => p.accuracy !== null).map((p) => p.accuracy!));
  const yMin = Math.max(0, Math.floor((Math.min(...all) * 100 - 2) / 5) * 5) / 100;
  const yMax = Math.min(1, Math.ceil((Math.max(...all) * 100 + 2) / 5) * 5 / 100);
  const x = (c: number) => L + c * pw;
  const y = (a: number) => T + (1 - (a - yMin) / (yMax - yMin)) * ph;
  const colours = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${Hh}" viewBox="0 0 ${W} ${Hh}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${Hh}" fill="white"/>`,
    `<text x="${L}" y="18" font-size="13">Abstaining below an agreement threshold (5-prompt majority vote)</text>`,
    `<line x1="${L}" y1="${T + ph}" x2="${L + pw}" y2="${T + ph}" stroke="black"/>`,
    `<line x1="${L}" y1="${T}" x2="${L}" y2="${T + ph}" stroke="black"/>`,
  ];
  for (let c = 0; c <= 10; c += 2) out.push(`<line x1="${x(c / 10)}" y1="${T + ph}" x2="${x(c / 10)}" y2="${T + ph + 4}" stroke="black"/><text x="${x(c / 10)}" y="${T + ph + 18}" text-anchor="middle">${c * 10}%</text>`);
  for (let a = yMin; a <= yMax + 1e-9; a += 0.05) out.push(`<line x1="${L - 4}" y1="${y(a)}" x2="${L}" y2="${y(a)}" stroke="black"/><text x="${L - 8}" y="${y(a) + 4}" text-anchor="end">${Math.round(a * 100)}%</text><line x1="${L}" y1="${y(a)}" x2="${L + pw}" y2="${y(a)}" stroke="#ddd"/>`);
  out.push(`<text x="${L + pw / 2}" y="${Hh - 12}" text-anchor="middle">coverage (fraction of inputs answered)</text>`);
  out.push(`<text transform="translate(16 ${T + ph / 2}) rotate(-90)" text-anchor="middle">accuracy on answered inputs</text>`);
  curves.forEach((c, k) => {
    const pts = c.points.filter((p) => p.accuracy !== null);
    const colour = colours[k % colours.length]!;
    out.push(`<polyline fill="none" stroke="${colour}" stroke-width="2" points="${pts.map((p) => `${x(p.coverage).toFixed(1)},${y(p.accuracy!).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) out.push(`<circle cx="${x(p.coverage).toFixed(1)}" cy="${y(p.accuracy!).toFixed(1)}" r="3" fill="${colour}"><title>${c.name} min_agreement ${p.threshold}: coverage ${pct(p.coverage)}%, accuracy ${pct(p.accuracy!)}%</title></circle>`);
    out.push(`<line x1="${L + pw + 15}" y1="${T + 10 + k * 20}" x2="${L + pw + 35}" y2="${T + 10 + k * 20}" stroke="${colour}" stroke-width="2"/><text x="${L + pw + 40}" y="${T + 14 + k * 20}">${c.name}</text>`);
  });
  out.push(`<text x="${L + pw + 15}" y="${T + 100}" fill="#555">points: min_agreement</text><text x="${L + pw + 15}" y="${T + 115}" fill="#555">${THRESHOLDS.join(', ')}</text><text x="${L + pw + 15}" y="${T + 130}" fill="#555">(right to left)</text>`);
  out.push('</svg>');
  return out.join('\n');
}

/** The new sections' tables (votes, distillation, transfer, probes); writes the coverage plot when asked. */
function extraReports(datasets: Dataset[], groups: Set<Group>, results: UnitResult[], quick: boolean, writePlot: boolean): string[] {
  const sections: string[] = [];
  const cols = datasets.map((d) => d.name);
  const header = (first: string) => `| ${first} | ${cols.join(' | ')} |\n|---|${cols.map(() => '---:').join('|')}|`;
  const studies = new Map<string, VoteStudy>();
  for (const ds of datasets) {
    const m = memberResults(results, ds.name);
    if (m.length >= 2) studies.set(ds.name, voteStudy(ds, m));
  }
  const cell = (ds: string, f: (v: VoteStudy) => number | null) => { const v = studies.get(ds); const x = v ? f(v) : null; return x === null ? '–' : pct(x); };
  if ((groups.has('votes') || groups.has('distill')) && studies.size > 0) {
    const rows: Array<[string, (v: VoteStudy) => number | null]> = [
      ['majority vote', (v) => accuracyOf(v.byMode.majority.pred, v.gold)],
      ['mean-probability vote', (v) => accuracyOf(v.byMode.mean_probability.pred, v.gold)],
      ['weighted vote (held-out accuracy)', (v) => accuracyOf(v.byMode.weighted.pred, v.gold)],
      ['average member', (v) => v.members.reduce((a, r) => a + r.accuracy, 0) / v.members.length],
      ['best member (by test)', (v) => Math.max(...v.members.map((r) => r.accuracy))],
      ['best member (by held-out)', (v) => v.members.reduce((a, b) => ((b.heldOut ?? 0) > (a.heldOut ?? 0) ? b : a)).accuracy],
      ['worst member', (v) => Math.min(...v.members.map((r) => r.accuracy))],
      ['inputs where all members agree (%)', (v) => v.byMode.majority.agreement.filter((a) => a === 1).length / v.gold.length],
      ['largest share of one label among majority answers (%)', (v) => { const counts = new Map<number, number>(); for (const p of v.byMode.majority.pred) counts.set(p, (counts.get(p) ?? 0) + 1); return Math.max(...counts.values()) / v.gold.length; }],
    ];
    sections.push([
      `**Votes** (test accuracy %; ${ENSEMBLE} prompt-tuning members, seeds 0-${ENSEMBLE - 1}, P=16, ${MEMBER_EPOCHS} epochs on ${budgetWords('train')} training examples, selected on ${budgetWords('heldOut')} held-out examples; members' held-out accuracies: ${datasets.map((d) => `${d.name} ${studies.get(d.name)?.members.map((m) => pct(m.heldOut ?? NaN)).join('/') ?? '–'}`).join('; ')})`,
      '', header('vote mode / member'), ...rows.map(([name, f]) => `| ${name} | ${cols.map((c) => cell(c, f)).join(' | ')} |`),
    ].join('\n'));
    const curves = [...studies.values()].map((v) => ({ name: v.ds.name, points: coverageCurve(v, THRESHOLDS) }));
    sections.push([
      '**Accuracy–coverage of `min_agreement`** (majority vote; an input is answered when at least that fraction of the members voted its label; accuracy on the answered inputs, coverage = fraction answered; plot: docs/eval/agreement-coverage.svg)',
      '', `| min_agreement | ${cols.map((c) => `${c} coverage | ${c} accuracy`).join(' | ')} |`, `|---:|${cols.map(() => '---:|---:').join('|')}|`,
      ...THRESHOLDS.map((t) => `| ${t} | ${cols.map((c) => { const p = curves.find((x) => x.name === c)?.points.find((q) => q.threshold === t); return p ? `${pct(p.coverage)} | ${p.accuracy === null ? '–' : pct(p.accuracy)}` : '– | –'; }).join(' | ')} |`),
    ].join('\n'));
    if (writePlot && !quick) {
      mkdirSync(dirname(COVERAGE_SVG), { recursive: true });
      writeFileSync(COVERAGE_SVG, `${coverageSvg(curves)}\n`);
    }
  }
  if (groups.has('distill') && studies.size > 0) {
    const distilled = (ds: string, v: { goldWeight: number; temperature: number }) => results.find((r) => r.unit.dataset === ds && r.unit.kind === 'train' && r.unit.label === distillLabel(v));
    const rows: string[] = [
      `| teacher: majority vote (${ENSEMBLE} rows per input) | ${cols.map((c) => cell(c, (v) => accuracyOf(v.byMode.majority.pred, v.gold))).join(' | ')} |`,
      `| teacher: mean-probability vote (the soft labels' argmax) | ${cols.map((c) => cell(c, (v) => accuracyOf(v.byMode.mean_probability.pred, v.gold))).join(' | ')} |`,
      `| teacher: average member (1 row per input) | ${cols.map((c) => cell(c, (v) => v.members.reduce((a, r) => a + r.accuracy, 0) / v.members.length)).join(' | ')} |`,
      ...DISTILL_VARIANTS.map((v) => `| distilled prompt, gold_weight ${v.goldWeight}, teacher_temperature ${v.temperature} (1 row per input) | ${cols.map((c) => { const r = distilled(c, v); return r ? `${pct(r.accuracy)} (held-out ${r.heldOut === null ? '–' : pct(r.heldOut)}, ${secs(r.wallMs)})` : '–'; }).join(' | ')} |`),
    ];
    sections.push([`**Distillation** (test accuracy %; the student is prompt tuning P=16 from sampled vocabulary, ${MEMBER_EPOCHS} epochs on the members' training texts (${budgetWords('train')} training examples), the same budget as one member, its targets the teacher's mean probabilities over those texts, sharpened by teacher_temperature and mixed with the gold label by gold_weight; no extra unlabelled texts)`, '', header('model'), ...rows].join('\n'));
  }
  if (groups.has('transfer')) {
    const tcols = datasets.filter((d) => d.name !== 'sst2').map((d) => d.name);
    const find = (ds: string, label: string) => results.find((r) => r.unit.dataset === ds && r.unit.kind === 'train' && r.unit.label === label);
    const rows = [['from the sst2 prompt (member seed 0)', 'transfer from sst2'], ['sampled vocabulary', 'transfer baseline vocab'], ['label words', 'transfer baseline label_words']]
      .map(([name, label]) => `| ${name} | ${tcols.map((c) => { const r = find(c, label!); return r ? `${pct(r.accuracy)} | ${r.heldOut === null ? '–' : pct(r.heldOut)}` : '– | –'; }).join(' | ')} |`);
    if (tcols.length > 0) {
      sections.push([`**Prompt transfer** (test and held-out accuracy % after ${TRANSFER_STEPS} steps of prompt tuning, P=16, lr 0.1, batch 32, on the members' training texts (${budgetWords('train')} training examples); the best of the held-out evaluations every 25 steps, on ${budgetWords('heldOut')} held-out examples, kept)`, '',
        `| init | ${tcols.map((c) => `${c} test | ${c} held-out`).join(' | ')} |`, `|---|${tcols.map(() => '---:|---:').join('|')}|`, ...rows].join('\n'));
    }
  }
  if (groups.has('probe')) {
    const ref = referenceTable().get('linear probe, mean-pooled feature');
    const find = (ds: string, label: string) => results.find((r) => r.unit.dataset === ds && r.unit.kind === 'train' && r.unit.label === label);
    const row = (name: string, label: string) => `| ${name} | ${cols.map((c) => { const r = find(c, label); return r ? `${pct(r.accuracy)} (${secs(r.wallMs)})` : '–'; }).join(' | ')} |`;
    sections.push([
      '**Exact probe** (test accuracy %, pooled features of the frozen model, no virtual token; mean: the mean-pooled feature (H = 64), mean_last: it and the last token\'s hidden state concatenated (128); in parentheses the run\'s wall time including feature extraction and the test set)', '', header('probe'),
      `| reference: mean-pooled probe (REFERENCE.md) | ${cols.map((c) => (ref?.get(c) === undefined ? '–' : ref.get(c)!.toFixed(1))).join(' | ')} |`,
      row('exact (L-BFGS, λ from held-out grid), template', 'exact probe (mean)'),
      row('exact (L-BFGS, λ from held-out grid), bare input', 'exact probe (mean, bare)'),
      row('exact, pooling mean_last ([mean ; last token], 2H features), template', 'exact probe (mean_last)'),
      row('exact, pooling mean_last, bare input', 'exact probe (mean_last, bare)'),
      row('Adam, 30 epochs, best held-out epoch, template', 'linear probe (mean)'),
    ].join('\n'));
  }
  return sections;
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
  // --cached-only: report what the cache holds, run nothing (the missing rows show as –).
  await runAll(units(datasets, groups), { quick, workers, cacheDir, started, results, cachedOnly: flag('--cached-only') }, (done) => dependentUnits(datasets, groups, done));
  const totalMs = performance.now() - started;
  const base = groups.has('base') ? report(datasets, results, quick, workers, totalMs) : null;
  const extra = extraReports(datasets, groups, results, quick, write);
  const extraBlock = extra.length > 0 ? [extraMeta(args, results, quick, workers, totalMs), ...extra].join('\n\n') : null;
  console.log(`\n${[base, extraBlock].filter(Boolean).join('\n\n')}`);
  if (write) {
    if (quick) throw new Error('--quick results are not written');
    if (base) replaceBlock('eval', base);
    if (extraBlock) replaceBlock('eval-ensembles', extraBlock);
    console.log('docs/RESULTS.md updated');
  }
}

/** Replaces the text between <!-- NAME:begin --> and <!-- NAME:end --> in docs/RESULTS.md. */
function replaceBlock(name: string, body: string): void {
  const doc = readFileSync(RESULTS, 'utf8');
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const a = doc.indexOf(begin);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`docs/RESULTS.md has no ${begin} ... ${end} block`);
  writeFileSync(RESULTS, `${doc.slice(0, a + begin.length)}\n${body}\n${doc.slice(b)}`);
}

function extraMeta(args: string[], results: UnitResult[], quick: boolean, workers: number, totalMs: number): string {
  const cached = results.filter((r) => r.cached).length;
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return [
    `Generated by \`npm run eval -- ${args.filter((a) => a !== '--write').join(' ')}\`${quick ? ' (quick)' : ''} on ${new Date().toISOString().slice(0, 10)}:`,
    `${cpus().length} × ${cpu}, Node ${process.version}, onnxruntime-node CPU, ${workers} worker thread(s) × 1 onnxruntime thread;`,
    `${results.length} runs, ${cached} of them read back from the --cache directory (written by an earlier invocation of the same command), wall time of this invocation ${secs(totalMs)}.`,
  ].join('\n');
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
  const members = (ds: string) => find(ds, (u) => u.kind === 'train' && u.method === 'prompt_tuning' && u.label.startsWith('prompt tuning seed')).sort((a, b) => (a.unit as { seed: number }).seed - (b.unit as { seed: number }).seed);
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
