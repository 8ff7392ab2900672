// Reads the server's GET /metrics (Prometheus text format) and diffs two
// scrapes, so that a run's batch sizes, padding, inference times and cache
// traffic are those of that run only.

import type { HttpClient } from './client.ts';

export interface Sample { name: string; labels: Record<string, string>; value: number }

export type Scrape = Sample[];

function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const m of s.matchAll(re)) out[m[1]!] = m[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  return out;
}

export function parseMetrics(text: string): Scrape {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = m[4]!;
    const value = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v);
    out.push({ name: m[1]!, labels: m[3] ? parseLabels(m[3]) : {}, value });
  }
  return out;
}

export async function scrape(client: HttpClient): Promise<Scrape> {
  return parseMetrics(await client.text('/metrics'));
}

const matches = (labels: Record<string, string>, filter: Record<string, string>) =>
  Object.entries(filter).every(([k, v]) => labels[k] === v);

/** Sum of a counter or gauge over the series that match `filter`. */
export function value(s: Scrape, name: string, filter: Record<string, string> = {}): number {
  let total = 0;
  for (const x of s) if (x.name === name && matches(x.labels, filter)) total += x.value;
  return total;
}

export interface Histogram {
  /** Upper bounds, ascending, the last +Infinity. */
  le: number[];
  /** Cumulative counts per bound. */
  cumulative: number[];
  sum: number;
  count: number;
}

/** A histogram, summed over the series that match `filter`. */
export function histogram(s: Scrape, name: string, filter: Record<string, string> = {}): Histogram {
  const byLe = new Map<number, number>();
  let sum = 0;
  let count = 0;
  for (const x of s) {
    if (!matches(x.labels, filter)) continue;
    if (x.name === `${name}_bucket`) {
      const le = x.labels.le === '+Inf' ? Infinity : Number(x.labels.le);
      byLe.set(le, (byLe.get(le) ?? 0) + x.value);
    } else if (x.name === `${name}_sum`) sum += x.value;
    else if (x.name === `${name}_count`) count += x.value;
  }
  const le = [...byLe.keys()].sort((a, b) => a - b);
  return { le, cumulative: le.map((b) => byLe.get(b)!), sum, count };
}

/** after − before (bounds must agree; a bound missing before counts as 0). */
export function diffHistogram(after: Histogram, before: Histogram): Histogram {
  const prev = new Map(before.le.map((b, i) => [b, before.cumulative[i]!]));
  return {
    le: after.le,
    cumulative: after.le.map((b, i) => after.cumulative[i]! - (prev.get(b) ?? 0)),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

export function mean(h: Histogram): number {
  return h.count > 0 ? h.sum / h.count : NaN;
}

/**
 * A quantile read off the buckets (linear within a bucket, as Prometheus'
 * histogram_quantile does); a value in the +Inf bucket reports the last finite bound.
 */
export function quantile(h: Histogram, q: number): number {
  if (h.count <= 0) return NaN;
  const rank = q * h.count;
  let prevLe = 0;
  let prevCum = 0;
  for (let i = 0; i < h.le.length; i++) {
    const le = h.le[i]!;
    const cum = h.cumulative[i]!;
    if (cum >= rank) {
      if (!Number.isFinite(le)) return prevLe;
      const inBucket = cum - prevCum;
      return inBucket > 0 ? prevLe + ((le - prevLe) * (rank - prevCum)) / inBucket : le;
    }
    prevLe = le;
    prevCum = cum;
  }
  return prevLe;
}

/** Counts per bucket (not cumulative), labelled "≤ le". */
export function buckets(h: Histogram): Array<{ le: number; count: number }> {
  return h.le.map((le, i) => ({ le, count: h.cumulative[i]! - (i > 0 ? h.cumulative[i - 1]! : 0) }));
}

/** What a run did on the server side, from two scrapes. */
export interface ServerSideStats {
  batches: number;
  batchRows: Histogram;
  batchTokens: Histogram;
  batchPadding: Histogram;
  batchUniquePrompts: Histogram;
  batchTenants: Histogram;
  inferenceSeconds: Histogram;
  queueSeconds: Histogram;
  tokenizeSeconds: Histogram;
  /** Classify requests by status, from softserve_http_requests_total. */
  classifyByStatus: Record<string, number>;
  cacheHits: number;
  cacheMisses: number;
  cacheEvictions: number;
  /** Server process CPU seconds (user + system) during the run. */
  serverCpuSeconds: number;
  /** Of it (Linux; 0 elsewhere): the main threads (HTTP, scheduling) and the inference thread; and that thread's work around forward passes (wall). */
  mainThreadCpuSeconds: number;
  inferenceThreadCpuSeconds: number;
  inferenceOutsideRunSeconds: number;
}

export function serverSide(before: Scrape, after: Scrape): ServerSideStats {
  const h = (name: string) => diffHistogram(histogram(after, name), histogram(before, name));
  const v = (name: string, filter: Record<string, string> = {}) => value(after, name, filter) - value(before, name, filter);
  const byStatus: Record<string, number> = {};
  for (const x of after) {
    if (x.name !== 'softserve_http_requests_total' || x.labels.route !== '/v1/tasks/:id/classify') continue;
    const n = x.value - value(before, x.name, x.labels);
    if (n > 0) byStatus[x.labels.status ?? '?'] = (byStatus[x.labels.status ?? '?'] ?? 0) + n;
  }
  const batchRows = h('softserve_batch_rows');
  return {
    batches: batchRows.count,
    batchRows,
    batchTokens: h('softserve_batch_tokens'),
    batchPadding: h('softserve_batch_padding_fraction'),
    batchUniquePrompts: h('softserve_batch_unique_prompts'),
    batchTenants: h('softserve_batch_tenants'),
    inferenceSeconds: h('softserve_inference_seconds'),
    queueSeconds: h('softserve_queue_time_seconds'),
    tokenizeSeconds: h('softserve_tokenize_seconds'),
    classifyByStatus: byStatus,
    cacheHits: v('softserve_prompt_cache_hits_total'),
    cacheMisses: v('softserve_prompt_cache_misses_total'),
    cacheEvictions: v('softserve_prompt_cache_evictions_total'),
    serverCpuSeconds: v('softserve_process_process_cpu_seconds_total'),
    mainThreadCpuSeconds: v('softserve_thread_cpu_seconds_total', { thread: 'main' }),
    inferenceThreadCpuSeconds: v('softserve_thread_cpu_seconds_total', { thread: 'inference' }),
    inferenceOutsideRunSeconds: v('softserve_inference_outside_run_seconds_total'),
  };
}
