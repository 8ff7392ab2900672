// npm start: serve on 127.0.0.1:8080 (SOFTSERVE_HOST/PORT) with the model in
// SOFTSERVE_MODEL_DIR (default: the embedded stories260k). SIGTERM or SIGINT
// drains: new work gets 503, queued and running work finishes, then exit.
// With SOFTSERVE_FRONT_WORKERS = K ≥ 1 this process becomes the primary of a
// cluster (server/cluster/): it holds the model and forks K HTTP fronts, which
// run this same file.

import cluster from 'node:cluster';

import { loadSettings } from './config.ts';
import { startServer } from './server.ts';
import { adminKeyNotice } from './first-run.ts';
import { startOrExit, stopOnSignals } from './process-lifecycle.ts';
import { startPrimary } from './cluster/primary.ts';
import { runFront } from './cluster/front.ts';

if (cluster.isWorker) {
  await startOrExit('softserve front', () => runFront(loadSettings()));
} else {
  const { config, running } = await startOrExit('softserve', async () => {
    const settings = loadSettings();
    const running = settings.serving.frontWorkers > 0
      ? await startPrimary(settings)
      : await startServer({ config: settings.server, serving: settings.serving, training: settings.training });
    return { config: settings.server, running };
  });
  const notice = await adminKeyNotice(running.store.backend.keys, config);
  if (notice) process.stderr.write(notice);
  stopOnSignals(running.logger, () => running.shutdown());
}
