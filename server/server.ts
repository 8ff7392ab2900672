// Composition: builds the inference worker (model load + warm-up), the prompt
// store, the scheduler, the training manager and the services, then the HTTP
// app from route modules (server/app.ts), and starts and stops them.
// `startServer` is what `npm start` and the integration tests both call.

import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { loadTokenizer } from '../models/tokenizer.ts';
import { PromptStore } from '../prompts/store.ts';
import { openBackend } from '../prompts/store/open.ts';
import { apiRoutes, createApp } from './app.ts';
import { Admission } from './admission.ts';
import { classifyBodyBytes, uploadPartBytes } from './body-limits.ts';
import { createHttpServer } from './http-limits.ts';
import { tenantQuotaRoutes } from './routes/tenant-quotas.ts';
import { TenantQuotas } from './tenant-quotas.ts';
import { startCatalogSync } from './catalog-sync.ts';
import { ClassifyService } from './classify.ts';
import { loadTrainingConfig, promptLimits, type ServerConfig, type ServingConfig, type TrainingConfig } from './config.ts';
import { InferenceWorker } from './inference/client.ts';
import { flushLogger, serverLogger } from './log.ts';
import { Metrics } from './metrics.ts';
import { observeRequests } from './observe.ts';
import { Scheduler } from './scheduler.ts';
import { infoDocument } from './info.ts';
import { PromptInspector } from './routes/inspect.ts';
import { CLASSIFY_PATH, classifyRoutes } from './routes/classify.ts';
import { jobsRoutes } from './routes/jobs.ts';
import { usageRoutes } from './routes/usage.ts';
import { consoleRoutes, healthRoutes, infoRoutes, metricsRoutes, openApiRoutes, type Readiness } from './routes/system.ts';
import { TrainingManager } from './training/manager.ts';
import { UsageCounter } from './usage.ts';

export interface RunningServer {
  url: string;
  port: number;
  metrics: Metrics;
  store: PromptStore;
  logger: Logger;
  /** The training job manager (tests reach its worker through it). */
  training: TrainingManager;
  /** The inference worker's handle (tests use it to make the thread die). */
  inference: InferenceWorker;
  /** Refuse new work (503), finish what is queued or running, then close everything. */
  shutdown(): Promise<void>;
}

export interface StartOptions {
  config: ServerConfig;
  serving: ServingConfig;
  /** A logger to use (tests pass one that writes to a stream they read). */
  logger?: Logger;
  /** Training settings (default: from the environment). */
  training?: TrainingConfig;
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const { serving } = opts;
  let { config } = opts;
  const logger = opts.logger ?? serverLogger(serving.logLevel);
  const metrics = new Metrics(100, config.metricsTenantLabel);
  const usage = new UsageCounter();

  const workerOptions: ConstructorParameters<typeof InferenceWorker>[0] = { modelDir: serving.modelDir, executionProvider: serving.executionProvider };
  if (serving.intraOpThreads !== undefined) workerOptions.intraOpThreads = serving.intraOpThreads;
  workerOptions.spinWait = serving.spinWait;
  const worker = new InferenceWorker(workerOptions, {
    onExit: ({ exitCode, error, restartInMs }) => {
      metrics.workerUp.set(0);
      logger.error({ exitCode, err: error ?? undefined, restartInMs }, 'inference worker died; in-flight batches failed with 503, restarting');
    },
    onRestarted: ({ restarts, downMs }) => {
      metrics.workerRestarts.inc();
      metrics.workerUp.set(1);
      logger.warn({ restarts, downMs: round(downMs) }, 'inference worker restarted');
    },
  });
  const tokenizer = loadTokenizer(serving.modelDir);
  let ready = false;
  let draining = false;
  try {
    await worker.ready;
  } catch (err) {
    await worker.close();
    throw err;
  }
  const spec = worker.spec!;
  metrics.workerUp.set(1);
  // An upload part never needs more than the largest prompt this model can legally take.
  config = { ...config, maxUploadBytes: Math.min(config.maxUploadBytes, uploadPartBytes(spec, config)) };
  logger.info({ model: serving.modelDir, family: spec.family, hidden: spec.hiddenSize, layers: spec.numLayers, ep: serving.executionProvider, warmupMs: Math.round(worker.warmupMs) }, 'model loaded');

  let backend;
  try {
    backend = await openBackend({ dataDir: config.dataDir, databaseUrl: config.databaseUrl, logger });
  } catch (err) {
    // A database that cannot be reached (or migrated) fails the start, and leaves no worker behind.
    await worker.close();
    throw err;
  }
  const store = new PromptStore(backend, {
    spec, limits: promptLimits(config), maxEnsembleSize: config.maxEnsembleSize,
    cacheBytes: config.promptCacheBytes, registry: metrics.registry, tokenizer,
  });

  const trainingConfig = opts.training ?? loadTrainingConfig();
  const training = new TrainingManager({ store, modelDir: serving.modelDir, executionProvider: serving.executionProvider, config: trainingConfig, logger, registry: metrics.registry, spec,
    sharedQueue: config.databaseUrl !== null });
  await training.start();

  const scheduler = new Scheduler(
    worker,
    serving.scheduler,
    {
      onBatch: (b) => {
        metrics.batchRows.observe(b.rows);
        metrics.batchTokens.observe(b.paddedTokens);
        metrics.batchPadding.observe(b.paddedTokens > 0 ? 1 - b.realTokens / b.paddedTokens : 0);
        metrics.batchUniquePrompts.observe(b.uniquePrompts);
        metrics.batchTenants.observe(b.tenants);
        metrics.inferenceTime.observe(b.inferenceMs / 1000);
        logger.debug({ batch: b.id, rows: b.rows, tokens: b.paddedTokens, tenants: b.tenants, prompts: b.uniquePrompts, inferenceMs: round(b.inferenceMs) }, 'batch');
      },
      onQueueChange: (rows, tokens) => {
        metrics.queueRows.set(rows);
        metrics.queueTokens.set(tokens);
      },
    },
  );
  const quotas = await TenantQuotas.load(store.backend.quotas);
  // Several processes on one PostgreSQL: their writes reach this process's caches by LISTEN/NOTIFY.
  const catalogSync = await startCatalogSync({ databaseUrl: config.databaseUrl, store, quotas, registry: metrics.registry, logger });
  const admissionConfig = serving.admission;
  const admission = new Admission(admissionConfig, (id) => quotas.get(id), () => scheduler.retryAfterSeconds(), metrics.registry);
  const classify = new ClassifyService(store, scheduler, tokenizer, spec, serving.classify, metrics, tokenizer.addBos, admission);
  const classifyBodyLimit = classifyBodyBytes(serving.classify);

  const readiness: Readiness = () => (!ready ? 'NOT_READY' : draining ? 'DRAINING' : worker.isReady ? null : 'INFERENCE_WORKER_RESTARTING');
  const retryAfterEstimate = () => scheduler.retryAfterSeconds();
  const app = createApp({
    store, spec, config, logger,
    observe: observeRequests({ metrics, usage, logger }),
    draining: () => draining,
    onDrainRefusal: () => metrics.rejected.inc({ reason: 'draining' }),
    retryAfterEstimate,
    routes: [
      healthRoutes(readiness), metricsRoutes(metrics.registry), infoRoutes(infoDocument(spec, serving, config)), openApiRoutes(), consoleRoutes,
      ...apiRoutes(new PromptInspector(serving.modelDir, spec, tokenizer)),
      classifyRoutes({ classify, admission, metrics, limits: serving.classify, retryAfterEstimate }),
      jobsRoutes(training),
      usageRoutes(usage),
      tenantQuotaRoutes(quotas, admission, admissionConfig.tenant),
    ],
  });

  // Bounded connections, header/body/keep-alive timeouts (slow or idle clients must not hold a drain
  // open forever), and Expect: 100-continue answered by the route's body limit.
  const largestBody = Math.max(config.maxJsonBytes, trainingConfig.maxUploadBytes, 2 * config.maxUploadBytes + config.maxAdapterConfigBytes + 64 * 1024, classifyBodyLimit);
  const http: Server = createHttpServer(app, serving.http, {
    onDrop: () => metrics.connectionsDropped.inc(),
    bodyLimit: (req) => (CLASSIFY_PATH.test(req.url ?? '') ? classifyBodyLimit : largestBody),
  });
  http.listen(config.port, config.host);
  await once(http, 'listening');
  const port = (http.address() as AddressInfo).port;
  ready = true;
  const url = `http://${config.host}:${port}`;
  logger.info({ url }, 'listening');

  let shuttingDown: Promise<void> | null = null;
  const shutdown = () => {
    shuttingDown ??= (async () => {
      draining = true;
      logger.info({ queued: scheduler.depth }, 'draining');
      const drained = scheduler.drain();
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), serving.drainTimeoutMs).unref());
      if ((await Promise.race([drained, timeout])) === 'timeout') logger.warn('drain timed out');
      // Responses already computed still have to be written: stop accepting, let them flush.
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeIdleConnections();
        setTimeout(() => { http.closeAllConnections(); }, 2000).unref();
      });
      await training.stop();
      await worker.close();
      await catalogSync?.close();
      await store.close();
      logger.info('stopped');
      await flushLogger(logger);
    })();
    return shuttingDown;
  };
  return { url, port, metrics, store, logger, training, inference: worker, shutdown };
}

const round = (x: number) => Math.round(x * 1000) / 1000;
