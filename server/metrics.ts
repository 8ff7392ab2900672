// Prometheus metrics (prom-client), in a registry of the server's own so that
// several servers in one process (tests) do not share counters. The prompt
// cache's metrics are registered by the store's residency cache itself.

import { createHash } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import type { TenantLabelMode } from './config.ts';
import { threadCpuMs } from './thread-cpu.ts';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const SIZE_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const TOKEN_BUCKETS = [16, 64, 256, 1024, 2048, 4096, 8192, 16384];
const FRACTION_BUCKETS = [0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/** How often the event-loop lag metrics sample (prom-client's eventLoopMonitoringPrecision). */
const EVENT_LOOP_SAMPLE_MS = 100;

export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'route' | 'method' | 'status'>;
  readonly httpDuration: Histogram<'route' | 'method' | 'status'>;
  readonly queueRows: Gauge;
  readonly queueTokens: Gauge;
  readonly queueTime: Histogram;
  readonly batchRows: Histogram;
  readonly batchTokens: Histogram;
  readonly batchPadding: Histogram;
  readonly batchUniquePrompts: Histogram;
  readonly batchTenants: Histogram;
  readonly inferenceTime: Histogram;
  readonly tokenizeTime: Histogram;
  readonly ensembleRequests: Counter;
  readonly ensembleMembers: Histogram;
  readonly rejected: Counter<'reason'>;
  readonly tenantRequests: Counter<'tenant'>;
  readonly workerRestarts: Counter;
  readonly workerUp: Gauge;
  readonly connectionsDropped: Counter;
  /** Per thread (Linux): `main` (HTTP, and the scheduler; a cluster's processes summed) and `inference` (the model's thread), read at scrape time. */
  readonly threadCpu: Counter<'thread'>;
  /** The threads `threadCpu` reads, by label: 'self' for the main thread (which scrapes), an id, or null while there is none. */
  private readonly cpuThreads = new Map<string, () => number | 'self' | null>([['main', () => 'self']]);
  /** The inference thread's work around forward passes (wall time of code that never blocks). */
  readonly inferenceOutsideRun: Counter;
  private readonly tenantLabels = new Set<string>();

  /**
   * `tenantLabels`: how a tenant shows in labels. `hash` (default): the first
   * 12 hex digits of sha256(tenant id), stable across restarts, so a scraper
   * learns neither ids nor names (an operator maps one with
   * `printf %s ten_… | sha256sum | cut -c1-12`); `id`: the tenant id; `none`:
   * one series, `all`.
   */
  constructor(private readonly maxTenantLabels = 100, private readonly tenantLabelMode: TenantLabelMode = 'hash') {
    const r = this.registry;
    // The event-loop lag histogram samples with a timer; prom-client's default (10 ms) wakes an idle
    // server 100 times a second, which cost it 6-13 ms of CPU a second here (`npm run bench:idle`).
    // At 100 ms a stall shorter than that is caught only when it delays a tick (a 20 ms stall about
    // one time in five): the lag figures are samples, good for a loop that stays busy, not for
    // catching every short stall.
    collectDefaultMetrics({ register: r, prefix: 'softserve_process_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    this.httpRequests = new Counter({ name: 'softserve_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [r] });
    this.httpDuration = new Histogram({ name: 'softserve_http_request_duration_seconds', help: 'HTTP request duration', labelNames: ['route', 'method', 'status'], buckets: LATENCY_BUCKETS, registers: [r] });
    this.queueRows = new Gauge({ name: 'softserve_queue_rows', help: 'Rows waiting for a batch', registers: [r] });
    this.queueTokens = new Gauge({ name: 'softserve_queue_tokens', help: 'Tokens waiting for a batch', registers: [r] });
    this.queueTime = new Histogram({ name: 'softserve_queue_time_seconds', help: 'Time a request waited before its last row entered a batch', buckets: LATENCY_BUCKETS, registers: [r] });
    this.batchRows = new Histogram({ name: 'softserve_batch_rows', help: 'Rows per forward pass', buckets: SIZE_BUCKETS, registers: [r] });
    this.batchTokens = new Histogram({ name: 'softserve_batch_tokens', help: 'Padded tokens (rows x length) per forward pass', buckets: TOKEN_BUCKETS, registers: [r] });
    this.batchPadding = new Histogram({ name: 'softserve_batch_padding_fraction', help: 'Fraction of a batch that is padding', buckets: FRACTION_BUCKETS, registers: [r] });
    this.batchUniquePrompts = new Histogram({ name: 'softserve_batch_unique_prompts', help: 'Distinct prompts per forward pass', buckets: SIZE_BUCKETS, registers: [r] });
    this.batchTenants = new Histogram({ name: 'softserve_batch_tenants', help: 'Distinct tenants per forward pass', buckets: SIZE_BUCKETS, registers: [r] });
    this.inferenceTime = new Histogram({ name: 'softserve_inference_seconds', help: 'Forward pass time in the inference worker', buckets: LATENCY_BUCKETS, registers: [r] });
    this.tokenizeTime = new Histogram({ name: 'softserve_tokenize_seconds', help: 'Tokenisation time per classify request', buckets: LATENCY_BUCKETS, registers: [r] });
    this.ensembleRequests = new Counter({ name: 'softserve_ensemble_requests_total', help: 'Classify requests that used an ensemble', registers: [r] });
    this.ensembleMembers = new Histogram({ name: 'softserve_ensemble_members', help: 'Prompts per ensemble request', buckets: [1, 2, 3, 5, 8, 16], registers: [r] });
    this.rejected = new Counter({ name: 'softserve_rejected_total', help: 'Requests refused or dropped: overloaded (429), deadline (504), draining (503)', labelNames: ['reason'], registers: [r] });
    this.workerRestarts = new Counter({ name: 'softserve_inference_worker_restarts_total', help: 'Times the inference worker thread died and was restarted', registers: [r] });
    this.workerUp = new Gauge({ name: 'softserve_inference_worker_up', help: '1 while a loaded inference worker thread is serving', registers: [r] });
    this.connectionsDropped = new Counter({ name: 'softserve_connections_dropped_total', help: 'Connections closed at once because the process was at SOFTSERVE_MAX_CONNECTIONS', registers: [r] });
    const threads = this.cpuThreads;
    const read = new Map<string, { id: number | 'self'; ms: number }>();
    this.threadCpu = new Counter({
      name: 'softserve_thread_cpu_seconds_total', help: 'CPU seconds by thread since it started: main (HTTP and scheduling) and inference (the model thread); use rates', labelNames: ['thread'], registers: [r],
      collect() {
        for (const [thread, idOf] of threads) {
          const id = idOf();
          const now = id === null ? undefined : threadCpuMs(id === 'self' ? undefined : id);
          if (id === null || now === undefined) continue;
          const last = read.get(thread);
          // A new thread under the label (a restarted inference worker) counts from its start.
          const from = last && last.id === id ? last.ms : 0;
          if (now > from) this.inc({ thread }, (now - from) / 1000);
          read.set(thread, { id, ms: now });
        }
      },
    });
    this.inferenceOutsideRun = new Counter({ name: 'softserve_inference_outside_run_seconds_total', help: 'Seconds the inference thread worked around forward passes: unpacking, assembly, replies', registers: [r] });
    this.tenantRequests = new Counter({ name: 'softserve_tenant_requests_total', help: `Classify requests per tenant (the first ${maxTenantLabels} tenants by id; the rest as "other")`, labelNames: ['tenant'], registers: [r] });
  }

  /** Reports thread `label`'s CPU in `threadCpu`; `threadId` says which thread it is now (null while there is none). */
  readThreadCpu(label: string, threadId: () => number | null): void {
    this.cpuThreads.set(label, threadId);
  }

  /** Per-tenant label with bounded cardinality. */
  tenantLabel(tenantId: string): string {
    if (this.tenantLabelMode === 'none') return 'all';
    const label = this.tenantLabelMode === 'id' ? tenantId : createHash('sha256').update(tenantId).digest('hex').slice(0, 12);
    if (this.tenantLabels.has(label)) return label;
    if (this.tenantLabels.size < this.maxTenantLabels) {
      this.tenantLabels.add(label);
      return label;
    }
    return 'other';
  }
}
