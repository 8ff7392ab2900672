// A front worker of a clustered server: the whole HTTP server of
// server/server.ts, with the model host replaced by the link to the primary
// (front-link.ts). The primary orchestrates stopping: a front ignores
// SIGTERM/SIGINT (a terminal's Ctrl-C reaches the whole process group) and
// drains when the primary says so; if the primary is gone, it stops at once.

import { startServer, type RunningServer } from '../server.ts';
import type { Settings } from '../config.ts';
import { serverLogger } from '../log.ts';
import { FrontLink } from './front-link.ts';
import type { ToPrimary } from './protocol.ts';

export async function runFront(settings: Settings): Promise<RunningServer> {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => {});
  const link = await FrontLink.connect();
  const logger = serverLogger(settings.serving.logLevel).child({ front: link.index });
  const running = await startServer({ config: settings.server, serving: settings.serving, training: settings.training, link, logger });
  const stop = (code: number) => {
    running.shutdown().finally(() => process.exit(code));
  };
  link.onDrain(() => stop(0));
  process.once('disconnect', () => {
    link.failAll();
    stop(1);
  });
  process.send!({ t: 'listening', port: running.port } satisfies ToPrimary);
  return running;
}
