// What every role's entry point (server/main.ts, server/trainer-main.ts)
// does around its work: a start that fails prints one line and exits 1 (no
// stack trace for a bad setting); SIGTERM or SIGINT stops once, then exits 0,
// or 1 when stopping failed.

import type { Logger } from 'pino';

/** Starts the role; on failure writes "<label>: could not start: CODE: message" to stderr and exits 1. */
export async function startOrExit<T>(label: string, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const e = err as { code?: string; message?: string };
    process.stderr.write(`${label}: could not start: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
    process.exit(1);
  }
}

/** On the first SIGTERM or SIGINT: logs it, runs `stop`, exits 0 (1 if stop failed). Later signals are ignored. */
export function stopOnSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      void stop().then(() => process.exit(0), (err) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      });
    });
  }
}
