// The server's own logger: JSON lines to stdout through an asynchronous
// destination (sonic-boom, sync: false), so a request's log line costs the
// HTTP thread a buffer append, not a write(2). Lines are written in batches
// of at least LOG_BATCH_BYTES, and whatever is buffered at least every
// LOG_FLUSH_MS, so a quiet server's lines still appear within that time: a
// write per line cost about 25 µs more of the HTTP thread and 35 µs more of
// the process per line than batches do (`npm run bench:log-line`;
// docs/BENCHMARKS.md). pino flushes the buffer synchronously at process exit,
// and shutdown flushes it first; a process killed outright loses at most the
// last LOG_FLUSH_MS of lines.

import { pino, type Logger } from 'pino';

/** Write once this much is buffered (about 15 request lines). */
export const LOG_BATCH_BYTES = 4096;
/** ...or at the latest after this long. */
export const LOG_FLUSH_MS = 100;

export function serverLogger(level: string): Logger {
  return pino({ level, base: { service: 'softserve' } }, pino.destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES, periodicFlush: LOG_FLUSH_MS }));
}

/** Resolves once everything logged so far has been written (at once for streams that keep no buffer). */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    try {
      logger.flush(() => resolve());
    } catch {
      resolve(); // a destination still opening, or already closed: pino's exit hook writes what is left
    }
  });
}
