// The primary process of a clustered server (SOFTSERVE_FRONT_WORKERS = K ≥ 1).
//
// Why processes (node:cluster) and not threads: only processes can share one
// listening port on this Node (the primary accepts and hands connections to
// the fronts round-robin), and a front that crashes takes nothing else with
// it. The model is loaded once, here: the primary holds the model host
// (inference worker thread + the one scheduler, so cross-tenant batching and
// fairness span every front) and the training runner. The K fronts do all
// the HTTP work: parsing, auth, admission, tokenisation and row building,
// and answer; they send each request's rows here (token ids, and the prompt
// tensors it uses) and get scores back.
//
// Every process keeps its own catalog cache; a write in any of them is
// passed on to all others here (with PostgreSQL, NOTIFY does it as well).
// /metrics and usage answered by a front are gathered from every process.
// SIGTERM: the fronts drain (answer what they accepted, refuse the rest) and
// exit, then the primary stops its runner and the model.

import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Logger } from 'pino';

import type { PromptStore } from '../../prompts/store.ts';
import { loadTokenizer } from '../../models/tokenizer.ts';
import { unpackRows } from '../inference/rows-wire.ts';
import { applyCatalogEvent, startCatalogSync } from '../catalog-sync.ts';
import type { Settings } from '../config.ts';
import { flushLogger, serverLogger } from '../log.ts';
import { Metrics } from '../metrics.ts';
import { startModelHost, type ModelHost } from '../model-host.ts';
import { openPromptStore } from '../prompt-store.ts';
import { TrainingManager } from '../training/manager.ts';
import type { TenantUsage } from '../usage.ts';
import { errorToWire, type GatherWhat, type ToFront, type ToPrimary } from './protocol.ts';

export interface RunningPrimary {
  url: string;
  store: PromptStore;
  logger: Logger;
  shutdown(): Promise<void>;
}

/** A gather waits this long for each front's share; a front that does not answer is left out. */
const GATHER_TIMEOUT_MS = 2000;
/** A front that died is forked again after this pause (a crash loop cannot spin the primary). */
const REFORK_DELAY_MS = 1000;

export async function startPrimary(settings: Settings, logger: Logger = serverLogger(settings.serving.logLevel)): Promise<RunningPrimary> {
  const { serving, server: config, training: trainingConfig } = settings;
  const K = serving.frontWorkers;
  const metrics = new Metrics(100, config.metricsTenantLabel);
  const fronts = new Set<Worker>();
  const broadcast = (m: ToFront, except?: Worker) => {
    for (const w of fronts) if (w !== except) sendTo(w, m);
  };
  let lastEngine = { ready: true, retryAfter: 1 };
  const host: ModelHost = await startModelHost(serving, metrics, logger, {
    onReadyChange: (ready) => {
      lastEngine = { ...lastEngine, ready };
      broadcast({ t: 'engine', ...lastEngine });
    },
  });

  let store: PromptStore;
  try {
    store = await openPromptStore(config, host.spec, loadTokenizer(serving.modelDir), metrics.registry, logger);
  } catch (err) {
    await host.worker.close();
    throw err;
  }
  const training = new TrainingManager({
    store, modelDir: serving.modelDir, executionProvider: serving.executionProvider, config: trainingConfig, logger, registry: metrics.registry,
    spec: host.spec, sharedQueue: config.databaseUrl !== null,
  });
  await training.start();
  const catalogSync = await startCatalogSync({ databaseUrl: config.databaseUrl, store, quotas: null, registry: metrics.registry, logger });
  // Trained prompts published here reach the fronts' caches.
  store.onWrite((event) => broadcast({ t: 'catalog', event }));

  // The scheduler's Retry-After estimate, for the fronts' refusals: sent when it changes, at most every 250 ms.
  const engineTimer = setInterval(() => {
    const retryAfter = host.scheduler.retryAfterSeconds();
    if (retryAfter === lastEngine.retryAfter) return;
    lastEngine = { ...lastEngine, retryAfter };
    broadcast({ t: 'engine', ...lastEngine });
  }, 250);
  engineTimer.unref();

  // --- gathering (metrics, usage) over every process ---
  let nextGather = 1;
  const gathers = new Map<number, { shares: unknown[]; waiting: number; done(): void }>();
  const gather = async (query: GatherWhat): Promise<unknown> => {
    const gid = nextGather++;
    const targets = [...fronts];
    const shares: unknown[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { gathers.delete(gid); resolve(); }, GATHER_TIMEOUT_MS);
      const done = () => { clearTimeout(timer); gathers.delete(gid); resolve(); };
      gathers.set(gid, { shares, waiting: targets.length, done });
      for (const w of targets) sendTo(w, { t: 'collect', gid, query });
      if (targets.length === 0) done();
    });
    if (query.what === 'metrics') {
      const own = await metrics.registry.getMetricsAsJSON();
      return AggregatorRegistry.aggregate([own, ...(shares.filter(Boolean) as Array<Array<MetricObjectWithValues<MetricValue<string>>>>)]).metrics();
    }
    const sum: TenantUsage = { requests: 0, classify_requests: 0, rows: 0, tokens: 0, rejected: 0, errors: 0 };
    for (const s of shares as Array<TenantUsage | null>) if (s) for (const k of Object.keys(sum) as Array<keyof TenantUsage>) sum[k] += s[k];
    return sum;
  };

  // --- messages from the fronts ---
  const onMessage = (w: Worker, m: ToPrimary, index: number) => {
    switch (m.t) {
      case 'submit': {
        const { rows } = unpackRows(m.rows);
        host.scheduler.submit(m.tenant, rows, m.deadlineMs).then((out) => {
          const scoreStart = new Int32Array(out.rows.length + 1);
          out.rows.forEach((r, i) => { scoreStart[i + 1] = scoreStart[i]! + r.scores.length; });
          const scores = new Float32Array(scoreStart[out.rows.length]!);
          out.rows.forEach((r, i) => scores.set(r.scores, scoreStart[i]));
          const rowBatch = Int32Array.from(out.rows, (r) => r.batchId);
          sendTo(w, { t: 'result', id: m.id, scores, scoreStart, rowBatch, batchIds: out.batchIds, queueMs: out.queueMs, inferenceMs: out.inferenceMs });
        }, (err: unknown) => sendTo(w, { t: 'error', id: m.id, error: errorToWire(err) }));
        return;
      }
      case 'catalog':
        applyCatalogEvent(m.event, store, null, logger);
        broadcast({ t: 'catalog', event: m.event }, w);
        return;
      case 'gather':
        gather(m.query).then((data) => sendTo(w, { t: 'gathered', id: m.id, data }), () => sendTo(w, { t: 'gathered', id: m.id, data: null }));
        return;
      case 'collected': {
        const g = gathers.get(m.gid);
        if (!g) return;
        g.shares.push(m.data);
        if (--g.waiting === 0) g.done();
        return;
      }
      case 'job-queued':
        training.wake();
        return;
      case 'connect':
        sendTo(w, { t: 'hello', spec: host.spec, fronts: K, index });
        return;
      case 'listening':
        listening.get(w)?.(m.port);
        return;
    }
  };

  // --- the fronts ---
  let stopping = false;
  const listening = new Map<Worker, (port: number) => void>();
  cluster.setupPrimary({ serialization: 'advanced' });
  const fork = (index: number): Promise<number> => {
    const w = cluster.fork();
    fronts.add(w);
    w.on('message', (m: ToPrimary) => onMessage(w, m, index));
    const up = new Promise<number>((resolve, reject) => {
      listening.set(w, (port) => { listening.delete(w); resolve(port); });
      w.once('exit', (code) => reject(new Error(`front worker ${index} exited (code ${code}) before it listened`)));
    });
    w.on('exit', (code, signal) => {
      fronts.delete(w);
      listening.delete(w);
      if (stopping) return;
      logger.error({ front: index, code, signal }, 'front worker died; starting another');
      setTimeout(() => { if (!stopping) fork(index).catch(() => {}); }, REFORK_DELAY_MS).unref();
    });
    return up;
  };
  let port: number;
  try {
    const ports = await Promise.all(Array.from({ length: K }, (_, i) => fork(i)));
    port = ports[0]!;
  } catch (err) {
    stopping = true;
    for (const w of fronts) w.kill();
    await training.stop();
    await host.worker.close();
    await catalogSync?.close();
    await store.close();
    throw err;
  }
  const url = `http://${config.host}:${port}`;
  logger.info({ url, fronts: K }, 'listening');

  let shuttingDown: Promise<void> | null = null;
  const shutdown = () => {
    shuttingDown ??= (async () => {
      stopping = true;
      logger.info({ queued: host.scheduler.depth, fronts: fronts.size }, 'draining');
      // The fronts answer what they accepted (their rows still run here), then exit.
      const exited = [...fronts].map((w) => new Promise<void>((resolve) => {
        if (w.isDead()) resolve();
        else w.once('exit', () => resolve());
      }));
      broadcast({ t: 'drain' });
      const limit = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), serving.drainTimeoutMs + 5000).unref());
      if ((await Promise.race([Promise.all(exited), limit])) === 'timeout') {
        logger.warn('front workers did not stop in time; killing them');
        for (const w of fronts) w.process.kill('SIGKILL');
      }
      clearInterval(engineTimer);
      await host.scheduler.drain();
      await training.stop();
      await host.worker.close();
      await catalogSync?.close();
      await store.close();
      logger.info('stopped');
      await flushLogger(logger);
    })();
    return shuttingDown;
  };
  return { url, store, logger, shutdown };
}

function sendTo(w: Worker, m: ToFront): void {
  if (!w.isConnected()) return;
  try {
    w.send(m);
  } catch {
    // The front is going away; what it asked for no longer has anyone to answer.
  }
}
