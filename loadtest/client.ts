// A small HTTP client for the load generator: keep-alive connections to one
// server on the loopback interface, JSON in and out, and the time of every
// request. It speaks only HTTP (no server code is imported).

import http from 'node:http';

export interface HttpResult {
  /** HTTP status, or 0 when no response came (connection refused, reset, timeout). */
  status: number;
  /** Parsed JSON body (null when the body is empty or not JSON). */
  json: unknown;
  /** Raw body text. */
  text: string;
  /** Milliseconds from the call to the last byte of the response. */
  ms: number;
  /** For status 0: what went wrong. */
  error?: string;
}

export interface ClientOptions {
  /** Most sockets open at once (default 256). */
  maxSockets?: number;
  /** Per-request timeout in ms (default 120 s). */
  timeoutMs?: number;
}

/** Only loopback servers: a load generator must never point at someone else's machine. */
export function assertLoopback(url: string): URL {
  const u = new URL(url);
  if (u.protocol !== 'http:') throw new Error(`only http:// URLs are supported, got ${url}`);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) throw new Error(`the load generator talks to 127.0.0.1 only, not ${u.hostname}`);
  return u;
}

export class HttpClient {
  readonly base: URL;
  private readonly agent: http.Agent;
  private readonly timeoutMs: number;

  constructor(url: string, opts: ClientOptions = {}) {
    this.base = assertLoopback(url);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 256, maxFreeSockets: opts.maxSockets ?? 256, scheduling: 'lifo' });
    this.timeoutMs = opts.timeoutMs ?? 120_000;
  }

  /**
   * One request. `body` may be a pre-serialised JSON string (cheaper on the
   * hot path) or any JSON value. Never throws: transport failures come back as
   * status 0 with `error` set.
   */
  request(method: string, path: string, opts: { key?: string; body?: unknown; parse?: boolean } = {}): Promise<HttpResult> {
    const started = performance.now();
    const headers: Record<string, string | number> = {};
    let payload: Buffer | null = null;
    if (opts.body !== undefined) {
      payload = Buffer.from(typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body), 'utf8');
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    if (opts.key !== undefined) headers.authorization = `Bearer ${opts.key}`;
    return new Promise<HttpResult>((resolve) => {
      let settled = false;
      const done = (r: Omit<HttpResult, 'ms'>) => {
        if (settled) return;
        settled = true;
        resolve({ ...r, ms: performance.now() - started });
      };
      const req = http.request({
        host: this.base.hostname.replace(/^\[|\]$/g, ''), port: this.base.port || 80, method, path, headers, agent: this.agent,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
          let json: unknown = null;
          if (opts.parse !== false && text.length > 0 && /json/.test(String(res.headers['content-type'] ?? ''))) {
            try { json = JSON.parse(text); } catch { json = null; }
          }
          done({ status: res.statusCode ?? 0, json, text });
        });
        res.on('error', (err) => done({ status: 0, json: null, text: '', error: err.message }));
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`timed out after ${this.timeoutMs} ms`)));
      req.on('error', (err) => done({ status: 0, json: null, text: '', error: (err as NodeJS.ErrnoException).code ?? err.message }));
      if (payload) req.end(payload);
      else req.end();
    });
  }

  /** Like request, but a status outside 2xx throws with the server's error message. */
  async json(method: string, path: string, opts: { key?: string; body?: unknown } = {}): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const r = await this.request(method, path, opts);
    if (r.status < 200 || r.status >= 300) {
      throw new Error(`${method} ${path}: ${r.status === 0 ? r.error : r.status} ${r.text.slice(0, 300)}`);
    }
    return r.json;
  }

  async text(path: string): Promise<string> {
    const r = await this.request('GET', path, { parse: false });
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status === 0 ? r.error : r.status}`);
    return r.text;
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Latencies and outcomes of a run. Percentiles are exact (every sample is kept). */
export class LatencyRecorder {
  private readonly samples: number[] = [];
  readonly statuses = new Map<string, number>();
  requests = 0;
  successes = 0;
  /** Engine rows of successful requests (inputs × prompts). */
  rows = 0;
  /** Tokens of successful requests, as the server counted them (usage.tokens). */
  tokens = 0;

  record(status: number, ms: number, rows: number, tokens: number): void {
    this.requests++;
    if (status >= 200 && status < 300) {
      this.successes++;
      this.rows += rows;
      this.tokens += tokens;
      this.samples.push(ms);
    } else {
      const k = status === 0 ? 'network' : String(status);
      this.statuses.set(k, (this.statuses.get(k) ?? 0) + 1);
    }
  }

  /** Requests that failed (any non-2xx status, or no response). */
  get errors(): number {
    let n = 0;
    for (const v of this.statuses.values()) n += v;
    return n;
  }

  /** Latency percentiles of successful requests (nearest rank), ms. */
  percentiles(): LatencySummary {
    const s = Float64Array.from(this.samples).sort();
    const at = (q: number) => (s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!);
    let sum = 0;
    for (const x of s) sum += x;
    return { count: s.length, mean: s.length ? sum / s.length : NaN, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s.length ? s[s.length - 1]! : NaN };
  }

  /** A quick look while running: percentiles of the last `n` samples. */
  recent(n: number): { p50: number; p99: number } {
    const tail = Float64Array.from(this.samples.slice(-n)).sort();
    const at = (q: number) => (tail.length === 0 ? NaN : tail[Math.min(tail.length - 1, Math.ceil(q * tail.length) - 1)]!);
    return { p50: at(0.5), p99: at(0.99) };
  }
}

export interface LatencySummary { count: number; mean: number; p50: number; p95: number; p99: number; max: number }
