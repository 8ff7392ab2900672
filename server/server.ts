// Assembles a running server: the inference worker (model load + warm-up),
// the prompt store, the scheduler, the classify service, metrics and logs,
// and the HTTP listener. `startServer` is what `npm start` and the
// integration tests both call.

import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { pino, type Logger } from 'pino';
import { SoftserveError, isSoftserveError } from '../kernels/errors.ts';
import { loadTokenizer } from '../models/tokenizer.ts';
import { PromptStore } from '../prompts/store.ts';
import { createApp, type AppContext } from './app.ts';
import { tenantOf } from './auth.ts';
import { Admission } from './admission.ts';
import { classifyBodyBytes, jsonDepthGuard, uploadPartBytes } from './body-limits.ts';
import { createHttpServer } from './http-limits.ts';
import { tenantQuotaRoutes } from './routes/tenant-quotas.ts';
import { TenantQuotas } from './tenant-quotas.ts';
import { ClassifyService } from './classify.ts';
import { promptLimits, type ServerConfig } from './config.ts';
import { InferenceWorker } from './inference/client.ts';
import { requireJson } from './json-only.ts';
import { requestIds, requestLog } from './request-id.ts';
import { Metrics } from './metrics.ts';
import { Scheduler } from './scheduler.ts';
import type { ServingConfig } from './serving-config.ts';
import { openApiDocument } from './openapi.ts';
import { infoDocument } from './info.ts';
import { PromptInspector } from './routes/inspect.ts';
import { jobsExtension, jobsOpenApiPaths } from './routes/jobs.ts';
import { loadTrainingConfig, type TrainingConfig } from './training/config.ts';
import { TrainingManager } from './training/manager.ts';
import { consoleRouter } from './console.ts';
import { UsageCounter, usageExtension, usageOpenApiPaths } from './usage.ts';

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

/** Collapses ids in a path so that metric labels stay bounded. */
export function routeLabel(path: string): string {
  const parts = path.split('/');
  const out: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const prev = parts[i - 1];
    const isId = prev !== undefined && ['tenants', 'tasks', 'prompts', 'ensembles', 'versions', 'keys', 'jobs'].includes(prev);
    out.push(isId ? ':id' : parts[i]!);
  }
  const label = out.join('/');
  return /^\/(v1\/[a-z:/]*|healthz|readyz|info|metrics|openapi\.json)?$/.test(label) ? label : 'other';
}

export async function startServer(opts: StartOptions): Promise<RunningServer> {
  const { serving } = opts;
  let { config } = opts;
  const logger = opts.logger ?? pino({ level: serving.logLevel, base: { service: 'softserve' } });
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

  const store = PromptStore.open({
    dataDir: config.dataDir, spec, limits: promptLimits(config), maxEnsembleSize: config.maxEnsembleSize,
    cacheBytes: config.promptCacheBytes, registry: metrics.registry, logger, tokenizer,
  });

  const trainingConfig = opts.training ?? loadTrainingConfig();
  const training = new TrainingManager({ store, modelDir: serving.modelDir, executionProvider: serving.executionProvider, config: trainingConfig, logger, registry: metrics.registry, spec });
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
  const admissionConfig = serving.admission;
  const admission = new Admission(admissionConfig, (id) => quotas.get(id), () => scheduler.retryAfterSeconds(), metrics.registry);
  const classify = new ClassifyService(store, scheduler, tokenizer, spec, serving.classify, metrics, tokenizer.addBos, admission);
  const classifyBodyLimit = classifyBodyBytes(serving.classify);
  const classifyJson = express.json({ limit: classifyBodyLimit, strict: true, verify: jsonDepthGuard(config.maxJsonDepth) });

  const outer = express();
  outer.disable('x-powered-by');
  outer.use(requestIds(logger));
  // One log line and one metric sample per request, whatever route answers it.
  outer.use((req: Request, res: Response, next: NextFunction) => {
    const started = performance.now();
    const path = req.originalUrl.split('?')[0]!;
    res.on('finish', () => {
      const seconds = (performance.now() - started) / 1000;
      const labels = { route: routeLabel(path), method: req.method, status: String(res.statusCode) };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, seconds);
      usage.recordResponse(res);
      const line: Record<string, unknown> = { method: req.method, path, status: res.statusCode, ms: round(seconds * 1000) };
      if (res.locals.tenant) line.tenant = (res.locals.tenant as { id: string }).id;
      if (res.locals.classify) Object.assign(line, res.locals.classify);
      if (res.locals.errorCode) line.code = res.locals.errorCode;
      requestLog(res, logger)!.info(line, 'request');
    });
    next();
  });
  outer.get('/readyz', (_req, res) => {
    if (ready && !draining && worker.isReady) res.json({ status: 'ready', model: spec.modelType, family: spec.family });
    else if (ready && !draining) res.status(503).json({ error: { code: 'INFERENCE_WORKER_RESTARTING', message: 'the inference worker is restarting', request_id: res.locals.requestId } });
    else res.status(503).json({ error: { code: draining ? 'DRAINING' : 'NOT_READY', message: draining ? 'draining' : 'model not loaded', request_id: res.locals.requestId } });
  });
  const info = infoDocument(spec, serving, config);
  outer.get('/info', (_req, res) => { res.json(info); });
  const openApi = openApiDocument({ ...jobsOpenApiPaths(), ...usageOpenApiPaths() });
  outer.get('/openapi.json', (_req, res) => { res.json(openApi); });
  outer.use('/console', consoleRouter());
  outer.use((_req: Request, res: Response, next: NextFunction) => {
    if (!draining || _req.path === '/healthz' || _req.path === '/metrics') return next();
    metrics.rejected.inc({ reason: 'draining' });
    res.setHeader('Connection', 'close');
    res.status(503).json({ error: { code: 'DRAINING', message: 'the server is shutting down', request_id: res.locals.requestId } });
  });

  const classifyRoute = (ctx: AppContext) => {
    ctx.app.post('/v1/tasks/:task/classify', ctx.tenantAuth, requireJson, admission.concurrencyGate(tenantOf), classifyJson, async (req: Request, res: Response, next: NextFunction) => {
      const tenant = tenantOf(res);
      try {
        const result = await classify.classify(tenant.id, String(req.params.task), req.body);
        res.locals.classify = {
          rows: result.usage.rows, tokens: result.usage.tokens, batches: result.batch_ids,
          queueMs: result.timing.queue_ms, inferenceMs: result.timing.inference_ms, tokenizeMs: result.timing.tokenize_ms,
        };
        res.json(result);
      } catch (err) {
        if (isSoftserveError(err)) {
          res.locals.errorCode = err.code;
          if (err.status === 429 || err.code === 'INFERENCE_WORKER_RESTARTING') {
            metrics.rejected.inc({ reason: err.status === 429 ? 'overloaded' : 'worker_restart' });
            res.setHeader('Retry-After', String((err.details?.retryAfter as number | undefined) ?? scheduler.retryAfterSeconds()));
          } else if (err.code === 'DEADLINE_EXCEEDED') {
            metrics.rejected.inc({ reason: 'deadline' });
          } else if (err.code === 'DRAINING') {
            metrics.rejected.inc({ reason: 'draining' });
          }
          if (err.status === 429) {
            admission.answerRefusal(Number(res.getHeader('Retry-After') ?? 1), () => next(err));
            return;
          }
        }
        next(err);
      }
    });
  };
  outer.use(createApp({ store, spec, config, logger, registry: metrics.registry, extensions: [classifyRoute, jobsExtension(training), usageExtension(usage), tenantQuotaRoutes(quotas, admission, admissionConfig.tenant)], inspector: new PromptInspector(serving.modelDir, spec, tokenizer) }));
  // Last resort for errors raised outside the app (console files, /info): express's own
  // handler would answer HTML with a stack trace, paths included.
  outer.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const status = typeof (err as { status?: unknown })?.status === 'number' && (err as { status: number }).status >= 400 && (err as { status: number }).status < 500 ? (err as { status: number }).status : 500;
    requestLog(res, logger)?.error({ err, status }, 'request failed outside the API');
    const code = status === 404 ? 'NOT_FOUND' : status < 500 ? 'BAD_REQUEST' : 'INTERNAL';
    res.status(status).json({ error: { code, message: status < 500 ? 'bad request' : `internal error; the server log has the detail under request id ${String(res.locals.requestId)}`, request_id: res.locals.requestId } });
  });

  // Bounded connections, header/body/keep-alive timeouts (slow or idle clients must not hold a drain
  // open forever), and Expect: 100-continue answered by the route's body limit.
  const largestBody = Math.max(config.maxJsonBytes, trainingConfig.maxUploadBytes, 2 * config.maxUploadBytes + config.maxAdapterConfigBytes + 64 * 1024, classifyBodyLimit);
  const http: Server = createHttpServer(outer, serving.http, {
    onDrop: () => metrics.connectionsDropped.inc(),
    bodyLimit: (req) => (/^\/v1\/tasks\/[^/]+\/classify(\?|$)/.test(req.url ?? '') ? classifyBodyLimit : largestBody),
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
      await store.close();
      logger.info('stopped');
    })();
    return shuttingDown;
  };
  return { url, port, metrics, store, logger, training, inference: worker, shutdown };
}

const round = (x: number) => Math.round(x * 1000) / 1000;

export { SoftserveError };
