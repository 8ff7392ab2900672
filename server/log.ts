// The server's own logger: JSON lines to stdout through an asynchronous
// destination (sonic-boom, sync: false), so a request's log line costs the
// HTTP thread a buffer append, not a write(2). Lines written while a write is
// in flight go out together with the next one; nothing waits for a size
// threshold, so a quiet server's lines still appear at once. pino flushes
// the buffer synchronously at process exit, and shutdown flushes it first.

import { pino, type Logger } from 'pino';

export function serverLogger(level: string): Logger {
  return pino({ level, base: { service: 'softserve' } }, pino.destination({ dest: 1, sync: false }));
}

/**
 * Asks the destination to write what it holds. It may resolve while a write
 * is still in flight; pino's exit hook writes anything left synchronously
 * when the process exits, which is what every caller does next.
 */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    try {
      logger.flush(() => resolve());
    } catch {
      resolve(); // a destination still opening, or already closed: pino's exit hook writes what is left
    }
  });
}
