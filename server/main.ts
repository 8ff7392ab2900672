// npm start: serve on 127.0.0.1:8080 (SOFTSERVE_HOST/PORT) with the model in
// SOFTSERVE_MODEL_DIR (default: the embedded stories260k). SIGTERM or SIGINT
// drains: new work gets 503, queued and running work finishes, then exit.

import { loadSettings } from './config.ts';
import { startServer } from './server.ts';
import { adminKeyNotice } from './first-run.ts';
import { startOrExit, stopOnSignals } from './process-lifecycle.ts';

const { config, running } = await startOrExit('softserve', async () => {
  const settings = loadSettings();
  return { config: settings.server, running: await startServer({ config: settings.server, serving: settings.serving, training: settings.training }) };
});
const notice = await adminKeyNotice(running.store.backend.keys, config);
if (notice) process.stderr.write(notice);
stopOnSignals(running.logger, () => running.shutdown());
