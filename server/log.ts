// The server's own logger: JSON lines to stdout through an asynchronous
// destination (sonic-boom, sync: false), so a request's log line costs the
// HTTP thread a buffer append, not a write(2). Lines written while a write is
// in flight go out together with the next one; nothing waits for a size
// threshold, so a quiet server's lines still appear at once. pino flushes
// the buffer synchronously at process exit, and shutdown flushes it first.
//
// Lines reach the destination as bytes (its buffer mode): in its string mode
// each line appended while a write is in flight measures the UTF-8 length of
// everything pending, which flattens that string anew, so a batch's 34 answer
// lines cost about 6 KB of garbage each, a tenth of a classify request's
// (docs/BENCHMARKS.md). Byte buffers are only counted, and joined once per write.

import { pino, type Logger } from 'pino';

/**
 * pino hands the hook's result to the destination as it is, which in buffer
 * mode is what it takes; pino types the hook string to string.
 */
const asBytes = (line: string): string => Buffer.from(line, 'utf8') as unknown as string;

export function serverLogger(level: string): Logger {
  return pino({ level, base: { service: 'softserve' }, hooks: { streamWrite: asBytes } },
    pino.destination({ dest: 1, sync: false, contentMode: 'buffer' }));
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
