// npm run bench -- --scenario isolation
//
// Tenant isolation under a flood, against the real server (a child process on
// 127.0.0.1, default settings) on stories260k. A polite tenant sends
// single-input requests at a steady open-loop rate throughout, from a client
// process of its own (loadtest/polite-client.ts: the flooders' client work
// must not delay its requests or its clock); phases:
//   0a  the polite tenant alone: its baseline p50/p99
//   0b  the server's unflooded maximum useful throughput: one tenant, a closed
//       loop of 64-input requests (as many in flight as its limits admit)
//   1   one tenant floods: 200 concurrent 64-input requests, resent at once
//       whatever the answer (it ignores Retry-After)
//   2   five tenants flood the same way (1,000 requests in flight)
// Per phase: the polite tenant's p50/p99 and errors, the flooders' useful
// rows/s and 429s, total useful rows/s against the unflooded maximum, and the
// server's peak RSS (sampled from /proc every 100 ms).

import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HttpClient, LatencyRecorder, type LatencySummary } from './client.ts';
import { runLoad, rng, type RequestSpec, type RunOptions, type RunResult } from './generator.ts';
import { f, n0, table } from './report.ts';
import type { FromPolite, PolitePhaseSamples, ToPolite } from './polite-client.ts';
import { loadTexts, readModelDims, setupWorkload, STYLE_CAUSAL, type TenantDef } from './scenarios.ts';

/** The polite tenant's requests sent during one phase. */
export interface PoliteStats { requests: number; successes: number; errors: Record<string, number>; latency: LatencySummary; rows: number }

export interface IsolationPhase {
  id: string;
  label: string;
  polite: PoliteStats | null;
  flooders: RunResult[];
  /**
   * The flooders' successful rows per second while the phase's load ran: rows
   * answered after its duration (the queue running out, refusals still held)
   * do not count, nor the time they took.
   */
  floodRowsPerSec: number;
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

/** A tenant's request bodies: `inputs` texts each, pre-built (a pool of 64) to spare the client's CPU. */
function bodiesFor(t: TenantDef, texts: string[], inputs: number, seed: number): string[] {
  const rand = rng(seed);
  return Array.from({ length: 64 }, () => JSON.stringify({
    inputs: Array.from({ length: inputs }, () => texts[Math.floor(rand() * texts.length)]!), prompt: t.prompts[0]!.name,
  }));
}

/** A stream of requests for one tenant. */
function stream(t: TenantDef, texts: string[], inputs: number, seed: number): (i: number) => RequestSpec {
  const bodies = bodiesFor(t, texts, inputs, seed);
  return (i) => ({ path: `/v1/tasks/${t.task}/classify`, key: t.key, body: bodies[i % bodies.length]!, rows: inputs });
}

/** The polite tenant's client, a process of its own (loadtest/polite-client.ts). */
function startPolite(url: string, t: TenantDef, texts: string[]) {
  const child = fork(fileURLToPath(new URL('./polite-client.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'], serialization: 'advanced' });
  const done = new Promise<FromPolite>((resolve, reject) => {
    child.once('message', (m: FromPolite) => resolve(m));
    child.once('exit', (code) => reject(new Error(`the polite client exited (${code}) before reporting`)));
  });
  done.catch(() => {});
  const send = (m: ToPolite) => child.send(m);
  send({ t: 'start', url, path: `/v1/tasks/${t.task}/classify`, key: t.key, bodies: bodiesFor(t, texts, 1, 5), rate: POLITE_RATE, seed: 9 });
  return {
    phase: (id: string | null) => send({ t: 'phase', id }),
    async stop(): Promise<FromPolite> {
      send({ t: 'stop' });
      return done;
    },
    kill: () => child.kill(),
  };
}

function politeStats(samples: PolitePhaseSamples | undefined): PoliteStats {
  const rec = new LatencyRecorder();
  if (samples) samples.statuses.forEach((status, i) => rec.record(status, samples.ms[i]!, 1, 0));
  const errors: Record<string, number> = {};
  for (const [k, v] of rec.statuses) errors[k] = v;
  return { requests: rec.requests, successes: rec.successes, errors, latency: rec.percentiles(), rows: rec.rows };
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
  const [politeTenant, ...flooders] = w.tenants as [TenantDef, ...TenantDef[]];
  const floodClients = flooders.map(() => new HttpClient(o.url, { maxSockets: FLOOD_CONCURRENCY }));
  // The polite tenant sends throughout, from the first phase to the last (as a steady client
  // would: its keep-alive connections stay open), and each answer counts for the phase it was sent in.
  const polite = startPolite(o.url, politeTenant, texts);
  const measured: Array<{ id: string; label: string; flooders: RunResult[]; floodRowsPerSec: number; elapsed: number; peak: number }> = [];
  const phases: IsolationPhase[] = [];
  const flood = (k: number, concurrency: number, label: string, onResult: RunOptions['onResult']) => runLoad(floodClients[k]!, {
    label, mode: { kind: 'closed', concurrency }, durationMs, maxRequests: 10_000_000, next: stream(flooders[k]!, texts, FLOOD_INPUTS, 100 + k), progress: k === 0, onResult,
  });
  const phase = async (id: string, label: string, floods: Array<{ k: number; concurrency: number }>) => {
    o.log(`isolation ${id}: ${label} (${durationMs / 1000} s) ...`);
    polite.phase(id);
    const started = performance.now();
    const loadEnds = started + durationMs;
    let rowsInTime = 0;
    const countInTime: RunOptions['onResult'] = (spec, res) => {
      if (res.status >= 200 && res.status < 300 && performance.now() <= loadEnds) rowsInTime += spec.rows;
    };
    const { value: fl, peak } = await withPeakRss(o.pid, async () => {
      const out = await Promise.all(floods.map(({ k, concurrency }) => flood(k, concurrency, `${id} flood ${k + 1}`, countInTime)));
      // A phase without flooders lasts its duration too.
      const left = started + durationMs - performance.now();
      if (left > 0) await new Promise((r) => setTimeout(r, left));
      return out;
    });
    polite.phase(null);
    const elapsed = Math.max(performance.now() - started, ...fl.map((r) => r.elapsedMs));
    measured.push({ id, label, flooders: fl, floodRowsPerSec: (rowsInTime * 1000) / durationMs, elapsed, peak });
  };
  try {
    // Warm-up (not recorded): a few requests of each shape.
    await runLoad(floodClients[0]!, { label: 'warm-up', mode: { kind: 'closed', concurrency: 4 }, durationMs: 2000, maxRequests: 40, next: stream(flooders[0]!, texts, FLOOD_INPUTS, 1), progress: false });
    await phase('0a', `polite tenant alone, ${POLITE_RATE} req/s of 1 input`, []);
    await phase('0b', `unflooded maximum: one tenant, closed loop of 8 × ${FLOOD_INPUTS}-input requests (+ polite)`, [{ k: 0, concurrency: 8 }]);
    await phase('1', `one tenant floods (${FLOOD_CONCURRENCY} concurrent ${FLOOD_INPUTS}-input requests) + polite`, [{ k: 0, concurrency: FLOOD_CONCURRENCY }]);
    await phase('2', `five tenants flood (${FLOOD_CONCURRENCY} concurrent each) + polite`, flooders.map((_, k) => ({ k, concurrency: FLOOD_CONCURRENCY })));
    const { phases: samples } = await polite.stop();
    for (const m of measured) {
      const p = politeStats(samples[m.id]);
      const slow = samples[m.id] ? samples[m.id]!.ms.map((ms, i) => ({ ms, at: samples[m.id]!.sentAt[i]! })).sort((a, b) => b.ms - a.ms).slice(0, 3) : [];
      o.log(`isolation ${m.id}: the polite tenant's slowest requests: ${slow.map((x) => `${f(x.ms)} ms (sent ${f(x.at / 1000)} s into the phase)`).join(', ')}`);
      phases.push({
        id: m.id, label: m.label, polite: p, flooders: m.flooders, floodRowsPerSec: m.floodRowsPerSec,
        usefulRowsPerSec: (p.rows * 1000) / m.elapsed + m.floodRowsPerSec, peakRssBytes: m.peak,
      });
    }
  } finally {
    polite.kill();
    admin.close();
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
    const f429 = floods.reduce((a, x) => a + (x.errors['429'] ?? 0), 0);
    const other = new Map<string, number>();
    for (const x of floods) for (const [k, v] of Object.entries(x.errors)) if (k !== '429') other.set(k, (other.get(k) ?? 0) + v);
    // "network": no answer (the connection closed or was refused; LatencyRecorder's name for status 0).
    const fOther = [...other].map(([k, v]) => `${v} × ${k}`).join(', ');
    const pErr = p.polite ? Object.entries(p.polite.errors).map(([k, v]) => `${v} × ${k}`).join(', ') || '0' : '–';
    return [
      p.id, p.label,
      p.polite ? `${f(p.polite.latency.p50)} / ${f(p.polite.latency.p99)}` : '–',
      p.polite ? `${p.polite.successes}` : '–', pErr,
      floods.length ? n0(p.floodRowsPerSec) : '–', floods.length ? `${f429}${fOther ? ` (+ ${fOther})` : ''}` : '–',
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
