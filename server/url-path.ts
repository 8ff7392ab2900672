// The path of a request target, for matching and for logs: one answer
// wherever it is asked (the fast routes, the request log line, a 5xx's log
// line, the trainer's small server), so a request logs the path it matched.

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
