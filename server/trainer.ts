// A trainer process (`npm run trainer`, server/trainer-main.ts): the runner
// half of the training manager and nothing else. It opens the shared store
// (SOFTSERVE_DATABASE_URL), claims queued jobs one at a time with a lease,
// trains them on its own worker thread with the model in SOFTSERVE_MODEL_DIR
// and publishes through the store; no HTTP API, no inference worker. A tiny
// listener answers /healthz (liveness) and /metrics (the training metrics:
// jobs finished, examples/s, worker exits) for probes and scrapes.

import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Logger } from 'pino';
import { Registry } from 'prom-client';

import { loadCheckpoint } from '../models/checkpoint.ts';
import { familyOf } from '../models/families.ts';
import { loadTokenizer } from '../models/tokenizer.ts';
import type { Settings } from './config.ts';
import { openPromptStore } from './prompt-store.ts';
import { flushLogger, serverLogger } from './log.ts';
import { TrainingManager } from './training/manager.ts';
import { startCatalogSync } from './catalog-sync.ts';
import { TenantQuotas } from './tenant-quotas.ts';
import { pathOf } from './url-path.ts';

export interface RunningTrainer {
  manager: TrainingManager;
  /** The health/metrics listener's URL. */
  url: string;
  logger: Logger;
  /** Stops the running job at its next step (back to the queue, attempt not counted), then everything else. */
  stop(): Promise<void>;
}

export async function startTrainer(settings: Settings, logger: Logger = serverLogger(settings.serving.logLevel)): Promise<RunningTrainer> {
  const { server: config, serving } = settings;
  if (!config.databaseUrl) {
    // With SQLite one process owns the data directory: its serve process runs the jobs itself.
    throw new Error('a trainer process needs SOFTSERVE_DATABASE_URL (a shared PostgreSQL); with SQLite, npm start trains in-process');
  }
  const ckpt = loadCheckpoint(serving.modelDir);
  const spec = familyOf(ckpt).spec(ckpt);
  const registry = new Registry();
  const store = await openPromptStore(config, spec, loadTokenizer(serving.modelDir), registry, logger);
  // The runner reads tasks and teacher prompts through the same catalog cache as a
  // serve process: keep it in step with the other processes' writes.
  const catalogSync = await startCatalogSync({ databaseUrl: config.databaseUrl, store, quotas: await TenantQuotas.load(store.backend.quotas), registry, logger });
  // A trainer always runs its runner: SOFTSERVE_TRAINING=off is for serve processes.
  const manager = new TrainingManager({
    store, modelDir: serving.modelDir, executionProvider: serving.executionProvider, config: { ...settings.training, enabled: true },
    logger, registry, spec, sharedQueue: true,
  });
  const http: Server = createServer((req, res) => {
    const path = pathOf(req.url ?? '/');
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', runner: manager.runnerName }));
    } else if (path === '/metrics') {
      void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(500).end());
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'NOT_FOUND', message: 'a trainer serves /healthz and /metrics only' } }));
    }
  });
  http.listen(settings.training.trainerPort, config.host);
  await once(http, 'listening');
  const url = `http://${config.host}:${(http.address() as AddressInfo).port}`;
  await manager.start();
  logger.info({ url, runner: manager.runnerName, model: serving.modelDir, leaseMs: settings.training.leaseMs }, 'trainer started');
  let stopping: Promise<void> | null = null;
  return {
    manager, url, logger,
    stop() {
      stopping ??= (async () => {
        await manager.stop();
        http.close();
        http.closeAllConnections();
        await catalogSync?.close();
        await store.close();
        logger.info('trainer stopped');
        await flushLogger(logger);
      })();
      return stopping;
    },
  };
}
