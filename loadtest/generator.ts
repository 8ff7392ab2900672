// The load generator: closed loop (N clients, each sends its next request when
// the last one is answered) or open loop (Poisson arrivals at a target rate,
// sent whether or not earlier ones were answered). Both are bounded by a
// request count and a time; once either is reached nothing new is sent and
// the run waits for what is in flight (each request has its own timeout), so
// a run always ends by itself. A progress line goes to stderr while it runs.

import { HttpClient, LatencyRecorder, type HttpResult, type LatencySummary } from './client.ts';
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { mersenne } from 'pure-rand/generator/mersenne';

/** One request to send. `body` is pre-serialised JSON; `rows` is what it asks the engine for (inputs × prompts). */
export interface RequestSpec {
  path: string;
  key: string;
  body: string;
  rows: number;
  /** The caller's handle on what this request was (for replay and checks). */
  tag?: number;
}

export type LoadMode =
  | { kind: 'closed'; concurrency: number }
  | { kind: 'open'; rate: number; /** Arrivals beyond this many in flight are not sent and count as "dropped". */ maxInFlight?: number };

export interface RunOptions {
  label: string;
  mode: LoadMode;
  /** Stop sending after this long (ms). */
  durationMs: number;
  /** Stop sending after this many requests. */
  maxRequests: number;
  /** The i-th request of the run. */
  next(i: number): RequestSpec;
  /** Called with every answer (successful or not). */
  onResult?(spec: RequestSpec, result: HttpResult): void;
  /** Seed of the arrival process (open loop). */
  seed?: number;
  /** Progress line on stderr (default true). */
  progress?: boolean;
}

export interface RunResult {
  label: string;
  mode: LoadMode;
  requests: number;
  successes: number;
  /** Failed requests by HTTP status ("network" for no response, "dropped" for open-loop arrivals not sent). */
  errors: Record<string, number>;
  /** From the first request sent to the last answer received. */
  elapsedMs: number;
  requestsPerSec: number;
  rowsPerSec: number;
  tokensPerSec: number;
  rows: number;
  tokens: number;
  /** Latency of successful requests, ms; open loop measures from the scheduled arrival. */
  latency: LatencySummary;
  /** CPU time the load generator itself used (ms), which the server did not get on a shared machine. */
  clientCpuMs: number;
  /** The first failed answer (status and the start of its body), to say why a run failed. */
  firstError: string | null;
}

/**
 * A seeded generator of uniforms in [0, 1) for traffic shapes. pure-rand, not
 * the trainer's PRNG: loadtest/ imports nothing of the product.
 */
export function rng(seed: number): () => number {
  const g = mersenne(seed);
  return () => uniformFloat64(g);
}

const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

class Progress {
  private timer: NodeJS.Timeout | null = null;
  private readonly tty = Boolean(process.stderr.isTTY);
  private lastAt = performance.now();
  private lastDone = 0;
  private lastPrinted = 0;

  constructor(private readonly label: string, private readonly durationMs: number, private readonly rec: LatencyRecorder,
    private readonly inFlight: () => number, private readonly started: number) {}

  start(): void {
    this.timer = setInterval(() => this.tick(false), 500);
    this.timer.unref();
  }

  private line(): string {
    const now = performance.now();
    const rate = ((this.rec.requests - this.lastDone) * 1000) / Math.max(1, now - this.lastAt);
    this.lastAt = now;
    this.lastDone = this.rec.requests;
    const r = this.rec.recent(500);
    const t = (now - this.started) / 1000;
    return `[${this.label}] ${fmt(t)}/${fmt(this.durationMs / 1000, 0)} s  ${this.rec.requests} done  ${fmt(rate, 0)} req/s  ` +
      `p50 ${fmt(r.p50)} ms  p99 ${fmt(r.p99)} ms  errors ${this.rec.errors}  in flight ${this.inFlight()}`;
  }

  tick(final: boolean): void {
    const now = performance.now();
    if (this.tty) process.stderr.write(`\r\x1b[2K${this.line()}${final ? '\n' : ''}`);
    else if (final || now - this.lastPrinted >= 5000) {
      this.lastPrinted = now;
      process.stderr.write(`${this.line()}\n`);
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.tick(true);
  }
}

export async function runLoad(client: HttpClient, opts: RunOptions): Promise<RunResult> {
  const rec = new LatencyRecorder();
  let issued = 0;
  let inFlight = 0;
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const deadline = started + opts.durationMs;
  let lastAnswer = started;
  let firstError: string | null = null;
  const progress = opts.progress === false ? null : new Progress(opts.label, opts.durationMs, rec, () => inFlight, started);
  progress?.start();

  const send = async (spec: RequestSpec, scheduledAt: number): Promise<void> => {
    inFlight++;
    const res = await client.request('POST', spec.path, { key: spec.key, body: spec.body });
    inFlight--;
    const now = performance.now();
    lastAnswer = now;
    const usage = (res.json as { usage?: { rows?: number; tokens?: number } } | null)?.usage;
    rec.record(res.status, now - scheduledAt, usage?.rows ?? spec.rows, usage?.tokens ?? 0);
    if ((res.status < 200 || res.status >= 300) && firstError === null) firstError = `${res.status || res.error}: ${res.text.slice(0, 300)}`;
    opts.onResult?.(spec, res);
  };
  const more = () => issued < opts.maxRequests && performance.now() < deadline;

  if (opts.mode.kind === 'closed') {
    const clients = Array.from({ length: Math.max(1, opts.mode.concurrency) }, async () => {
      while (more()) {
        const spec = opts.next(issued++);
        await send(spec, performance.now());
      }
    });
    await Promise.all(clients);
  } else {
    const { rate } = opts.mode;
    const maxInFlight = opts.mode.maxInFlight ?? 4096;
    if (!(rate > 0)) throw new Error(`open-loop rate must be positive, got ${rate}`);
    const rand = rng(opts.seed ?? 1);
    const pending = new Set<Promise<void>>();
    let nextAt = started;
    while (more()) {
      const now = performance.now();
      if (nextAt > now) {
        await new Promise((r) => setTimeout(r, Math.max(0, Math.floor(nextAt - now))));
        continue;
      }
      // Send every arrival that is due (timers are coarse; a burst catches up).
      while (nextAt <= performance.now() && more()) {
        const spec = opts.next(issued++);
        if (inFlight >= maxInFlight) {
          rec.statuses.set('dropped', (rec.statuses.get('dropped') ?? 0) + 1);
          rec.requests++;
        } else {
          const p = send(spec, nextAt);
          pending.add(p);
          void p.finally(() => pending.delete(p));
        }
        nextAt += (-Math.log(1 - rand()) / rate) * 1000;
      }
    }
    await Promise.all([...pending]);
  }
  progress?.stop();
  const cpu = process.cpuUsage(cpu0);
  const elapsedMs = Math.max(1, lastAnswer - started);
  const errors: Record<string, number> = {};
  for (const [k, v] of [...rec.statuses.entries()].sort()) errors[k] = v;
  return {
    label: opts.label,
    mode: opts.mode,
    requests: rec.requests,
    successes: rec.successes,
    errors,
    elapsedMs,
    requestsPerSec: (rec.successes * 1000) / elapsedMs,
    rowsPerSec: (rec.rows * 1000) / elapsedMs,
    tokensPerSec: (rec.tokens * 1000) / elapsedMs,
    rows: rec.rows,
    tokens: rec.tokens,
    latency: rec.percentiles(),
    clientCpuMs: (cpu.user + cpu.system) / 1000,
    firstError,
  };
}
