// The path of a request target, for matching and for logs: one answer
// wherever it is asked (the fast routes, the request log line, a 5xx's log
// line, the trainer's small server), so the fast path and the app log a
// request's path the same way. `new URL` resolves dot segments of an
// absolute-form target, which express's router does not.

/** The path of a request target, without its query: origin form (`/a?b`) or absolute form (`http://host/a?b`). */
export function pathOf(url: string): string {
  if (!url.startsWith('/')) {
    try {
      return new URL(url).pathname;
    } catch {
      return url;
    }
  }
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
