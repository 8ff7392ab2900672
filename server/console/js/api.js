// The console's only way to the server: fetch with the session's key in the
// Authorization header. The key lives in sessionStorage (this tab, until it
// closes or the user signs out) and never goes into a URL, a log or the DOM.

const SESSION = 'softserve.console.session';

export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION) ?? 'null');
    return s && typeof s.key === 'string' ? s : null;
  } catch {
    return null;
  }
}

export function setSession(s) { sessionStorage.setItem(SESSION, JSON.stringify(s)); }
export function clearSession() { sessionStorage.removeItem(SESSION); }

export class ApiError extends Error {
  constructor(status, code, message, retryAfter, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.details = details;
  }
}

/** Listeners told about every failed call (the app sends 401s back to sign-in). */
const failureListeners = new Set();
export function onApiFailure(fn) { failureListeners.add(fn); }

/**
 * api('GET', '/v1/tasks') -> parsed JSON (null for 204).
 * opts.json: a JSON body; opts.form: a FormData body (multipart); opts.key: use this key
 * instead of the session's (sign-in); opts.quiet: do not tell the failure listeners.
 */
export async function api(method, path, opts = {}) {
  const key = opts.key ?? session()?.key;
  const headers = { accept: 'application/json' };
  if (key) headers.authorization = `Bearer ${key}`;
  let body;
  if (opts.json !== undefined) { headers['content-type'] = 'application/json'; body = JSON.stringify(opts.json); }
  if (opts.form !== undefined) body = opts.form;
  let res;
  try {
    res = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit', redirect: 'error' });
  } catch (err) {
    const e = new ApiError(0, 'NETWORK', `the server could not be reached (${err.message})`, null, undefined);
    if (!opts.quiet) for (const fn of failureListeners) fn(e);
    throw e;
  }
  const text = await res.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch { parsed = null; }
  }
  if (!res.ok) {
    const err = parsed?.error ?? { code: `HTTP_${res.status}`, message: res.statusText || 'request failed' };
    const ra = res.headers.get('Retry-After');
    const e = new ApiError(res.status, String(err.code), String(err.message), ra !== null ? Number(ra) : null, err.details);
    if (!opts.quiet) for (const fn of failureListeners) fn(e);
    throw e;
  }
  return parsed;
}

/** Names in API paths are validated by the server; encode them anyway. */
export const enc = encodeURIComponent;
