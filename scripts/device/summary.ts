// Reads the step log a device run wrote (steps.jsonl: one JSON object a line,
// each with `step`) and turns it into summary.json (everything, grouped) and
// results.md (the tables docs/BENCHMARKS.md takes).

import { readFileSync } from 'node:fs';
import type { BenchPoint, BenchResult } from './bench.ts';
import type { ParityResult } from './parity.ts';
import type { ProbeResult } from './probe.ts';
import type { ServeResult } from './serve.ts';

type Line = Record<string, unknown> & { step: string };

export interface Summary {
  status: Array<{ name: string; rc: number; seconds: number }>;
  probe: ProbeResult[];
  parity: ParityResult[];
  bench: BenchResult[];
  /** Points of bench runs that did not finish (a step killed by its timeout leaves these). */
  benchPoints: BenchPoint[];
  serve: ServeResult[];
  checkpoint: unknown[];
  verdict: { parityOk: boolean; epReachable: boolean; classifyOk: boolean; failedSteps: string[] };
}

export function readSteps(path: string): Line[] {
  const out: Line[] = [];
  for (const l of readFileSync(path, 'utf8').split('\n')) {
    if (!l.trim()) continue;
    try { out.push(JSON.parse(l) as Line); } catch { out.push({ step: 'unparsable', text: l.slice(0, 500) }); }
  }
  return out;
}

export function summarise(lines: Line[]): Summary {
  const of = <T>(step: string) => lines.filter((l) => l.step === step) as unknown as T[];
  const bench = of<BenchResult>('bench');
  const finished = new Set(bench.map((b) => `${b.model}/${b.ep}`));
  const status = of<{ name: string; rc: number; seconds: number }>('status');
  const probe = of<ProbeResult>('probe');
  const parity = of<ParityResult>('parity');
  const serve = of<ServeResult>('serve');
  return {
    status, probe, parity, bench, serve,
    benchPoints: of<BenchPoint>('bench-point').filter((p) => !finished.has(`${p.model}/${p.ep}`)),
    checkpoint: of('checkpoint'),
    verdict: {
      parityOk: parity.length > 0 && parity.every((p) => p.ok),
      epReachable: probe.some((p) => p.ok && p.ep !== 'cpu') || (probe.length > 0 && probe.every((p) => p.ep === 'cpu' && p.ok)),
      classifyOk: serve.length > 0 && serve.every((s) => s.ok),
      failedSteps: status.filter((s) => s.rc !== 0).map((s) => `${s.name} (rc ${s.rc})`),
    },
  };
}

const f = (x: number | undefined, d = 1) => (x === undefined ? '–' : x.toFixed(d));
/** An error text on one line, for a table cell or a list item. */
const oneLine = (t: string | undefined, max = 600) => (t ?? '').replace(/\s+/g, ' ').trim().slice(0, max);

export function markdown(s: Summary): string {
  const out: string[] = [];
  out.push('### Execution provider', '');
  for (const p of s.probe) out.push(`- ${p.ep}: ${p.ok ? `ok (session ${p.loadMs} ms, first run ${p.firstRunMs} ms)` : `**failed**: \`${oneLine(p.error)}\``}; onnxruntime ${p.onnxruntime}, backends ${p.backends.map((b) => b.name).join(', ')}`);
  out.push('', '### Parity against the CPU provider (mixed batch)', '', '| model | provider | rows | max abs Δp | max abs Δscore | max abs Δpooled | ≤ 1e-3 |', '|---|---|---:|---:|---:|---:|---|');
  if (s.parity.length === 0) out.push('| – | – | – | – | – | – | not run (see the steps below) |');
  for (const p of s.parity) {
    out.push(p.error
      ? `| ${p.model} | ${p.ep} | – | – | – | – | failed: \`${oneLine(p.error, 300)}\` |`
      : `| ${p.model} | ${p.ep} | ${p.rows} | ${p.maxAbsDeltaP!.toExponential(2)} | ${p.maxAbsDeltaScore!.toExponential(2)} | ${p.maxAbsDeltaPooled!.toExponential(2)} | ${p.ok ? 'yes' : '**no**'} |`);
  }
  const points = [...s.bench.flatMap((b) => b.points), ...s.benchPoints];
  const eps = [...new Set(points.map((p) => p.ep))];
  const models = [...new Set(points.map((p) => p.model))];
  for (const model of models) {
    out.push('', `### Engine bench: ${model}, ${points.find((p) => p.model === model)?.tokens ?? '?'} tokens a row`, '');
    out.push(`| batch | ${eps.map((e) => `${e} ms/batch | ${e} rows/s | ${e} tokens/s`).join(' | ')} |`);
    out.push(`|---:|${eps.map(() => '---:|---:|---:').join('|')}|`);
    const batches = [...new Set(points.filter((p) => p.model === model).map((p) => p.batch))].sort((a, b) => a - b);
    for (const b of batches) {
      const cells = eps.map((e) => {
        const p = points.find((q) => q.model === model && q.ep === e && q.batch === b);
        return p ? `${f(p.msPerBatch, 2)} | ${f(p.rowsPerSec)} | ${Math.round(p.tokensPerSec)}` : '– | – | –';
      });
      out.push(`| ${b} | ${cells.join(' | ')} |`);
    }
  }
  for (const b of s.bench) {
    if (b.error) out.push('', `- bench ${b.model} on ${b.ep} failed: \`${oneLine(b.error)}\``);
    if (b.skipped.length > 0) out.push('', `- bench ${b.model} on ${b.ep}: batches ${b.skipped.join(', ')} skipped (they would not have ended within the step's deadline)`);
  }
  out.push('', '### HTTP load through the bundled server', '', '| provider | K | classify | requests/s | rows/s | p50 ms | p99 ms | errors |', '|---|---:|---|---:|---:|---:|---:|---|');
  for (const r of s.serve) {
    const run = (r.load as { run?: { requestsPerSec: number; rowsPerSec: number; latency: { p50: number; p99: number }; errors: Record<string, number> } } | undefined)?.run;
    out.push(`| ${r.ep} | ${r.k} | ${r.ok ? 'ok' : `failed: \`${oneLine(r.error, 200)}\``} | ${f(run?.requestsPerSec)} | ${f(run?.rowsPerSec)} | ${f(run?.latency.p50)} | ${f(run?.latency.p99)} | ${run ? JSON.stringify(run.errors) : (r.loadError ? oneLine(r.loadError, 200) : '–')} |`);
  }
  out.push('', `Steps: ${s.status.map((x) => `${x.name} ${x.rc === 0 ? 'ok' : `rc ${x.rc}`} ${x.seconds}s`).join(', ')}`);
  return `${out.join('\n')}\n`;
}
