// Workloads and traffic for the load generator, set up through the public
// API only: tenants (admin key), one task each, prompts in the plain JSON form
// (soft prompts and prefixes of several lengths, distinct per tenant or one
// shared tensor per shape), 5-prompt ensembles, and a request stream whose
// tenant popularity is uniform or Zipf, with a fraction of ensemble calls and
// texts from ../shared/data.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HttpClient } from './client.ts';
import { rng, type RequestSpec } from './generator.ts';

export type PromptKind = 'soft' | 'ptuning' | 'prefix';

/** The shapes a prompt upload needs, read from the checkpoint's config.json. */
export interface ModelDims {
  family: string;
  hidden: number;
  layers: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
}

export function readModelDims(modelDir: string): ModelDims {
  const c = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, number | string | undefined>;
  const type = String(c.model_type ?? '');
  const hidden = Number(c.hidden_size ?? c.n_embd);
  const heads = Number(c.num_attention_heads ?? c.n_head);
  const layers = Number(c.num_hidden_layers ?? c.n_layer);
  const family = type === 'llama' || type === 'mistral' || type === 'qwen2' ? 'llama' : type;
  const kvHeads = family === 'llama' ? Number(c.num_key_value_heads ?? heads) : heads;
  const headDim = family === 'llama' && c.head_dim !== undefined ? Number(c.head_dim) : hidden / heads;
  return { family, hidden, layers, kvHeads, headDim, vocab: Number(c.vocab_size) };
}

export function promptShape(d: ModelDims, kind: PromptKind, length: number): number[] {
  return kind === 'prefix' ? [d.layers, 2, d.kvHeads, length, d.headDim] : [length, d.hidden];
}

/**
 * A prompt's values, flat and row-major: deterministic in `seed`, three
 * decimals (short JSON; float32 rounding on both sides agrees), so that an
 * in-process replay can rebuild exactly what the server stored.
 */
export function promptValues(d: ModelDims, kind: PromptKind, length: number, seed: number): Float32Array {
  const n = promptShape(d, kind, length).reduce((a, b) => a * b, 1);
  const r = rng(seed * 7919 + 17);
  const scale = kind === 'prefix' ? 1 : 0.5;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round((r() - 0.5) * 2 * scale * 1000) / 1000;
  return out;
}

/** The JSON text of a nested array of `shape` holding `flat`. */
export function nestedJson(flat: Float32Array, shape: number[]): string {
  const parts: string[] = [];
  let pos = 0;
  const walk = (depth: number) => {
    parts.push('[');
    const n = shape[depth]!;
    if (depth === shape.length - 1) {
      for (let i = 0; i < n; i++) {
        if (i > 0) parts.push(',');
        // The value as stored is float32; the three-decimal double it came from prints shortest.
        parts.push(String(Math.round(flat[pos++]! * 1000) / 1000));
      }
    } else {
      for (let i = 0; i < n; i++) {
        if (i > 0) parts.push(',');
        walk(depth + 1);
      }
    }
    parts.push(']');
  };
  walk(0);
  return parts.join('');
}

// --- workloads ---------------------------------------------------------------

export interface PromptShape { kind: PromptKind; length: number }

export interface PromptDef extends PromptShape {
  name: string;
  /** Tensor seed: equal seeds give identical tensors (the server dedupes them by content). */
  seed: number;
}

export interface TenantDef {
  index: number;
  name: string;
  key: string;
  task: string;
  prompts: PromptDef[];
  /** Name of the tenant's ensemble of its first `ensembleSize` prompts, if it has one. */
  ensemble: string | null;
}

export interface TaskStyle {
  template: string;
  labels: string[];
  labelWords: string[];
}

export interface WorkloadSpec {
  /** Tenant name prefix; unique per server. */
  name: string;
  tenants: number;
  /** Prompts per tenant (the first is the tenant's "own" prompt). */
  promptsPerTenant: number;
  /** The first this many tenants get `ensembleSize` prompts (at least) and an ensemble of them. */
  ensembleTenants: number;
  ensembleSize: number;
  /** Shapes cycled over tenants and prompts: prompt j of tenant i has mix[(i + j) % mix.length]. */
  mix: PromptShape[];
  /** One tensor per shape, shared by everyone (the "one shared prompt" baseline), instead of distinct tensors. */
  shared: boolean;
  style: TaskStyle;
  /** Distinguishes the tensors of different workloads on one server. */
  seedBase: number;
}

export interface Workload {
  spec: WorkloadSpec;
  dims: ModelDims;
  tenants: TenantDef[];
  /** Prompt bytes (float32) registered, and of distinct tensors. */
  promptBytes: number;
  distinctPromptBytes: number;
  setupMs: number;
}

export const STYLE_CAUSAL: TaskStyle = { template: '{text} It was', labels: ['negative', 'positive'], labelWords: ['bad', 'good'] };

async function pool<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  }));
}

export function shapeOf(spec: WorkloadSpec, tenant: number, j: number): PromptShape {
  return spec.mix[(tenant + j) % spec.mix.length]!;
}

export function tensorSeed(spec: WorkloadSpec, tenant: number, j: number): number {
  if (spec.shared) return spec.seedBase + ((tenant + j) % spec.mix.length);
  return spec.seedBase + 1000 + tenant * 64 + j;
}

export interface SetupProgress { (done: number, total: number): void }

function taskBody(spec: WorkloadSpec): Record<string, unknown> {
  return { name: 'sentiment', labels: spec.style.labels, template: spec.style.template, scoring: { type: 'verbalizer', label_words: spec.style.labelWords } };
}

/** An empty workload: no tenants yet (see addTenants and addPrompts). */
export function emptyWorkload(dims: ModelDims, spec: WorkloadSpec): Workload {
  return { spec, dims, tenants: [], promptBytes: 0, distinctPromptBytes: 0, setupMs: 0 };
}

async function uploadPrompt(client: HttpClient, w: Workload, tenant: TenantDef, j: number, distinct: Set<number>): Promise<PromptDef> {
  const shape = shapeOf(w.spec, tenant.index, j);
  const seed = tensorSeed(w.spec, tenant.index, j);
  const p: PromptDef = { name: `p${j}`, kind: shape.kind, length: shape.length, seed };
  const values = promptValues(w.dims, p.kind, p.length, seed);
  const body = `{"name":"${p.name}","kind":"${p.kind}","tensor":${nestedJson(values, promptShape(w.dims, p.kind, p.length))}}`;
  await client.json('POST', `/v1/tasks/${tenant.task}/prompts`, { key: tenant.key, body });
  w.promptBytes += values.byteLength;
  if (!distinct.has(seed)) {
    distinct.add(seed);
    w.distinctPromptBytes += values.byteLength;
  }
  return p;
}

const seenSeeds = new WeakMap<Workload, Set<number>>();
const seedsOf = (w: Workload) => {
  let s = seenSeeds.get(w);
  if (!s) seenSeeds.set(w, (s = new Set()));
  return s;
};

/**
 * Creates tenants [from, to) of the workload through the API: the tenant
 * (admin key), its task, its prompts (spec.promptsPerTenant, or the ensemble
 * size for ensemble tenants) and its ensemble.
 */
export async function addTenants(client: HttpClient, adminKey: string, w: Workload, from: number, to: number,
  opts: { concurrency?: number; progress?: SetupProgress } = {}): Promise<void> {
  const started = performance.now();
  const spec = w.spec;
  let done = 0;
  const indices = Array.from({ length: to - from }, (_, k) => from + k);
  await pool(indices, opts.concurrency ?? 8, async (i) => {
    const created = await client.json('POST', '/v1/tenants', { key: adminKey, body: { name: `${spec.name}-t${i}` } });
    const tenant: TenantDef = { index: i, name: `${spec.name}-t${i}`, key: created.api_key as string, task: 'sentiment', prompts: [], ensemble: null };
    await client.json('POST', '/v1/tasks', { key: tenant.key, body: taskBody(spec) });
    const count = Math.max(spec.promptsPerTenant, i < spec.ensembleTenants ? spec.ensembleSize : 1);
    for (let j = 0; j < count; j++) tenant.prompts.push(await uploadPrompt(client, w, tenant, j, seedsOf(w)));
    if (i < spec.ensembleTenants) {
      tenant.ensemble = `e${spec.ensembleSize}`;
      await client.json('POST', `/v1/tasks/${tenant.task}/ensembles`, {
        key: tenant.key, body: { name: tenant.ensemble, members: tenant.prompts.slice(0, spec.ensembleSize).map((p) => p.name) },
      });
    }
    w.tenants[i] = tenant;
    opts.progress?.(++done, indices.length);
  });
  w.setupMs += performance.now() - started;
}

/** Adds prompts so that every existing tenant has `count` (the prompt-scale runs grow a workload this way). */
export async function growPrompts(client: HttpClient, w: Workload, count: number,
  opts: { concurrency?: number; progress?: SetupProgress } = {}): Promise<void> {
  const started = performance.now();
  const jobs: Array<{ tenant: TenantDef; j: number }> = [];
  for (const t of w.tenants) for (let j = t.prompts.length; j < count; j++) jobs.push({ tenant: t, j });
  let done = 0;
  // One tenant's prompts go in order (p0, p1, ...), so jobs of a tenant are not split across workers.
  const byTenant = new Map<TenantDef, number[]>();
  for (const { tenant, j } of jobs) byTenant.set(tenant, [...(byTenant.get(tenant) ?? []), j]);
  await pool([...byTenant.entries()], opts.concurrency ?? 8, async ([tenant, js]) => {
    for (const j of js) {
      tenant.prompts[j] = await uploadPrompt(client, w, tenant, j, seedsOf(w));
      opts.progress?.(++done, jobs.length);
    }
  });
  w.setupMs += performance.now() - started;
}

/** Creates the whole workload through the API. */
export async function setupWorkload(client: HttpClient, adminKey: string, dims: ModelDims, spec: WorkloadSpec,
  opts: { concurrency?: number; progress?: SetupProgress } = {}): Promise<Workload> {
  const w = emptyWorkload(dims, spec);
  await addTenants(client, adminKey, w, 0, spec.tenants, opts);
  return w;
}

// --- texts -------------------------------------------------------------------

export const DATA_DIR = fileURLToPath(new URL('../../shared/data', import.meta.url));

const FALLBACK_TEXTS = [
  'a gripping story told with warmth and wit',
  'the plot goes nowhere and the jokes fall flat',
  'one of the best films of the year',
  'tedious , overlong and curiously empty',
];

/**
 * Sentences from ../shared/data/<set>/<split>.jsonl, optionally cut to
 * `maxWords` words. `vocabWords` replaces every word by a word of a random
 * checkpoint's word-level vocabulary ("w5" .. "w<V-1>"), keeping the lengths:
 * its tokenizer knows no English.
 */
export function loadTexts(opts: { set?: string; split?: string; maxWords?: number; limit?: number; vocabWords?: number } = {}): string[] {
  const path = join(DATA_DIR, opts.set ?? 'sst2', `${opts.split ?? 'test'}.jsonl`);
  let texts = FALLBACK_TEXTS;
  if (existsSync(path)) {
    texts = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => String((JSON.parse(l) as { text: string }).text));
  }
  if (opts.maxWords !== undefined) texts = texts.map((t) => t.split(/\s+/).slice(0, opts.maxWords).join(' '));
  texts = texts.filter((t) => t.trim().length > 0);
  const V = opts.vocabWords;
  if (V !== undefined) {
    const word = (w: string) => {
      let h = 2166136261;
      for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 16777619) >>> 0;
      return `w${5 + (h % (V - 5))}`;
    };
    texts = texts.map((t) => t.split(/\s+/).filter(Boolean).map(word).join(' '));
  }
  return opts.limit !== undefined ? texts.slice(0, opts.limit) : texts;
}

// --- traffic -----------------------------------------------------------------

export type Popularity = { kind: 'uniform' } | { kind: 'zipf'; s: number };

export interface TrafficSpec {
  popularity: Popularity;
  /** Fraction of requests that call the tenant's ensemble (tenants without one send a single-prompt call). */
  ensembleFraction: number;
  inputsPerRequest: number;
  texts: string[];
  seed: number;
  /**
   * Which prompts requests name: each tenant's own (first) prompt, or any
   * prompt of any tenant (the prompt-scale runs; `promptLimit` bounds how many).
   */
  targets: 'own' | 'all';
  promptLimit?: number;
  /** Only the first this many tenants receive traffic. */
  tenantLimit?: number;
}

/** What request `tag` was, so a run can be checked or replayed. */
export interface IssuedRequest {
  tenant: number;
  /** Prompt index in the tenant's list, or -1 for its ensemble. */
  prompt: number;
  texts: number[];
}

export interface Traffic {
  next(i: number): RequestSpec;
  issued: IssuedRequest[];
  /** How many distinct prompt targets the popularity ranges over. */
  targets: number;
}

function sampler(n: number, p: Popularity, rand: () => number): () => number {
  if (p.kind === 'uniform' || n === 1) return () => Math.floor(rand() * n);
  const cdf = new Float64Array(n);
  let acc = 0;
  for (let i = 0; i < n; i++) cdf[i] = acc += 1 / Math.pow(i + 1, p.s);
  for (let i = 0; i < n; i++) cdf[i]! /= acc;
  return () => {
    const u = rand();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

export function makeTraffic(w: Workload, t: TrafficSpec): Traffic {
  const rand = rng(t.seed);
  const tenants = w.tenants.slice(0, t.tenantLimit ?? w.tenants.length);
  const targets: Array<{ tenant: number; prompt: number }> = [];
  if (t.targets === 'own') for (const tn of tenants) targets.push({ tenant: tn.index, prompt: 0 });
  else {
    // Interleave tenants so that the first N targets span as many tenants as possible.
    const most = Math.max(...tenants.map((tn) => tn.prompts.length));
    for (let j = 0; j < most; j++) for (const tn of tenants) if (j < tn.prompts.length) targets.push({ tenant: tn.index, prompt: j });
    if (t.promptLimit !== undefined) targets.length = Math.min(targets.length, t.promptLimit);
  }
  if (targets.length === 0) throw new Error('traffic has no targets');
  const pick = sampler(targets.length, t.popularity, rand);
  const issued: IssuedRequest[] = [];
  return {
    issued,
    targets: targets.length,
    next(i: number): RequestSpec {
      const target = targets[pick()]!;
      const tenant = w.tenants[target.tenant]!;
      const useEnsemble = tenant.ensemble !== null && t.ensembleFraction > 0 && rand() < t.ensembleFraction;
      const textIdx = Array.from({ length: t.inputsPerRequest }, () => Math.floor(rand() * t.texts.length));
      const inputs = textIdx.map((k) => t.texts[k]!);
      const body = useEnsemble
        ? JSON.stringify({ inputs, ensemble: tenant.ensemble })
        : JSON.stringify({ inputs, prompt: tenant.prompts[target.prompt]!.name });
      issued[i] = { tenant: tenant.index, prompt: useEnsemble ? -1 : target.prompt, texts: textIdx };
      const members = useEnsemble ? w.spec.ensembleSize : 1;
      return { path: `/v1/tasks/${tenant.task}/classify`, key: tenant.key, body, rows: inputs.length * members, tag: i };
    },
  };
}
