// A database that is down, restarting or unreachable is STORE_UNAVAILABLE
// (HTTP 503 with Retry-After), not an internal error: the request may be
// retried, and the replica itself is fine (it keeps serving from its caches).
// Every entity store's calls go through `mapUnavailable`, so whatever the
// code path, a lost database reads the same to the caller.

import { SoftserveError } from '../../../kernels/errors.ts';
import { sqlState } from './db.ts';

/** Seconds a client is told to wait (Retry-After) when the database is away. */
export const STORE_RETRY_AFTER_S = 2;

const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
/** SQLSTATEs of a server going away or not taking connections (class 08: connection exception). */
const PG_STATES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);
const PG_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Client was closed and is not queryable)/;

/** Whether an error means "the database cannot be reached now" rather than a bad request or a bug. */
export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof SoftserveError) return false;
  const code = sqlState(err);
  if (code !== undefined && (NET_CODES.has(code) || PG_STATES.has(code) || code.startsWith('08'))) return true;
  return PG_MESSAGES.test(err.message);
}

export function unavailableError(err: Error): SoftserveError {
  const why = sqlState(err) === '57014' ? 'did not answer in time' : 'cannot be reached';
  return new SoftserveError('STORE_UNAVAILABLE', `the database ${why}; try again shortly (cached tenants, tasks and prompts are still served)`, { retryAfter: STORE_RETRY_AFTER_S });
}

/** The same entity store, its rejected calls that mean a lost database rethrown as STORE_UNAVAILABLE. */
export function mapUnavailable<T extends object>(store: T): T {
  const fns = new Map<string | symbol, unknown>();
  return new Proxy(store, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      let f = fns.get(prop);
      if (!f) {
        const fn = v as (...a: unknown[]) => unknown;
        f = (...args: unknown[]) => {
          const r = fn.apply(target, args);
          return r instanceof Promise ? r.catch((err: unknown) => { throw isUnavailable(err) ? unavailableError(err as Error) : err; }) : r;
        };
        fns.set(prop, f);
      }
      return f;
    },
  });
}
