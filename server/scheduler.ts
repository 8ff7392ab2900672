// Cross-tenant dynamic batching. Each tenant has a FIFO of rows; batches are
// filled by deficit round-robin over tenants (each pass grants every waiting
// tenant a quantum of tokens), so one tenant's flood cannot starve another.
// A batch is seeded by the oldest row of a light tenant (a few rows queued:
// it rides in the next batch formed, whatever others have queued), else by
// the oldest row of the tenant whose turn it is (round robin), and only takes
// rows of a similar length (see bucketOf), which bounds padding. A batch is
// sent when it would be full (rows or padded tokens) or when its oldest row
// has waited `maxWaitMs`; while a flood's rows are queued, also when it would
// run longer than `targetBatchMs`. The queue is bounded in rows and tokens, in total
// and per tenant: past that, requests are refused with 429 at once rather
// than queued into a timeout.
//
// Batches go to an InferenceBackend (inference/backend.ts), which assembles
// and runs them; the scheduler keeps `backend.capacity` batches in flight.

import { SoftserveError } from '../kernels/errors.ts';
import type { EngineRow } from '../models/batch.ts';
import type { InferenceBackend } from './inference/backend.ts';

export interface SchedulerConfig {
  /** Most padded tokens (rows × longest row) in one forward pass. */
  maxBatchTokens: number;
  /**
   * If > 0, while bulk rows are queued, a batch's padded tokens are also
   * capped so that, at the recently measured rate, its forward pass takes
   * about this long. Bulk rows are those that joined a tenant's queue when it
   * held a whole batch's worth (`maxBatchRows`: a tenant that could fill
   * every batch by itself). A row of another tenant that arrives while a
   * batch runs then waits about this long for it, not for a batch of a
   * flood's rows, until the last of the flood's rows has run. Without bulk
   * rows (many tenants with a few requests each), batches are as large as
   * the other bounds allow. 0: off.
   */
  targetBatchMs: number;
  /** Most rows in one forward pass. */
  maxBatchRows: number;
  /** Longest a row waits for company before its batch is sent. */
  maxWaitMs: number;
  /** Queue bounds, over all tenants. */
  maxQueueRows: number;
  maxQueueTokens: number;
  /** Queue bound per tenant (rows). */
  maxTenantQueueRows: number;
  /** Deficit round-robin quantum, in tokens. */
  quantumTokens: number;
  /**
   * Who may share a forward pass: rows of any tenants (the product), rows of
   * one tenant only, or no one (batch size 1). The last two exist to measure
   * what cross-tenant batching buys (npm run bench).
   */
  policy: BatchPolicy;
}

export type BatchPolicy = 'cross-tenant' | 'per-tenant' | 'single';
export const BATCH_POLICIES: readonly BatchPolicy[] = ['cross-tenant', 'per-tenant', 'single'];

export const DEFAULT_SCHEDULER_CONFIG: SchedulerConfig = {
  maxBatchTokens: 8192,
  targetBatchMs: 10,
  maxBatchRows: 64,
  maxWaitMs: 2,
  maxQueueRows: 4096,
  maxQueueTokens: 262144,
  maxTenantQueueRows: 1024,
  quantumTokens: 256,
  policy: 'cross-tenant',
};

export interface RowOutput { scores: Float32Array; batchId: number }

/**
 * What the classify path queues its rows with: the Scheduler itself in a
 * single process, or, in a front worker, the link to the primary process
 * that holds the scheduler and the model (server/cluster/front-link.ts).
 */
export interface RowQueue {
  submit(tenant: string, rows: EngineRow[], deadlineMs: number): Promise<SubmitResult>;
  /** Seconds a refused client should wait. */
  retryAfterSeconds(): number;
}

export interface SubmitResult {
  rows: RowOutput[];
  batchIds: number[];
  /** Enqueue until the request's last row entered a batch. */
  queueMs: number;
  /** Sum of the forward passes the request's rows were in. */
  inferenceMs: number;
}

export interface BatchReport {
  id: number;
  rows: number;
  paddedTokens: number;
  realTokens: number;
  uniquePrompts: number;
  tenants: number;
  inferenceMs: number;
}

export interface SchedulerHooks {
  onBatch?(report: BatchReport): void;
  /** The backend's work around a batch's forward pass (BatchOutput.aroundRunMs), where it can tell; also for a batch none of whose rows could run. */
  onAroundRun?(ms: number): void;
  onQueueChange?(rows: number, tokens: number): void;
}

interface RequestJob {
  tenant: string;
  rows: RowJob[];
  remaining: number;
  outputs: RowOutput[];
  batchIds: Set<number>;
  enqueuedAt: number;
  startedAt: number;
  inferenceMs: number;
  timer: NodeJS.Timeout | null;
  done: boolean;
  resolve(r: SubmitResult): void;
  reject(e: Error): void;
}

interface RowJob {
  row: EngineRow; tokens: number; bucket: number; request: RequestJob; index: number; enqueuedAt: number;
  /** Joined a queue holding a whole batch's worth of rows (see SchedulerConfig.targetBatchMs). */
  bulk: boolean;
}

interface TenantQueue { rows: RowJob[]; deficit: number }

/**
 * Length classes a quarter-octave wide; a batch takes rows within two classes
 * of its seed, so its longest row is at most 2^(3/4) ≈ 1.7× its shortest.
 * Padding costs more than its share: attention grows with the square of the
 * padded length.
 */
const CLASSES_PER_OCTAVE = 4;
const MAX_CLASS_DISTANCE = 2;
const bucketOf = (tokens: number) => Math.floor(Math.log2(Math.max(tokens, 1)) * CLASSES_PER_OCTAVE);

/** A tenant with at most this many rows queued is light: its oldest row opens the next batch (seedRow). */
export const LIGHT_TENANT_ROWS = 4;

export class Scheduler implements RowQueue {
  private readonly tenants = new Map<string, TenantQueue>();
  /** Round-robin order of tenants with waiting rows. */
  private order: string[] = [];
  private cursor = 0;
  /** The tenant whose turn came last: the next batch opens with the tenant after it. */
  private lastServed: string | null = null;
  private queuedRows = 0;
  private queuedTokens = 0;
  /** Queued rows marked bulk: while there are any, batches are capped at targetBatchMs. */
  private bulkRows = 0;
  private inFlight = 0;
  private nextBatchId = 1;
  private waitTimer: NodeJS.Timeout | null = null;
  private draining = false;
  private idleWaiters: Array<() => void> = [];
  /** Recent throughput (tokens/s), for Retry-After. */
  private tokensPerSecond = 0;

  constructor(
    private readonly backend: Pick<InferenceBackend, 'run' | 'capacity'>,
    private readonly config: SchedulerConfig,
    private readonly hooks: SchedulerHooks = {},
  ) {}

  get depth(): { rows: number; tokens: number; inFlight: number } {
    return { rows: this.queuedRows, tokens: this.queuedTokens, inFlight: this.inFlight };
  }

  /** Seconds a refused client should wait: the time to work off the queue. */
  retryAfterSeconds(): number {
    const rate = this.tokensPerSecond > 0 ? this.tokensPerSecond : 10000;
    return Math.min(30, Math.max(1, Math.ceil(this.queuedTokens / rate)));
  }

  submit(tenant: string, rows: EngineRow[], deadlineMs: number): Promise<SubmitResult> {
    if (this.draining) return Promise.reject(new SoftserveError('DRAINING', 'the server is shutting down; retry on another instance'));
    const tokens = rows.reduce((a, r) => a + r.inputIds.length, 0);
    const queue = this.tenants.get(tenant);
    const overloaded = (why: string) =>
      Promise.reject(new SoftserveError('OVERLOADED', `overloaded: ${why}; retry after ${this.retryAfterSeconds()} s`, { retryAfter: this.retryAfterSeconds() }));
    if (rows.length > this.config.maxTenantQueueRows) {
      return Promise.reject(new SoftserveError('PAYLOAD_TOO_LARGE', `a request of ${rows.length} rows exceeds the per-tenant queue of ${this.config.maxTenantQueueRows}`));
    }
    if ((queue?.rows.length ?? 0) + rows.length > this.config.maxTenantQueueRows) return overloaded('this tenant has too many rows queued');
    if (this.queuedRows + rows.length > this.config.maxQueueRows) return overloaded('the queue is full (rows)');
    if (this.queuedTokens + tokens > this.config.maxQueueTokens) return overloaded('the queue is full (tokens)');

    return new Promise<SubmitResult>((resolve, reject) => {
      const now = performance.now();
      const job: RequestJob = {
        tenant, rows: [], remaining: rows.length, outputs: new Array(rows.length), batchIds: new Set(),
        enqueuedAt: now, startedAt: now, inferenceMs: 0, timer: null, done: false, resolve, reject,
      };
      const bulk = (queue?.rows.length ?? 0) + rows.length >= this.config.maxBatchRows;
      job.rows = rows.map((row, index) => ({ row, tokens: row.inputIds.length, bucket: bucketOf(row.inputIds.length), request: job, index, enqueuedAt: now, bulk }));
      if (bulk) this.bulkRows += rows.length;
      job.timer = setTimeout(() => this.expire(job), Math.max(0, deadlineMs));
      let q = this.tenants.get(tenant);
      if (!q) {
        q = { rows: [], deficit: 0 };
        this.tenants.set(tenant, q);
      }
      if (q.rows.length === 0) this.order.push(tenant);
      q.rows.push(...job.rows);
      this.queuedRows += rows.length;
      this.queuedTokens += tokens;
      this.hooks.onQueueChange?.(this.queuedRows, this.queuedTokens);
      this.pump();
    });
  }

  private expire(job: RequestJob): void {
    if (job.done) return;
    job.done = true;
    const q = this.tenants.get(job.tenant);
    if (q) {
      const before = q.rows.length;
      const kept = q.rows.filter((r) => r.request !== job);
      const dropped = q.rows.filter((r) => r.request === job);
      q.rows = kept;
      this.queuedRows -= before - kept.length;
      this.queuedTokens -= dropped.reduce((a, r) => a + r.tokens, 0);
      this.bulkRows -= dropped.filter((r) => r.bulk).length;
      if (kept.length === 0) this.forget(job.tenant);
      this.hooks.onQueueChange?.(this.queuedRows, this.queuedTokens);
    }
    job.reject(new SoftserveError('DEADLINE_EXCEEDED', 'the request deadline passed before it was answered'));
    this.checkIdle();
  }

  private forget(tenant: string): void {
    const i = this.order.indexOf(tenant);
    if (i >= 0) {
      this.order.splice(i, 1);
      if (this.cursor > i) this.cursor--;
    }
    const q = this.tenants.get(tenant);
    if (q) q.deficit = 0;
  }

  private oldestRow(): RowJob | null {
    let oldest: RowJob | null = null;
    for (const t of this.order) {
      const head = this.tenants.get(t)!.rows[0];
      if (head && (!oldest || head.enqueuedAt < oldest.enqueuedAt)) oldest = head;
    }
    return oldest;
  }

  /**
   * The row that opens the next batch (and rides in it first). A light
   * tenant's oldest row if there is one: a tenant with at most
   * LIGHT_TENANT_ROWS rows queued (a client sending a request now and then)
   * waits only for the batches already formed, not for the heavy tenants'
   * turns. Otherwise the head row of the tenant whose turn is next (the one
   * after the tenant served last): seeding by turn rather than by age means a
   * flood queued earlier does not go first. Heavy tenants still fill every
   * batch past its seed by deficit round-robin, and holding few rows is all it
   * takes to be light, so no tenant is starved: rows that stay heavy are
   * served at least in turn.
   */
  private seedRow(): RowJob | null {
    if (this.order.length === 0) return null;
    let light: RowJob | null = null;
    for (const t of this.order) {
      const q = this.tenants.get(t)!;
      const head = q.rows[0];
      if (head && q.rows.length <= LIGHT_TENANT_ROWS && (!light || head.enqueuedAt < light.enqueuedAt)) light = head;
    }
    if (light) return light;
    const last = this.lastServed === null ? -1 : this.order.indexOf(this.lastServed);
    return this.tenants.get(this.order[(last + 1) % this.order.length]!)?.rows[0] ?? null;
  }

  private pump(): void {
    while (this.inFlight < this.backend.capacity && this.queuedRows > 0) {
      const oldest = this.oldestRow()!;
      const waited = performance.now() - oldest.enqueuedAt;
      const full = this.config.policy === 'single' ||
        this.queuedRows >= this.config.maxBatchRows || this.queuedTokens >= this.config.maxBatchTokens;
      if (!full && waited < this.config.maxWaitMs && !this.draining) {
        if (!this.waitTimer) {
          this.waitTimer = setTimeout(() => { this.waitTimer = null; this.pump(); }, Math.ceil(this.config.maxWaitMs - waited));
        }
        return;
      }
      const batch = this.formBatch(this.seedRow() ?? oldest);
      void this.dispatch(batch);
    }
  }

  /**
   * The padded-token bound of the next batch: `maxBatchTokens`, or less while
   * bulk rows are queued (see `targetBatchMs`). The rate is an average over
   * recent batches, so the cap settles where a batch takes the target: a
   * batch that ran longer lowers the rate, and with it the next cap.
   */
  private batchTokenCap(): number {
    const { targetBatchMs, maxBatchTokens } = this.config;
    if (targetBatchMs <= 0 || this.tokensPerSecond <= 0 || this.bulkRows === 0) return maxBatchTokens;
    return Math.min(maxBatchTokens, Math.max(1, Math.floor((this.tokensPerSecond * targetBatchMs) / 1000)));
  }

  /** Deficit round-robin over tenants, rows of the seed's length class only. */
  private formBatch(seed: RowJob): RowJob[] {
    const { quantumTokens, policy } = this.config;
    const maxBatchTokens = this.batchTokenCap();
    const maxBatchRows = policy === 'single' ? 1 : this.config.maxBatchRows;
    const picked: RowJob[] = [];
    let longest = 0;
    const fits = (r: RowJob) =>
      picked.length + 1 <= maxBatchRows &&
      (picked.length + 1) * Math.max(longest, r.tokens) <= maxBatchTokens &&
      Math.abs(r.bucket - seed.bucket) <= MAX_CLASS_DISTANCE;
    // A turn takes the tenant's rows of the seed's length class from anywhere in
    // its queue, oldest first, within its deficit: a many-input request mixes
    // lengths, and taking only from the head would stop at the first row of
    // another class and send near-empty batches. One pass; the rest keep their order.
    const takeTurn = (q: TenantQueue) => {
      const kept: RowJob[] = [];
      let i = 0;
      for (; i < q.rows.length; i++) {
        const r = q.rows[i]!;
        if (picked.length >= maxBatchRows || r.tokens > q.deficit && fits(r)) break;
        if (fits(r)) {
          q.deficit -= r.tokens;
          picked.push(r);
          longest = Math.max(longest, r.tokens);
        } else kept.push(r);
      }
      if (kept.length > 0 || i > 0) q.rows = i < q.rows.length ? kept.concat(q.rows.slice(i)) : kept;
    };
    // The seed rides first, whether or not it is its tenant's turn (seedRow),
    // charged to its tenant's deficit like any row.
    const seedQueue = this.tenants.get(seed.request.tenant)!;
    if (fits(seed)) {
      seedQueue.rows.splice(seedQueue.rows.indexOf(seed), 1);
      seedQueue.deficit -= seed.tokens;
      picked.push(seed);
      longest = seed.tokens;
      if (seedQueue.rows.length === 0) this.forget(seed.request.tenant);
    }
    // Each turn grants the tenant under the cursor one quantum; the cursor
    // moves on after every turn, and stays put across batches, so the tenant
    // after the one that filled this batch opens the next.
    // A tenant that became active since the last turn sits after `lastServed`
    // in the order, so it is next, not a full round away.
    const last = this.lastServed === null ? -1 : this.order.indexOf(this.lastServed);
    if (last >= 0) this.cursor = (last + 1) % this.order.length;
    fill: for (;;) {
      let eligible = false;
      const n = this.order.length;
      for (let i = 0; i < n && this.order.length > 0; i++) {
        if (picked.length >= maxBatchRows) break fill;
        const at = this.cursor % this.order.length;
        const tenant = this.order[at]!;
        const q = this.tenants.get(tenant)!;
        const allowed = policy === 'cross-tenant' || tenant === seed.request.tenant;
        if (allowed && q.rows.some(fits)) {
          eligible = true;
          this.lastServed = tenant;
          q.deficit += quantumTokens;
          takeTurn(q);
        }
        if (q.rows.length === 0) this.forget(tenant); // the next tenant slides into `at`
        else this.cursor = (at + 1) % this.order.length;
      }
      if (!eligible) break;
    }
    if (picked.length === 0) {
      // The seed alone is over the token budget: it still has to run.
      const q = this.tenants.get(seed.request.tenant)!;
      q.rows.splice(q.rows.indexOf(seed), 1);
      picked.push(seed);
      if (q.rows.length === 0) this.forget(seed.request.tenant);
    }
    for (const r of picked) {
      this.queuedRows--;
      this.queuedTokens -= r.tokens;
      if (r.bulk) this.bulkRows--;
    }
    this.hooks.onQueueChange?.(this.queuedRows, this.queuedTokens);
    return picked;
  }

  private async dispatch(rows: RowJob[]): Promise<void> {
    const id = this.nextBatchId++;
    this.inFlight++;
    const now = performance.now();
    for (const r of rows) if (!r.request.done) r.request.startedAt = now;
    try {
      const live = rows.filter((r) => !r.request.done);
      if (live.length > 0) {
        // A group per request: a row the backend cannot assemble fails its own request only.
        const requests: RequestJob[] = [];
        const groupOf = new Map<RequestJob, number>();
        const groups = live.map((r) => {
          let g = groupOf.get(r.request);
          if (g === undefined) {
            g = requests.push(r.request) - 1;
            groupOf.set(r.request, g);
          }
          return g;
        });
        const out = await this.backend.run({ rows: live.map((r) => r.row), groups });
        if (out.aroundRunMs !== undefined) this.hooks.onAroundRun?.(out.aroundRunMs);
        for (const f of out.failed) {
          const job = requests[f.group]!;
          if (job.done) continue;
          job.done = true;
          if (job.timer) clearTimeout(job.timer);
          job.reject(f.error);
        }
        const ran = out.ran.map((i) => live[i]!);
        if (ran.length > 0) {
          const elapsed = out.inferenceMs / 1000;
          const rate = ran.length * out.paddedLength / Math.max(elapsed, 1e-6);
          this.tokensPerSecond = this.tokensPerSecond === 0 ? rate : 0.8 * this.tokensPerSecond + 0.2 * rate;
          this.hooks.onBatch?.({
            id, rows: ran.length, paddedTokens: ran.length * out.paddedLength, realTokens: out.realTokens,
            uniquePrompts: new Set(ran.map((r) => r.row.softPrompt?.key ?? r.row.prefix?.key ?? '')).size,
            tenants: new Set(ran.map((r) => r.request.tenant)).size, inferenceMs: out.inferenceMs,
          });
          ran.forEach((r, b) => {
            const job = r.request;
            if (job.done) return;
            const classes = out.numClasses[b]!;
            job.outputs[r.index] = {
              scores: out.scores.slice(b * out.classes, b * out.classes + classes),
              batchId: id,
            };
            job.batchIds.add(id);
            if (--job.remaining === 0) this.finish(job, out.inferenceMs);
            else job.inferenceMs += out.inferenceMs;
          });
        }
      }
    } catch (err) {
      for (const r of rows) {
        if (!r.request.done) {
          r.request.done = true;
          if (r.request.timer) clearTimeout(r.request.timer);
          r.request.reject(err as Error);
        }
      }
    } finally {
      this.inFlight--;
      this.pump();
      this.checkIdle();
    }
  }

  private finish(job: RequestJob, lastInferenceMs: number): void {
    job.done = true;
    if (job.timer) clearTimeout(job.timer);
    job.resolve({
      rows: job.outputs,
      batchIds: [...job.batchIds],
      queueMs: job.startedAt - job.enqueuedAt,
      inferenceMs: job.inferenceMs + lastInferenceMs,
    });
  }

  private checkIdle(): void {
    if (this.queuedRows === 0 && this.inFlight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Refuse new work; resolve when everything queued or in flight has finished. */
  drain(): Promise<void> {
    this.draining = true;
    this.pump();
    if (this.queuedRows === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
