// npm start: serve on 127.0.0.1:8080 (SOFTSERVE_HOST/PORT) with the model in
// SOFTSERVE_MODEL_DIR (default: the embedded stories260k). SIGTERM or SIGINT
// drains: new work gets 503, queued and running work finishes, then exit.

import { loadSettings, type ServerConfig } from './config.ts';
import { startServer } from './server.ts';
import { adminKeyNotice } from './first-run.ts';

let server;
let config: ServerConfig;
try {
  const settings = loadSettings();
  config = settings.server;
  server = await startServer({ config, serving: settings.serving, training: settings.training });
} catch (err) {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`softserve: could not start: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
  process.exit(1);
}
const running = server;
const notice = await adminKeyNotice(running.store.backend.keys, config);
if (notice) process.stderr.write(notice);
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    running.logger.info({ signal }, 'shutting down');
    void running.shutdown().then(() => process.exit(0), (err) => {
      running.logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  });
}
