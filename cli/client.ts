// The HTTP client every CLI command shares: Node's global fetch, a bearer
// key, the server's JSON errors turned into ApiError (code, message, status),
// and an optional retry on 429 that honours Retry-After.

/** An answer with an error status: the server's {error: {code, message}}. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** Bad command-line use (exit code 2). */
export class UsageError extends Error {}

/** Anything else that went wrong at run time (exit code 1): the server cannot be reached, a file cannot be read. */
export class RuntimeError extends Error {}

export interface RequestOptions {
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
  query?: Record<string, string | number | undefined>;
  /** Retry a 429 this many times, waiting what Retry-After says (default: no retry). */
  retries429?: number;
  /** Told before each wait for a retry. */
  onRetry?: (err: ApiError, waitSeconds: number, attempt: number) => void;
}

export interface ClientOptions {
  url: string;
  key?: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); 1 when absent or unreadable. */
export function retryAfterSeconds(header: string | null): number {
  if (header === null) return 1;
  const n = Number(header);
  if (Number.isFinite(n) && n >= 0) return Math.min(n, 300);
  const at = Date.parse(header);
  return Number.isFinite(at) ? Math.min(300, Math.max(0, (at - Date.now()) / 1000)) : 1;
}

export class Client {
  readonly url: string;
  private readonly key: string | undefined;

  constructor(opts: ClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.key = opts.key;
  }

  /** The raw response of a successful call (status < 400); an error status throws ApiError. */
  async fetch(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (this.key !== undefined) headers.authorization = `Bearer ${this.key}`;
    let body = opts.body;
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.json);
    }
    let target = this.url + path;
    const q = Object.entries(opts.query ?? {}).filter(([, v]) => v !== undefined) as Array<[string, string | number]>;
    if (q.length > 0) target += `?${new URLSearchParams(q.map(([k, v]) => [k, String(v)])).toString()}`;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(target, { method, headers, ...(body !== undefined ? { body } : {}) });
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new RuntimeError(`cannot reach ${this.url} (${cause?.code ?? cause?.message ?? (err as Error).message}); is the server running? (npx softserve serve)`);
      }
      if (res.status < 400) return res;
      const err = await toApiError(res);
      if (res.status === 429 && attempt < (opts.retries429 ?? 0)) {
        const wait = err.retryAfterSeconds ?? 1;
        opts.onRetry?.(err, wait, attempt + 1);
        await sleep(wait * 1000);
        continue;
      }
      throw err;
    }
  }

  /** A call whose answer is JSON (or empty: 204 gives null). */
  async json<T = any>(method: string, path: string, opts: RequestOptions = {}): Promise<T> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const res = await this.fetch(method, path, opts);
    const text = await res.text();
    return (text.length > 0 ? JSON.parse(text) : null) as T;
  }

  /** A call whose answer is bytes (prompt export). */
  async bytes(method: string, path: string, opts: RequestOptions = {}): Promise<Uint8Array> {
    const res = await this.fetch(method, path, opts);
    return new Uint8Array(await res.arrayBuffer());
  }
}

async function toApiError(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let code = `HTTP_${res.status}`;
  let message = text.slice(0, 500) || res.statusText;
  let details: Record<string, unknown> | undefined;
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    if (body.error && typeof body.error.code === 'string') {
      code = body.error.code;
      message = String(body.error.message ?? '');
      if (typeof body.error.details === 'object' && body.error.details !== null) details = body.error.details as Record<string, unknown>;
    }
  } catch { /* not JSON: keep the text */ }
  const retry = res.status === 429 || res.status === 503 ? retryAfterSeconds(res.headers.get('retry-after')) : undefined;
  return new ApiError(res.status, code, message, details, retry);
}

/** Path segment escaping for names and ids. */
export const seg = (s: string) => encodeURIComponent(s);
