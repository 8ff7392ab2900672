// npm run bench -- --scenario isolation
//
// Tenant isolation under a flood, against the real server (a child process on
// 127.0.0.1, default settings) on stories260k. A polite tenant sends
// single-input requests at a steady open-loop rate throughout; phases:
//   0a  the polite tenant alone: its baseline p50/p99
//   0b  the server's unflooded maximum useful throughput: one tenant, a closed
//       loop of 64-input requests (as many in flight as its limits admit)
//   1   one tenant floods: 200 concurrent 64-input requests, resent at once
//       whatever the answer (it ignores Retry-After)
//   2   five tenants flood the same way (1,000 requests in flight)
// Per phase: the polite tenant's p50/p99 and errors, the flooders' useful
// rows/s and 429s, total useful rows/s against the unflooded maximum, and the
// server's peak RSS (sampled from /proc every 100 ms).

import { readFileSync } from 'node:fs';
import { HttpClient, LatencyRecorder, type LatencySummary } from './client.ts';
import { runLoad, rng, type RequestSpec, type RunResult } from './generator.ts';
import { f, n0, table } from './report.ts';
import { loadTexts, readModelDims, setupWorkload, STYLE_CAUSAL, type TenantDef } from './scenarios.ts';

/** The polite tenant's requests sent during one phase. */
export interface PoliteStats { requests: number; successes: number; errors: Record<string, number>; latency: LatencySummary; rows: number }

export interface IsolationPhase {
  id: string;
  label: string;
  polite: PoliteStats | null;
  flooders: RunResult[];
  /** Successful rows per second, polite and flooders together. */
  usefulRowsPerSec: number;
  peakRssBytes: number;
}

export interface IsolationResult {
  phases: IsolationPhase[];
  politeRate: number;
  floodConcurrency: number;
  durationMs: number;
  serverEnv: Record<string, string>;
}

export interface IsolationOptions {
  modelDir: string;
  quick: boolean;
  url: string;
  adminKey: string;
  pid: number;
  serverEnv: Record<string, string>;
  log(s: string): void;
}

const POLITE_RATE = 5;
const FLOOD_CONCURRENCY = 200;
const FLOOD_INPUTS = 64;

function rssOf(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Peak RSS of `pid` while `work` runs. */
async function withPeakRss<T>(pid: number, work: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = rssOf(pid);
  const timer = setInterval(() => { peak = Math.max(peak, rssOf(pid)); }, 100);
  try {
    const value = await work();
    return { value, peak: Math.max(peak, rssOf(pid)) };
  } finally {
    clearInterval(timer);
  }
}

/** A stream of requests for one tenant: `inputs` texts each, bodies pre-built (a pool of 64) to spare the client's CPU. */
function stream(t: TenantDef, texts: string[], inputs: number, seed: number): (i: number) => RequestSpec {
  const rand = rng(seed);
  const bodies = Array.from({ length: 64 }, () => JSON.stringify({
    inputs: Array.from({ length: inputs }, () => texts[Math.floor(rand() * texts.length)]!), prompt: t.prompts[0]!.name,
  }));
  return (i) => ({ path: `/v1/tasks/${t.task}/classify`, key: t.key, body: bodies[i % bodies.length]!, rows: inputs });
}

export async function benchIsolation(o: IsolationOptions): Promise<IsolationResult> {
  const durationMs = o.quick ? 8000 : 25_000;
  const dims = readModelDims(o.modelDir);
  const texts = loadTexts();
  const admin = new HttpClient(o.url, { maxSockets: 16 });
  const w = await setupWorkload(admin, o.adminKey, dims, {
    name: 'iso', tenants: 6, promptsPerTenant: 1, ensembleTenants: 0, ensembleSize: 1,
    mix: [{ kind: 'soft', length: 10 }], shared: false, style: STYLE_CAUSAL, seedBase: 77,
  });
  const [polite, ...flooders] = w.tenants as [TenantDef, ...TenantDef[]];
  const politeClient = new HttpClient(o.url, { maxSockets: 64 });
  const floodClients = flooders.map(() => new HttpClient(o.url, { maxSockets: FLOOD_CONCURRENCY }));
  const phases: IsolationPhase[] = [];
  // The polite tenant sends throughout, from the first phase to the last (as a steady client
  // would: its keep-alive connections stay open), and each answer counts for the phase it was sent in.
  let politePhase: LatencyRecorder | null = null;
  let politeOn = true;
  const politeStream = stream(polite, texts, 1, 5);
  const politeLoop = (async () => {
    const rand = rng(9);
    const pending = new Set<Promise<void>>();
    let i = 0;
    while (politeOn) {
      await new Promise((r) => setTimeout(r, (-Math.log(1 - rand()) / POLITE_RATE) * 1000));
      const rec = politePhase as LatencyRecorder | null;
      const spec = politeStream(i++);
      const sent = performance.now();
      const p = politeClient.request('POST', spec.path, { key: spec.key, body: spec.body }).then((res) => {
        rec?.record(res.status, performance.now() - sent, 1, 0);
      });
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await Promise.all([...pending]);
  })();
  const flood = (k: number, concurrency: number, label: string) => runLoad(floodClients[k]!, {
    label, mode: { kind: 'closed', concurrency }, durationMs, maxRequests: 10_000_000, next: stream(flooders[k]!, texts, FLOOD_INPUTS, 100 + k), progress: k === 0,
  });
  const phase = async (id: string, label: string, floods: Array<{ k: number; concurrency: number }>) => {
    o.log(`isolation ${id}: ${label} (${durationMs / 1000} s) ...`);
    const rec = new LatencyRecorder();
    politePhase = rec;
    const started = performance.now();
    const { value: fl, peak } = await withPeakRss(o.pid, async () => {
      const out = await Promise.all(floods.map(({ k, concurrency }) => flood(k, concurrency, `${id} flood ${k + 1}`)));
      // A phase without flooders lasts its duration too.
      const left = started + durationMs - performance.now();
      if (left > 0) await new Promise((r) => setTimeout(r, left));
      return out;
    });
    politePhase = null;
    const elapsed = Math.max(performance.now() - started, ...fl.map((r) => r.elapsedMs));
    const errors: Record<string, number> = {};
    for (const [k, v] of rec.statuses) errors[k] = v;
    const p: PoliteStats = { requests: rec.requests, successes: rec.successes, errors, latency: rec.percentiles(), rows: rec.rows };
    const rows = p.rows + fl.reduce((a, r) => a + r.rows, 0);
    phases.push({ id, label, polite: p, flooders: fl, usefulRowsPerSec: (rows * 1000) / elapsed, peakRssBytes: peak });
  };
  try {
    // Warm-up (not recorded): a few requests of each shape.
    await runLoad(floodClients[0]!, { label: 'warm-up', mode: { kind: 'closed', concurrency: 4 }, durationMs: 2000, maxRequests: 40, next: stream(flooders[0]!, texts, FLOOD_INPUTS, 1), progress: false });
    await phase('0a', `polite tenant alone, ${POLITE_RATE} req/s of 1 input`, []);
    await phase('0b', `unflooded maximum: one tenant, closed loop of 8 × ${FLOOD_INPUTS}-input requests (+ polite)`, [{ k: 0, concurrency: 8 }]);
    await phase('1', `one tenant floods (${FLOOD_CONCURRENCY} concurrent ${FLOOD_INPUTS}-input requests) + polite`, [{ k: 0, concurrency: FLOOD_CONCURRENCY }]);
    await phase('2', `five tenants flood (${FLOOD_CONCURRENCY} concurrent each) + polite`, flooders.map((_, k) => ({ k, concurrency: FLOOD_CONCURRENCY })));
  } finally {
    politeOn = false;
    await politeLoop;
    admin.close();
    politeClient.close();
    for (const c of floodClients) c.close();
  }
  return { phases, politeRate: POLITE_RATE, floodConcurrency: FLOOD_CONCURRENCY, durationMs, serverEnv: o.serverEnv };
}

const MB = (b: number) => f(b / (1024 * 1024), 0);
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');

export function renderIsolation(r: IsolationResult, header: string): string {
  const byId = new Map(r.phases.map((p) => [p.id, p]));
  const base = byId.get('0a')?.polite;
  const max = byId.get('0b')?.usefulRowsPerSec ?? NaN;
  const rows = r.phases.map((p) => {
    const floods = p.flooders;
    const fRows = floods.reduce((a, x) => a + (x.rows * 1000) / x.elapsedMs, 0);
    const f429 = floods.reduce((a, x) => a + (x.errors['429'] ?? 0), 0);
    const fOther = floods.reduce((a, x) => a + Object.entries(x.errors).filter(([k]) => k !== '429').reduce((s, [, v]) => s + v, 0), 0);
    const pErr = p.polite ? Object.entries(p.polite.errors).map(([k, v]) => `${v} × ${k}`).join(', ') || '0' : '–';
    return [
      p.id, p.label,
      p.polite ? `${f(p.polite.latency.p50)} / ${f(p.polite.latency.p99)}` : '–',
      p.polite ? `${p.polite.successes}` : '–', pErr,
      floods.length ? n0(fRows) : '–', floods.length ? `${f429}${fOther ? ` (+${fOther} other)` : ''}` : '–',
      n0(p.usefulRowsPerSec), p.id === '0a' ? '–' : f(p.usefulRowsPerSec / max, 2), MB(p.peakRssBytes),
    ];
  });
  const goals: string[][] = [];
  for (const id of ['1', '2']) {
    const p = byId.get(id);
    if (!p?.polite || !base) continue;
    const ratio = p.polite.latency.p99 / base.latency.p99;
    const errs = p.polite.requests - p.polite.successes;
    const rel = p.usefulRowsPerSec / max;
    goals.push([`phase ${id}: polite p99 / unflooded p99`, `${f(p.polite.latency.p99)} / ${f(base.latency.p99)} ms = ${f(ratio, 2)}`, '≤ 3', verdict(ratio <= 3)]);
    goals.push([`phase ${id}: polite errors`, String(errs), '0', verdict(errs === 0)]);
    goals.push([`phase ${id}: useful throughput / unflooded maximum`, `${n0(p.usefulRowsPerSec)} / ${n0(max)} rows/s = ${f(rel, 2)}`, '≥ 0.8', verdict(rel >= 0.8)]);
  }
  const peak = Math.max(...r.phases.map((p) => p.peakRssBytes));
  goals.push(['peak server RSS over all phases', `${MB(peak)} MB`, 'bounded', '–']);
  return [
    header,
    '',
    table(['phase', 'load', 'polite p50 / p99 ms', 'polite ok', 'polite errors', 'flooders useful rows/s', 'flooders 429', 'total useful rows/s', 'vs unflooded max', 'peak RSS MB'], rows),
    '',
    table(['goal', 'measured', 'target', ''], goals),
  ].join('\n');
}
