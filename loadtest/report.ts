// Turns load-run results into markdown tables and small hand-written SVG
// line plots (latency against throughput). No plotting dependency.

import type { RunResult } from './generator.ts';
import { buckets, mean, quantile, type ServerSideStats } from './metrics-scrape.ts';

/** One measured run, with what the server saw during it. */
export interface Measurement {
  /** Stable id, e.g. "tax.distinct". */
  id: string;
  model: string;
  /** Human description of the load. */
  label: string;
  policy: string;
  run: RunResult;
  server: ServerSummary;
}

export interface ServerSummary {
  batches: number;
  batchRowsMean: number;
  batchRowsP50: number;
  batchRowsBuckets: Array<{ le: number; count: number }>;
  batchTokensMean: number;
  paddingMean: number;
  paddingP50: number;
  paddingP90: number;
  paddingBuckets: Array<{ le: number; count: number }>;
  uniquePromptsMean: number;
  tenantsMean: number;
  batchMsMean: number;
  /** Time in forward passes (softserve_inference_seconds) over the run. */
  forwardPassMs: number;
  queueMsMean: number;
  tokenizeMsMean: number;
  cacheHits: number;
  cacheMisses: number;
  cacheEvictions: number;
  serverCpuSeconds: number;
  mainThreadCpuSeconds: number;
  inferenceThreadCpuSeconds: number;
  inferenceOutsideRunSeconds: number;
  classifyByStatus: Record<string, number>;
}

export function summarise(s: ServerSideStats): ServerSummary {
  return {
    batches: s.batches,
    batchRowsMean: mean(s.batchRows),
    batchRowsP50: quantile(s.batchRows, 0.5),
    batchRowsBuckets: buckets(s.batchRows),
    batchTokensMean: mean(s.batchTokens),
    paddingMean: mean(s.batchPadding),
    paddingP50: quantile(s.batchPadding, 0.5),
    paddingP90: quantile(s.batchPadding, 0.9),
    paddingBuckets: buckets(s.batchPadding),
    uniquePromptsMean: mean(s.batchUniquePrompts),
    tenantsMean: mean(s.batchTenants),
    batchMsMean: mean(s.inferenceSeconds) * 1000,
    forwardPassMs: s.inferenceSeconds.sum * 1000,
    queueMsMean: mean(s.queueSeconds) * 1000,
    tokenizeMsMean: mean(s.tokenizeSeconds) * 1000,
    cacheHits: s.cacheHits,
    cacheMisses: s.cacheMisses,
    cacheEvictions: s.cacheEvictions,
    serverCpuSeconds: s.serverCpuSeconds,
    mainThreadCpuSeconds: s.mainThreadCpuSeconds,
    inferenceThreadCpuSeconds: s.inferenceThreadCpuSeconds,
    inferenceOutsideRunSeconds: s.inferenceOutsideRunSeconds,
    classifyByStatus: s.classifyByStatus,
  };
}

export const f = (x: number | undefined, digits = 1): string => (x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits));
export const n0 = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US'));

export function loadText(r: RunResult): string {
  return r.mode.kind === 'closed' ? `closed, ${r.mode.concurrency} clients` : `open, ${f(r.mode.rate, 0)} req/s`;
}

export function errorsText(r: RunResult): string {
  const parts = Object.entries(r.errors).map(([k, v]) => `${v}×${k}`);
  return parts.length ? parts.join(', ') : '0';
}

export function table(head: string[], rows: string[][], align?: string[]): string {
  const a = align ?? head.map((_, i) => (i === 0 ? '---' : '---:'));
  return [`| ${head.join(' | ')} |`, `|${a.join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/** The table of every run: load, throughput, latency, errors, and the batches the server formed. */
export function runsTable(ms: Measurement[]): string {
  return table(
    ['run', 'policy', 'load', 'req/s', 'rows/s', 'tokens/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'errors', 'batches', 'rows/batch (mean, p50)', 'padding (mean)', 'prompts/batch', 'ms/batch', 'server CPU', 'server CPU ms/row', 'loadgen CPU'],
    ms.map((m) => {
      const r = m.run;
      const s = m.server;
      const secs = r.elapsedMs / 1000;
      return [
        m.id, m.policy, loadText(r), f(r.requestsPerSec), f(r.rowsPerSec), n0(r.tokensPerSec),
        f(r.latency.p50), f(r.latency.p95), f(r.latency.p99), f(r.latency.max), errorsText(r),
        String(s.batches), `${f(s.batchRowsMean)}, ${f(s.batchRowsP50)}`, f(s.paddingMean, 2), f(s.uniquePromptsMean), f(s.batchMsMean),
        `${f((100 * s.serverCpuSeconds) / secs, 0)}%`, f((1000 * s.serverCpuSeconds) / Math.max(1, r.rows), 2), `${f((100 * r.clientCpuMs) / 1000 / secs, 0)}%`,
      ];
    }),
    ['---', '---', '---', ...Array(16).fill('---:')],
  );
}

/** Bucket counts of batch rows and padding fraction, one column per run. */
export function distributionTable(ms: Measurement[], which: 'rows' | 'padding'): string {
  const pick = (m: Measurement) => (which === 'rows' ? m.server.batchRowsBuckets : m.server.paddingBuckets);
  const bounds = pick(ms[0]!).map((b) => b.le);
  const label = (le: number, i: number) => {
    if (!Number.isFinite(le)) return `> ${bounds[i - 1]}`;
    if (which === 'rows') return i === 0 ? `${le}` : `${bounds[i - 1]! + 1}–${le}`;
    return i === 0 ? `${le}` : `${bounds[i - 1]}–${le}`;
  };
  return table(
    [which === 'rows' ? 'rows per batch' : 'padding fraction', ...ms.map((m) => m.id)],
    bounds.map((le, i) => [label(le, i), ...ms.map((m) => {
      const b = pick(m);
      const total = b.reduce((a, x) => a + x.count, 0);
      const c = b[i]?.count ?? 0;
      return total > 0 ? `${c} (${f((100 * c) / total, 0)}%)` : '–';
    })]),
  );
}

// --- SVG ---------------------------------------------------------------------

export interface Series { name: string; points: Array<{ x: number; y: number }>; color: string; dashed?: boolean; markersOnly?: boolean }

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceStep(range: number, ticks: number): number {
  const raw = range / Math.max(1, ticks);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/** A small line plot: x and y from 0, nice ticks, a legend, optional horizontal reference lines. */
export function svgPlot(opts: { title: string; xLabel: string; yLabel: string; series: Series[]; hlines?: Array<{ y: number; label: string }>; width?: number; height?: number }): string {
  const W = opts.width ?? 640;
  const H = opts.height ?? 400;
  const m = { l: 64, r: 16, t: 36, b: 48 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = opts.series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const xMaxRaw = Math.max(1e-9, ...all.map((p) => p.x));
  const yMaxRaw = Math.max(1e-9, ...all.map((p) => p.y), ...(opts.hlines ?? []).map((h) => h.y));
  const xStep = niceStep(xMaxRaw * 1.05, 6);
  const yStep = niceStep(yMaxRaw * 1.1, 6);
  const xMax = Math.ceil((xMaxRaw * 1.05) / xStep) * xStep;
  const yMax = Math.ceil((yMaxRaw * 1.1) / yStep) * yStep;
  const X = (x: number) => m.l + (x / xMax) * pw;
  const Y = (y: number) => m.t + ph - (y / yMax) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(opts.title)}</text>`);
  const label = (v: number, step: number) => (step >= 1 ? String(Math.round(v)) : v.toFixed(Math.min(3, Math.ceil(-Math.log10(step)))));
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    out.push(`<line x1="${X(x)}" y1="${m.t}" x2="${X(x)}" y2="${m.t + ph}" stroke="#eee"/>`);
    out.push(`<text x="${X(x)}" y="${m.t + ph + 16}" text-anchor="middle">${label(x, xStep)}</text>`);
  }
  for (let y = 0; y <= yMax + 1e-9; y += yStep) {
    out.push(`<line x1="${m.l}" y1="${Y(y)}" x2="${m.l + pw}" y2="${Y(y)}" stroke="#eee"/>`);
    out.push(`<text x="${m.l - 6}" y="${Y(y) + 4}" text-anchor="end">${label(y, yStep)}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(`<text x="14" y="${m.t + ph / 2}" text-anchor="middle" transform="rotate(-90 14 ${m.t + ph / 2})">${esc(opts.yLabel)}</text>`);
  for (const h of opts.hlines ?? []) {
    out.push(`<line x1="${m.l}" y1="${Y(h.y)}" x2="${m.l + pw}" y2="${Y(h.y)}" stroke="#888" stroke-dasharray="2 3"/>`);
    out.push(`<text x="${m.l + pw - 4}" y="${Y(h.y) - 4}" text-anchor="end" fill="#555">${esc(h.label)}</text>`);
  }
  opts.series.forEach((s) => {
    const pts = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    if (pts.length === 0) return;
    if (!s.markersOnly && pts.length > 1) {
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ')}"/>`);
    }
    for (const p of pts) out.push(`<circle cx="${X(p.x).toFixed(1)}" cy="${Y(p.y).toFixed(1)}" r="3.5" fill="${s.color}"/>`);
  });
  opts.series.forEach((s, i) => {
    const y = m.t + 12 + i * 16;
    const x = m.l + 10;
    out.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 20}" y2="${y - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<circle cx="${x + 10}" cy="${y - 4}" r="3" fill="${s.color}"/>`);
    out.push(`<text x="${x + 26}" y="${y}">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Replaces the text between two markers in `doc` (appending a new section when absent). */
export function replaceSection(doc: string, start: string, end: string, body: string, heading: string): string {
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  const section = `${start}\n${body.trim()}\n${end}`;
  if (i >= 0 && j > i) return doc.slice(0, i) + section + doc.slice(j + end.length);
  return `${doc.trimEnd()}\n\n${heading}\n\n${section}\n`;
}
