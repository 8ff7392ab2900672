// Composition: builds the model host (inference worker + scheduler,
// server/model-host.ts), the prompt store, the training manager and the
// services, then the HTTP app from route modules (server/app.ts), and starts
// and stops them. `startServer` is what `npm start` and the integration tests
// both call; in a front worker of a clustered server (server/cluster/) the
// model host is the primary process, reached through a FrontLink.

import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Logger } from 'pino';
import { loadTokenizer } from '../models/tokenizer.ts';
import type { PromptStore } from '../prompts/store.ts';
import { apiRoutes, createApp } from './app.ts';
import { Admission, frontQuota, frontShare } from './admission.ts';
import { classifyBodyBytes, uploadPartBytes } from './body-limits.ts';
import { createHttpServer } from './http-limits.ts';
import { tenantQuotaRoutes } from './routes/tenant-quotas.ts';
import { TenantQuotas } from './tenant-quotas.ts';
import { applyCatalogEvent, startCatalogSync } from './catalog-sync.ts';
import type { FrontLink } from './cluster/front-link.ts';
import { ClassifyService } from './classify.ts';
import { loadTrainingConfig, type ServerConfig, type ServingConfig, type TrainingConfig } from './config.ts';
import { openPromptStore } from './prompt-store.ts';
import type { InferenceWorker } from './inference/client.ts';
import { flushLogger, serverLogger } from './log.ts';
import { Metrics } from './metrics.ts';
import { observeRequests, requestRecorder } from './observe.ts';
import { fastPathListener, matchFastRoute } from './fast-path.ts';
import { authenticateTenant } from './auth.ts';
import { startModelHost } from './model-host.ts';
import type { RowQueue } from './scheduler.ts';
import { infoDocument } from './info.ts';
import { PromptInspector } from './routes/inspect.ts';
import { classifyRoutes } from './routes/classify.ts';
import { jobsRoutes } from './routes/jobs.ts';
import { usageRoutes } from './routes/usage.ts';
import { consoleRoutes, healthRoutes, infoRoutes, metricsRoutes, openApiRoutes, type Readiness } from './routes/system.ts';
import { TrainingManager } from './training/manager.ts';
import { UsageCounter, type TenantUsage } from './usage.ts';

export interface RunningServer {
  url: string;
  port: number;
  metrics: Metrics;
  store: PromptStore;
  logger: Logger;
  /** The training job manager (tests reach its worker through it). */
  training: TrainingManager;
  /** The inference worker's handle (tests use it to make the thread die); null in a front worker. */
  inference: InferenceWorker | null;
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
  /** Set in a front worker (server/cluster/): the model, the scheduler and the training runner are in the primary process. */
  link?: FrontLink;
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const { serving, link } = opts;
  let { config } = opts;
  const logger = opts.logger ?? serverLogger(serving.logLevel);
  const metrics = new Metrics(100, config.metricsTenantLabel);
  const usage = new UsageCounter();

  // A front worker's model lives in its primary process; otherwise here.
  const host = link ? null : await startModelHost(serving, metrics, logger);
  const spec = host ? host.spec : link!.spec;
  const queue: RowQueue = host ? host.scheduler : link!;
  const tokenizer = loadTokenizer(serving.modelDir);
  let ready = false;
  let draining = false;
  // An upload part never needs more than the largest prompt this model can legally take.
  config = { ...config, maxUploadBytes: Math.min(config.maxUploadBytes, uploadPartBytes(spec, config)) };

  let store: PromptStore;
  try {
    store = await openPromptStore(config, spec, tokenizer, metrics.registry, logger);
  } catch (err) {
    // A database that cannot be reached (or migrated) fails the start, and leaves no worker behind.
    await host?.worker.close();
    throw err;
  }

  const trainingConfig = opts.training ?? loadTrainingConfig();
  // A front worker only queues jobs; the primary's runner (beside the model) runs them. The queue is
  // shared when another process runs its jobs: the primary (unless SOFTSERVE_TRAINING=off), or trainers on PostgreSQL.
  const training = new TrainingManager({
    store, modelDir: serving.modelDir, executionProvider: serving.executionProvider, logger, registry: metrics.registry, spec,
    config: link ? { ...trainingConfig, enabled: false } : trainingConfig,
    sharedQueue: (link !== undefined && trainingConfig.enabled) || config.databaseUrl !== null,
    ...(link ? { onQueued: () => link.jobQueued() } : {}),
  });
  await training.start();

  const quotas = await TenantQuotas.load(store.backend.quotas);
  // Several processes on one PostgreSQL: their writes reach this process's caches by LISTEN/NOTIFY.
  const catalogSync = await startCatalogSync({ databaseUrl: config.databaseUrl, store, quotas, registry: metrics.registry, logger });
  if (link) {
    // The other processes of this server hear of this one's writes, and this one of theirs, over IPC.
    store.onWrite((event) => link.publish(event));
    quotas.onWrite((tenantId) => link.publish({ entity: 'quota', tenantId }));
    link.onCatalog((event) => applyCatalogEvent(event, store, quotas, logger));
    link.onCollect(async (q) => (q.what === 'metrics' ? metrics.registry.getMetricsAsJSON() : usage.get(q.tenantId)));
  }
  const fronts = link?.fronts ?? 1;
  const admissionConfig = serving.admission;
  const admission = new Admission(frontShare(admissionConfig, fronts), (id) => frontQuota(quotas.get(id), fronts), () => queue.retryAfterSeconds(), metrics.registry);
  const classify = new ClassifyService(store, queue, tokenizer, spec, serving.classify, metrics, tokenizer.addBos, admission);
  const classifyBodyLimit = classifyBodyBytes(serving.classify);

  const engineReady = () => (host ? host.worker.isReady : link!.isEngineReady);
  const readiness: Readiness = () => (!ready ? 'NOT_READY' : draining ? 'DRAINING' : engineReady() ? null : 'INFERENCE_WORKER_RESTARTING');
  const retryAfterEstimate = () => queue.retryAfterSeconds();
  const record = requestRecorder({ metrics, usage, logger });
  const onDrainRefusal = () => metrics.rejected.inc({ reason: 'draining' });
  const routes = [
    healthRoutes(readiness),
    link ? metricsRoutes(metrics.registry, () => link.gather<string>({ what: 'metrics' })) : metricsRoutes(metrics.registry),
    infoRoutes(infoDocument(spec, serving, config)), openApiRoutes(), consoleRoutes,
    // Ahead of the tenant API's /v1/tenants router, which authenticates and parses every path under it.
    link ? usageRoutes(usage, (tenantId) => link.gather<TenantUsage>({ what: 'usage', tenantId })) : usageRoutes(usage),
    tenantQuotaRoutes(quotas, admission, admissionConfig.tenant),
    ...apiRoutes(new PromptInspector(serving.modelDir, spec, tokenizer), [
      classifyRoutes({
        classify, admission, metrics, limits: serving.classify, retryAfterEstimate,
        authenticate: (req) => authenticateTenant(config, store, req), maxJsonDepth: config.maxJsonDepth,
      }),
      jobsRoutes(training),
    ]),
  ];
  const app = createApp({ store, spec, config, logger, observe: observeRequests(record), draining: () => draining, onDrainRefusal, retryAfterEstimate, routes });
  // The hot path (classify) is answered before express sees it; everything else goes to the app.
  const fastRoutes = routes.flatMap((m) => m.fast ?? []);
  const listener = fastPathListener({
    routes: fastRoutes, app, record, logger, draining: () => draining, onDrainRefusal, retryAfterEstimate,
  });

  // Bounded connections, header/body/keep-alive timeouts (slow or idle clients must not hold a drain
  // open forever), and Expect: 100-continue answered by the route's body limit.
  const largestBody = Math.max(config.maxJsonBytes, trainingConfig.maxUploadBytes, 2 * config.maxUploadBytes + config.maxAdapterConfigBytes + 64 * 1024, classifyBodyLimit);
  const http: Server = createHttpServer(listener, serving.http, {
    onDrop: () => metrics.connectionsDropped.inc(),
    bodyLimit: (req) => matchFastRoute(fastRoutes, req)?.route.bodyLimit ?? largestBody,
  });
  http.listen(config.port, config.host);
  await once(http, 'listening');
  const port = (http.address() as AddressInfo).port;
  ready = true;
  const url = `http://${config.host}:${port}`;
  // A front worker's line is not "listening": the server listens once its primary says so, with every front up.
  logger.info({ url }, link ? 'front listening' : 'listening');

  let shuttingDown: Promise<void> | null = null;
  const shutdown = () => {
    shuttingDown ??= (async () => {
      draining = true;
      logger.info({ queued: host ? host.scheduler.depth : link!.depth }, 'draining');
      const drained = host ? host.scheduler.drain() : link!.drain();
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), serving.drainTimeoutMs).unref());
      if ((await Promise.race([drained, timeout])) === 'timeout') logger.warn('drain timed out');
      // Responses already computed still have to be written: stop accepting, let them flush.
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeIdleConnections();
        setTimeout(() => { http.closeAllConnections(); }, 2000).unref();
      });
      await training.stop();
      await host?.worker.close();
      await catalogSync?.close();
      await store.close();
      logger.info('stopped');
      await flushLogger(logger);
    })();
    return shuttingDown;
  };
  return { url, port, metrics, store, logger, training, inference: host?.worker ?? null, shutdown };
}
