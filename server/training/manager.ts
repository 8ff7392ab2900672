// The training manager has two halves. The API half (any serve process)
// validates and queues jobs, lists, shows and cancels them, through the store
// alone. The runner half (a serve process unless SOFTSERVE_TRAINING=off, and
// every trainer process, server/trainer-main.ts) claims queued jobs one at a
// time with a lease (JobStore.claim), runs them on the training worker thread
// (through TrainingWorkerClient, client.ts, which owns the thread), renews the
// lease with heartbeats that also carry the progress (throttled) and bring
// back cancel requests made on any replica, and publishes the trained prompts
// through the prompt store only once a job has completed and only while its
// lease holds: each prompt as a new version (source "training"), then the
// ensemble for a multi-prompt job. A runner that lost its lease writes nothing.
//
// Restarts: a job whose runner died (its lease expired; with SQLite, every
// job found "running" when the single process starts) was interrupted. It is
// queued again (and, with its seed, trains to the same prompt) until it has
// been started `maxAttempts` times; then it fails with that reason. A
// graceful shutdown stops the running job at its next step and puts it back
// in the queue without counting the attempt. Either way the job keeps a note
// in its events; no job is ever dropped silently. The same holds when the
// worker thread itself dies mid-job (crash, exit): the job is requeued
// (attempt counted) and the next job starts a fresh worker.
//
// Isolation between tenants (docs/TRAINING.md, "Limits and isolation"):
// - memory: a job's peak is estimated at submit and refused over the budget
//   (budget.ts); while it runs, the process's RSS growth is sampled and the
//   job stopped at its next step if it passes the ceiling (memory-watch.ts);
// - the queue is round-robin across tenants (JobStore.nextQueued, prompts/store/), with
//   per-tenant limits on active jobs and on training time in a window;
// - a job is bound to its task row: deleting the task stops the job
//   (TASK_DELETED) and nothing is ever published into a re-created task.

import { hostname } from 'node:os';

import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';

import { SoftserveError } from '../../kernels/errors.ts';
import type { ExecutionProvider } from '../../kernels/session.ts';
import { validateName, type PromptStore, type Task } from '../../prompts/store.ts';
import { checkPromptFitsTemplate, parseTemplate, softPlacement } from '../../prompts/template.ts';
import { labelCounts, parseArray, parseJsonl, splitHeldOut, type Example, type Parsed, type RowError } from '../../prompts/training/data.ts';
import { methodKind, optionsView, parseTrainingOptions, type TrainingOptions } from '../../prompts/training/options.ts';
import { stream } from '../../prompts/training/rng.ts';
import type { EvalPoint, Progress } from '../../prompts/training/trainer.ts';
import type { ModelSpec } from '../../models/spec.ts';
import { loadCheckpoint } from '../../models/checkpoint.ts';
import { familyOf } from '../../models/families.ts';
import { modelDimsOf, type ModelDims } from '../../prompts/training/memory.ts';
import { checkTrainingBudget } from './budget.ts';
import type { TrainingConfig } from '../config.ts';
import { MemoryWatch } from './memory-watch.ts';
import { FINAL_STATES, newJobId, type JobClaim, type JobFields, type JobRow, type JobState, type JobStore, type PromptVersionInfo } from '../../prompts/store/index.ts';
import { loadJobSources, parseUnlabelled, pinJobSources, provenanceFor, type JobSources } from './job-sources.ts';
import type { MemberSummary } from './protocol.ts';
import { TrainingWorkerClient, type Outcome } from './client.ts';
import { jobView, type JobResult, type JobView, type PublishedMember } from './views.ts';
import type { PromptTensors } from '../../prompts/kinds.ts';

function now(): string {
  return new Date().toISOString();
}

export interface TrainingManagerOptions {
  store: PromptStore;
  modelDir: string;
  executionProvider?: ExecutionProvider;
  config: TrainingConfig;
  logger?: Logger;
  registry?: Registry;
  /** The model's spec (read from modelDir when not given). */
  spec?: ModelSpec;
  /**
   * The store is shared with other processes (PostgreSQL): jobs are accepted
   * without a local runner, idle runners poll, and only expired leases are
   * taken back. false (SQLite, one process): every running job found at start
   * was interrupted.
   */
  sharedQueue?: boolean;
  /** This runner's name in lease tokens and logs (default host:pid). */
  runnerName?: string;
  /** Called after a job is queued (a front worker tells the primary's runner to look now). */
  onQueued?: () => void;
}

/** Examples as a request gives them: JSONL text or an array of {text, label}. */
export type ExamplesInput = { jsonl: string } | { array: unknown[] };

export interface JobRequest {
  prompt: unknown;
  ensemble?: unknown;
  options?: unknown;
  examples: ExamplesInput;
  validation?: ExamplesInput;
  /** Distillation only: texts without labels, for the teacher to label. */
  unlabelled?: ExamplesInput;
}

/** Why the manager stopped a running job itself (the job fails with this). */
interface StopReason { code: 'TASK_DELETED' | 'TRAINING_MEMORY_LIMIT' | 'TRAINING_TIME_QUOTA'; message: string }

interface Running {
  id: string;
  row: JobRow;
  /** The lease token every write of this run names. */
  lease: string;
  /** The lease was lost (expired and taken back, or the row is gone): write nothing more. */
  lost: boolean;
  /** The run's end is being written: heartbeats stop. */
  ended: boolean;
  /** Progress or history changed since the last heartbeat wrote them. */
  dirty: boolean;
  beating: boolean;
  progress: Progress | null;
  history: EvalPoint[];
  lastPersist: number;
  startedAt: number;
  stopReason: StopReason | null;
}

const MB = 2 ** 20;

/** Failures that isolation decided (not the trainer's own): their code also goes on the job's last event. */
const ISOLATION_CODES = new Set(['TASK_DELETED', 'TRAINING_MEMORY_LIMIT', 'TRAINING_TIME_QUOTA', 'WORKER_EXITED']);

function describeErrors(errors: RowError[], count: number, what: string): string {
  const shown = errors.slice(0, 5).map((e) => (e.line !== undefined ? `line ${e.line}: ${e.message}` : e.index !== undefined ? `[${e.index}]: ${e.message}` : e.message));
  return `${count} bad ${what} row${count === 1 ? '' : 's'}: ${shown.join('; ')}${count > shown.length ? `; ... (${count - shown.length} more in details.errors)` : ''}`;
}

export class TrainingManager {
  /** The store's training jobs. */
  readonly table: JobStore;
  private readonly worker: TrainingWorkerClient;
  private current: Running | null = null;
  private stopping = false;
  private started = false;
  private pumping = false;
  /** A pump was asked for while one was picking: pick again. */
  private pumpAgain = false;
  private repumpTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  readonly runnerName: string;
  private dims: ModelDims | null = null;
  private readonly metrics: {
    finished: Counter<'outcome'>;
    examplesPerSec: Gauge;
    workerExits: Counter;
  } | null = null;

  constructor(private readonly opts: TrainingManagerOptions) {
    const { config } = opts;
    this.worker = new TrainingWorkerClient(
      { modelDir: opts.modelDir, executionProvider: opts.executionProvider ?? 'cpu', intraOpThreads: config.intraOpThreads, niceness: config.niceness },
      opts.logger,
      { onExit: (code) => { if (!this.stopping) this.opts.logger?.error({ code }, 'training worker exited'); } },
    );
    this.table = opts.store.backend.jobs;
    this.runnerName = opts.runnerName ?? `${hostname()}:${process.pid}`;
    if (opts.registry) {
      const r = opts.registry;
      const table = this.table;
      this.metrics = {
        finished: new Counter({ name: 'softserve_training_jobs_finished_total', help: 'Training jobs that ended, by outcome', labelNames: ['outcome'], registers: [r] }),
        examplesPerSec: new Gauge({ name: 'softserve_training_examples_per_second', help: 'Training throughput of the running job (0 when idle)', registers: [r] }),
        workerExits: new Counter({ name: 'softserve_training_worker_exits_total', help: 'Training worker threads that died while a job ran (the job was requeued or failed, the worker restarted)', registers: [r] }),
      };
      new Gauge({
        name: 'softserve_training_jobs', help: 'Training jobs queued or running', labelNames: ['state'], registers: [r],
        async collect() {
          // A scrape while the database is away keeps the last counts (the rest of /metrics still matters then).
          const n = await table.countByState().catch(() => null);
          if (!n) return;
          this.set({ state: 'queued' }, n.queued);
          this.set({ state: 'running' }, n.running);
        },
      });
    }
  }

  get config(): TrainingConfig {
    return this.opts.config;
  }

  get enabled(): boolean {
    return this.opts.config.enabled;
  }

  /** Recovers jobs a previous process left running (SQLite: one process owns the file), then starts the queue. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    if (!this.opts.sharedQueue) await this.takeBack(true);
    if (this.enabled) this.pump();
  }

  /**
   * Jobs whose runner died: with `restart` (SQLite, at start) every running
   * job, else those whose lease expired. Each is cancelled (if asked),
   * failed (attempts used up) or queued again, only if its lease is still
   * the one seen (another runner taking it back first wins).
   */
  private async takeBack(restart: boolean): Promise<void> {
    const { maxAttempts } = this.opts.config;
    for (const row of await this.table.expired(restart)) {
      const give = (state: JobState, fields: JobFields, event: Record<string, unknown>) =>
        this.table.release(row.id, row.lease_owner, { ...fields, state }, { type: state, ...event }, !restart);
      const s = row.attempts === 1 ? '' : 's';
      let done: boolean;
      if (row.cancel_requested === 1) {
        done = await give('cancelled', { finished_at: now() }, { reason: restart ? 'the server restarted before the job stopped' : 'its trainer stopped before the job did' });
        if (done) this.metrics?.finished.inc({ outcome: 'cancelled' });
      } else if (row.attempts >= maxAttempts) {
        const message = restart
          ? `interrupted by a server restart after ${row.attempts} attempt${s}; not retried again`
          : `its trainer stopped renewing the job's lease (killed, or cut off from the database) on attempt ${row.attempts} of ${maxAttempts}; not retried again`;
        done = await give('failed', { finished_at: now(), error: JSON.stringify({ code: 'INTERNAL', message }) }, { reason: message });
        if (done) this.metrics?.finished.inc({ outcome: 'failed' });
      } else {
        done = await give('queued', { progress: null }, {
          type: 'requeued',
          reason: restart
            ? 'the server restarted while the job was running; it starts again from the beginning'
            : `its trainer stopped renewing the job's lease (killed, or cut off from the database); it starts again from the beginning (attempt ${row.attempts} of ${maxAttempts} used)`,
        });
      }
      if (done) this.opts.logger?.warn({ job: row.id, attempts: row.attempts, lease: row.lease_owner }, restart ? 'training job was interrupted by a restart' : 'training job\'s lease expired; taken back');
    }
  }

  // --- API ---------------------------------------------------------------------------

  private requireEnabled(): void {
    // Without a runner here, a job can only be accepted when trainer processes share the queue.
    if (!this.enabled && !this.opts.sharedQueue) throw new SoftserveError('NOT_READY', 'training is disabled on this server (SOFTSERVE_TRAINING=off)');
    if (this.stopping) throw new SoftserveError('DRAINING', 'the server is shutting down');
  }

  private parseExamples(input: ExamplesInput, labels: string[]): Parsed {
    const limits = { maxExamples: this.opts.config.maxExamples, maxTextChars: this.opts.config.maxTextChars };
    return 'jsonl' in input ? parseJsonl(input.jsonl, labels, limits) : parseArray(input.array, labels, limits);
  }

  async submit(tenantId: string, taskName: string, req: JobRequest): Promise<JobView> {
    this.requireEnabled();
    const { store } = this.opts;
    const task = await store.getTask(tenantId, taskName);
    const prompt = validateName('prompt', req.prompt);
    const options = parseTrainingOptions(req.options ?? {}, {
      maxVirtualTokens: store.limits.maxVirtualTokens, maxEnsembleSize: store.maxEnsembleSize, maxEpochs: 100, maxSteps: 100000,
    });
    if (options.method === 'linear_head' && task.scoring.type !== 'head') {
      throw new SoftserveError('INVALID_TASK', `method linear_head trains a linear head, but task ${JSON.stringify(taskName)} scores with a verbalizer`);
    }
    // A template with {soft:a-b} slots takes prompts of exactly their length: refuse now, not at publish.
    checkPromptFitsTemplate(softPlacement(task.template, parseTemplate(task.template), Number.MAX_SAFE_INTEGER), options.numVirtualTokens, methodKind(options.method));
    // Transfer and distillation sources, checked and pinned to versions (job-sources.ts).
    const pinned = await pinJobSources(store, tenantId, task, options);
    if (req.unlabelled && !options.distill) throw new SoftserveError('BAD_REQUEST', 'unlabelled texts are for method distill (the teacher labels them)');
    const unlabelled = req.unlabelled ? parseUnlabelled(req.unlabelled, { maxExamples: this.opts.config.maxExamples, maxTextChars: this.opts.config.maxTextChars }) : [];
    let ensembleName: string | null = null;
    if (options.ensembleSize > 1) {
      ensembleName = validateName('ensemble', req.ensemble ?? prompt);
      const members = this.memberNames(prompt, options.ensembleSize);
      members.forEach((m) => validateName('prompt', m));
      await this.checkEnsemble(tenantId, taskName, ensembleName, members);
    } else if (req.ensemble !== undefined && req.ensemble !== null) {
      throw new SoftserveError('BAD_REQUEST', 'an ensemble name needs options.ensemble_size > 1');
    }

    const parsed = this.parseExamples(req.examples, task.labels);
    if (parsed.errorCount > 0) {
      throw new SoftserveError('INVALID_EXAMPLES', describeErrors(parsed.errors, parsed.errorCount, 'example'), { errors: parsed.errors, error_count: parsed.errorCount });
    }
    if (parsed.examples.length < 2) throw new SoftserveError('INVALID_EXAMPLES', `a job needs at least 2 examples, got ${parsed.examples.length}`, { errors: [], error_count: 0 });
    let validation: Example[] | null = null;
    if (req.validation) {
      const v = this.parseExamples(req.validation, task.labels);
      if (v.errorCount > 0) {
        throw new SoftserveError('INVALID_EXAMPLES', describeErrors(v.errors, v.errorCount, 'validation'), { errors: v.errors.map((e) => ({ ...e, set: 'validation' })), error_count: v.errorCount });
      }
      validation = v.examples;
    }

    const { config } = this.opts;
    const budget = checkTrainingBudget(this.modelDims(), options, task.template, validation ? [...parsed.examples, ...validation] : parsed.examples,
      { memoryMb: config.memoryMb, maxBatchTokens: config.maxBatchTokens });
    if (await this.table.countActive(tenantId) >= config.maxActivePerTenant) {
      throw new SoftserveError('TRAINING_QUEUE_LIMIT', `this tenant already has ${config.maxActivePerTenant} training jobs queued or running (SOFTSERVE_TRAINING_MAX_ACTIVE_PER_TENANT); wait for one to finish or cancel one`,
        { limit: config.maxActivePerTenant, retryAfter: 30 });
    }
    if (await this.table.countActive() >= config.maxActive) {
      throw new SoftserveError('OVERLOADED', `the training queue is full (${config.maxActive} jobs, SOFTSERVE_TRAINING_MAX_ACTIVE)`, { retryAfter: 60 });
    }
    const quota = await this.quota(tenantId);
    if (quota && quota.remainingMs <= 0) {
      throw new SoftserveError('TRAINING_TIME_QUOTA',
        `this tenant used ${Math.round(quota.usedMs / 1000)} s of training in the last ${config.tenantWindowSeconds} s; the limit is ${config.tenantSeconds} s (SOFTSERVE_TRAINING_TENANT_SECONDS)`,
        { limit_seconds: config.tenantSeconds, used_seconds: Math.round(quota.usedMs / 1000), retryAfter: quota.retryAfterS });
    }
    const id = newJobId();
    // Unlabelled texts (distillation) are stored with the examples, label null.
    const encode = (xs: Example[], extra: string[] = []) => JSON.stringify([...xs.map((e) => [e.text, e.label]), ...extra.map((t) => [t, null])]);
    await this.table.insert({
      id, tenant_id: tenantId, task_name: taskName, task_created_at: task.createdAt, prompt_name: prompt, ensemble_name: ensembleName,
      state: 'queued', options: JSON.stringify(optionsView(pinned)), examples: encode(parsed.examples, unlabelled),
      validation: validation ? encode(validation) : null, num_examples: parsed.examples.length, created_at: now(),
      memory: JSON.stringify({ estimate_mb: Math.ceil(budget.estimate.bytes / MB), limit_mb: config.memoryMb }),
    });
    const counts = labelCounts(parsed.examples, task.labels.length);
    this.opts.logger?.info({ job: id, tenant: tenantId, task: taskName, method: options.method, examples: parsed.examples.length, counts }, 'training job queued');
    this.pump();
    this.opts.onQueued?.();
    return await this.get(tenantId, id);
  }

  private modelDims(): ModelDims {
    if (!this.dims) {
      let spec = this.opts.spec;
      if (!spec) {
        const ckpt = loadCheckpoint(this.opts.modelDir);
        spec = familyOf(ckpt).spec(ckpt);
      }
      this.dims = modelDimsOf(spec, this.opts.modelDir);
    }
    return this.dims;
  }

  /**
   * A tenant's training time in the quota window: finished attempts plus the
   * running one; null when there is no quota (SOFTSERVE_TRAINING_TENANT_SECONDS=0).
   */
  private async quota(tenantId: string): Promise<{ usedMs: number; remainingMs: number; retryAfterS: number } | null> {
    const { tenantSeconds, tenantWindowSeconds } = this.opts.config;
    if (tenantSeconds <= 0) return null;
    const windowMs = tenantWindowSeconds * 1000;
    const t = await this.table.trainingTime(tenantId, new Date(Date.now() - windowMs).toISOString());
    let usedMs = t.ms;
    if (this.current && this.current.row.tenant_id === tenantId) usedMs += performance.now() - this.current.startedAt;
    const remainingMs = tenantSeconds * 1000 - usedMs;
    // When the oldest counted attempt leaves the window (a running job's time frees no earlier than its end).
    const retryAfterS = t.oldest ? Math.max(1, Math.ceil((Date.parse(t.oldest) + windowMs - Date.now()) / 1000)) : Math.max(1, Math.ceil(-remainingMs / 1000));
    return { usedMs, remainingMs, retryAfterS };
  }

  /**
   * Test-only: makes the training worker thread exit as a crash would, from
   * inside (process.exit in a worker ends the thread). Not reachable from HTTP.
   */
  crashWorkerForTest(code = 70): boolean {
    return this.worker.crashForTest(code);
  }

  async get(tenantId: string, id: string): Promise<JobView> {
    const row = await this.table.getForTenant(tenantId, id);
    if (!row) throw new SoftserveError('NOT_FOUND', `no training job ${JSON.stringify(id)}`);
    const live = this.current && this.current.id === id ? { progress: this.current.progress, history: this.current.history } : undefined;
    return jobView(row, live);
  }

  async list(tenantId: string, task?: string): Promise<JobView[]> {
    if (task !== undefined) await this.opts.store.getTask(tenantId, task);
    return (await this.table.list(tenantId, task)).map((row) => {
      const live = this.current && this.current.id === row.id ? { progress: this.current.progress, history: this.current.history } : undefined;
      return jobView(row, live);
    });
  }

  async cancel(tenantId: string, id: string): Promise<JobView> {
    const row = await this.table.getForTenant(tenantId, id);
    if (!row) throw new SoftserveError('NOT_FOUND', `no training job ${JSON.stringify(id)}`);
    if (FINAL_STATES.includes(row.state)) throw new SoftserveError('CONFLICT', `job ${id} has already ${row.state === 'cancelled' ? 'been cancelled' : row.state}`);
    if (row.state === 'queued' && await this.table.transition(id, ['queued'], { state: 'cancelled', cancel_requested: 1, finished_at: now() })) {
      await this.table.appendEvent(id, { type: 'cancelled', reason: 'cancelled while queued' });
      this.metrics?.finished.inc({ outcome: 'cancelled' });
    } else {
      await this.table.update(id, { cancel_requested: 1 });
      await this.table.appendEvent(id, { type: 'cancel_requested' });
      if (this.current?.id === id) this.worker.cancel(id);
    }
    return await this.get(tenantId, id);
  }

  // --- running -------------------------------------------------------------------------

  private memberNames(prompt: string, n: number): string[] {
    return n > 1 ? Array.from({ length: n }, (_, i) => `${prompt}-${i + 1}`) : [prompt];
  }

  /** An existing ensemble must already be exactly these members (latest versions), or the job would conflict. */
  private async checkEnsemble(tenantId: string, task: string, name: string, members: string[]): Promise<boolean> {
    let existing;
    try {
      existing = await this.opts.store.getEnsemble(tenantId, task, name);
    } catch (err) {
      if (err instanceof SoftserveError && err.code === 'NOT_FOUND') return false;
      throw err;
    }
    const same = existing.members.length === members.length &&
      existing.members.every((m, i) => m.prompt === members[i] && (m.version === undefined || m.version === null));
    if (!same) {
      throw new SoftserveError('CONFLICT', `ensemble ${JSON.stringify(name)} already exists with other members; choose another ensemble name or delete it`);
    }
    return true;
  }

  private onProgress(cur: Running, p: Progress): void {
    cur.progress = p;
    this.metrics?.examplesPerSec.set(p.examplesPerSec);
    // One indexed read per step: the job stops at its next step once its task is gone.
    if (!cur.stopReason) {
      void this.table.taskDeleted(cur.id).then((deleted) => {
        if (deleted && this.current === cur) this.stopRunning(cur, { code: 'TASK_DELETED', message: `the task ${JSON.stringify(cur.row.task_name)} was deleted while the job ran; nothing was published` });
      }, (err: unknown) => this.opts.logger?.error({ err, job: cur.id }, 'could not read the job\'s task state'));
    }
    cur.dirty = true;
    if (performance.now() - cur.lastPersist >= this.opts.config.progressIntervalMs) this.beat(cur);
  }

  private onEval(cur: Running, point: EvalPoint): void {
    cur.history.push(point);
    cur.dirty = true;
    this.beat(cur);
  }

  /**
   * Renews the run's lease, writing the progress and history when they
   * changed (so every replica's GET shows them), and acts on what the row
   * says: a cancel asked on any replica, the task deleted, the lease lost.
   */
  private beat(cur: Running): void {
    if (cur.lost || cur.ended || cur.beating) return;
    cur.beating = true;
    const fields = cur.dirty ? { progress: JSON.stringify(cur.progress), history: JSON.stringify(cur.history) } : undefined;
    if (fields) {
      cur.dirty = false;
      cur.lastPersist = performance.now();
    }
    void this.table.heartbeat(cur.id, cur.lease, this.opts.config.leaseMs, fields).then((state) => {
      cur.beating = false;
      if (cur.ended || this.current !== cur) return;
      if (!state.held) {
        // Expired and taken back by another runner, or the row went with its tenant: stop, publish nothing.
        cur.lost = true;
        this.opts.logger?.warn({ job: cur.id, lease: cur.lease }, 'training job\'s lease was lost; stopping it and discarding its result');
        this.worker.cancel(cur.id);
        return;
      }
      if (state.cancelRequested) this.worker.cancel(cur.id);
      if (state.taskDeleted) this.stopRunning(cur, { code: 'TASK_DELETED', message: `the task ${JSON.stringify(cur.row.task_name)} was deleted while the job ran; nothing was published` });
    }, (err: unknown) => {
      cur.beating = false;
      if (fields) cur.dirty = true;
      this.opts.logger?.error({ err, job: cur.id }, 'could not renew the job\'s lease');
    });
  }

  /** Stops the running job at its next step; it then fails with `reason`. */
  private stopRunning(cur: Running, reason: StopReason): void {
    if (cur.stopReason) return;
    cur.stopReason = reason;
    this.opts.logger?.warn({ job: cur.id, code: reason.code }, reason.message);
    this.worker.cancel(cur.id);
  }

  /** Looks for a job now (one was queued in another process of this server). */
  wake(): void {
    this.pump();
  }

  private pump(): void {
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    if (this.current || this.stopping || !this.enabled) return;
    if (this.pollTimer) {
      clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }
    this.pumping = true;
    this.pumpAgain = false;
    void this.pickNext().then(async (next) => {
      if (!next) {
        this.pumping = false;
        // A job submitted while the queue was read: read it again.
        if (this.pumpAgain) this.pump();
        return;
      }
      await this.run(next).finally(() => {
        this.pumping = false;
        this.current = null;
        this.metrics?.examplesPerSec.set(0);
        setImmediate(() => this.pump());
      });
    }).catch((err: unknown) => {
      this.pumping = false;
      this.opts.logger?.error({ err }, 'the training queue could not be read');
      this.poll();
    });
  }

  /** On a shared queue an idle runner looks again after pollMs (jobs submitted on other replicas, leases that expired). */
  private poll(): void {
    if (!this.opts.sharedQueue || this.stopping || this.pollTimer) return;
    this.pollTimer = setTimeout(() => { this.pollTimer = null; this.pump(); }, this.opts.config.pollMs);
    this.pollTimer.unref();
  }

  /** Claims the next job to run, or undefined (then, when tenants wait for quota, a timer pumps again). */
  private async pickNext(): Promise<JobClaim | undefined> {
    await this.takeBack(false);
    // Tenants over their training-time quota wait; look again when the first of them has time.
    const waiting: Array<{ tenant: string; retryAfterS: number }> = [];
    for (const t of await this.table.queuedTenants()) {
      const q = await this.quota(t);
      if (q && q.remainingMs <= 0) waiting.push({ tenant: t, retryAfterS: q.retryAfterS });
    }
    const next = await this.table.claim(this.runnerName, this.opts.config.leaseMs, waiting.map((w) => w.tenant));
    if (!next) this.poll();
    if (!next && waiting.length > 0 && !this.repumpTimer) {
      const s = Math.min(...waiting.map((w) => w.retryAfterS));
      // At most an hour at a time (timers past about 24.8 days would fire at once).
      this.repumpTimer = setTimeout(() => { this.repumpTimer = null; this.pump(); }, Math.min(s, 3600) * 1000);
      this.repumpTimer.unref();
    }
    return next;
  }

  private async finish(cur: Running, state: 'failed' | 'cancelled', fields: JobFields, event: Record<string, unknown>): Promise<void> {
    if (await this.release(cur, { state, finished_at: now(), ...fields }, { type: state, ...event })) this.finished(cur.id, state, event);
  }

  /** Ends the run under its lease; false (and a log line) when the lease was lost: another runner owns the job now. */
  private async release(cur: Running, fields: JobFields & { state: JobState }, event: Record<string, unknown>): Promise<boolean> {
    cur.ended = true;
    if (cur.lost) return false;
    if (await this.table.release(cur.id, cur.lease, fields, event)) return true;
    cur.lost = true;
    this.opts.logger?.warn({ job: cur.id, lease: cur.lease, state: fields.state }, 'training job\'s lease was lost before its end was written; discarded');
    return false;
  }

  private finished(id: string, state: 'succeeded' | 'failed' | 'cancelled', event: Record<string, unknown>): void {
    this.metrics?.finished.inc({ outcome: state });
    this.opts.logger?.info({ job: id, state, ...event }, 'training job finished');
  }

  private async run(claim: JobClaim): Promise<void> {
    const row = claim.job;
    const attempts = row.attempts;
    const cur: Running = {
      id: row.id, row, lease: claim.lease, lost: false, ended: false, dirty: false, beating: false,
      progress: null, history: [], lastPersist: 0, startedAt: performance.now(), stopReason: null,
    };
    this.current = cur;
    this.opts.logger?.info({ job: row.id, tenant: row.tenant_id, attempt: attempts, lease: claim.lease }, 'training job claimed');
    // Heartbeats keep the claim while the job loads and trains (progress and evals beat too).
    const heartbeat = setInterval(() => this.beat(cur), Math.max(10, Math.min(this.opts.config.heartbeatMs, Math.floor(this.opts.config.leaseMs / 3))));
    heartbeat.unref();
    try {
      await this.runClaimed(cur, attempts);
    } finally {
      clearInterval(heartbeat);
      cur.ended = true;
    }
  }

  private async runClaimed(cur: Running, attempts: number): Promise<void> {
    const { row } = cur;
    let watch: MemoryWatch | null = null;
    // What this attempt cost: training time (for the tenant's quota) and peak memory growth (shown in the job).
    const accounted = (): JobFields => {
      const memory = { ...(JSON.parse(row.memory ?? '{}') as Record<string, unknown>), ...(watch ? { peak_growth_mb: Math.ceil(watch.peakGrowth / MB) } : {}) };
      return { train_ms: row.train_ms + Math.round(performance.now() - cur.startedAt), memory: JSON.stringify(memory) };
    };
    const fail = (code: string, message: string): Promise<void> => this.finish(cur, 'failed', { ...accounted(), error: JSON.stringify({ code, message }), progress: JSON.stringify(cur.progress), history: JSON.stringify(cur.history) }, { reason: message, ...(ISOLATION_CODES.has(code) ? { code } : {}) });
    if (await this.table.taskDeleted(row.id)) {
      await fail('TASK_DELETED', `the task ${JSON.stringify(row.task_name)} was deleted after the job was submitted; nothing was published`);
      return;
    }
    let task: Task;
    let options: TrainingOptions;
    try {
      task = await this.opts.store.getTask(row.tenant_id, row.task_name);
      if (task.createdAt !== row.task_created_at) throw new SoftserveError('NOT_FOUND', `task ${JSON.stringify(row.task_name)} was deleted and created again after the job was submitted`);
      options = parseTrainingOptions(JSON.parse(row.options));
    } catch (err) {
      const e = err as SoftserveError;
      await fail(e.code ?? 'INTERNAL', e.code === 'NOT_FOUND' ? `the job's task is gone: ${e.message}` : e.message);
      return;
    }
    const rows = (s: string) => JSON.parse(s) as Array<[string, number | null]>;
    const decode = (s: string): Example[] => rows(s).filter(([, label]) => label !== null).map(([text, label]) => ({ text, label: label! }));
    const stored = await this.table.examples(row.id);
    if (!stored) return;
    const examples = decode(stored.examples);
    const unlabelled = rows(stored.examples).filter(([, label]) => label === null).map(([text]) => text);
    let sources: JobSources;
    try {
      sources = await loadJobSources(this.opts.store, row.tenant_id, row.task_name, options);
    } catch (err) {
      const e = err as SoftserveError;
      await fail(e.code ?? 'INTERNAL', `a prompt the job starts from or learns from is gone: ${e.message}`);
      return;
    }
    const split = stored.validation
      ? { train: examples, heldOut: decode(stored.validation) }
      : splitHeldOut(examples, options.heldOutFraction, stream(options.seed, 'split'));

    let outcome: Outcome;
    let quotaTimer: NodeJS.Timeout | null = null;
    try {
      await this.worker.start();
      // The baseline is taken with the worker's model loaded: the ceiling is the job's own growth.
      const limitBytes = this.opts.config.memoryMb * MB;
      watch = new MemoryWatch({
        limitBytes, sampleMs: this.opts.config.memorySampleMs,
        onExceeded: (growth) => this.stopRunning(cur, {
          code: 'TRAINING_MEMORY_LIMIT',
          message: `the job's memory grew by ${Math.ceil(growth / MB)} MB, over the limit of ${this.opts.config.memoryMb} MB (SOFTSERVE_TRAINING_MEMORY_MB); it was stopped at its next step and the training worker restarted`,
        }),
      });
      const quota = await this.quota(row.tenant_id);
      if (quota) {
        quotaTimer = setTimeout(() => this.stopRunning(cur, {
          code: 'TRAINING_TIME_QUOTA',
          message: `the tenant reached its training time limit of ${this.opts.config.tenantSeconds} s per ${this.opts.config.tenantWindowSeconds} s (SOFTSERVE_TRAINING_TENANT_SECONDS) while the job ran; nothing was published`,
        }), Math.max(0, quota.remainingMs));
        quotaTimer.unref();
      }
      outcome = await this.worker.run(
        { jobId: row.id, task: { labels: task.labels, template: task.template, scoring: task.scoring }, train: split.train, heldOut: split.heldOut, options, extras: { ...sources, unlabelled } },
        { onProgress: (p) => this.onProgress(cur, p), onEval: (point) => this.onEval(cur, point) },
        (await this.table.get(row.id))?.cancel_requested === 1,
      );
    } catch (err) {
      const e = err as SoftserveError;
      await fail(e.code ?? 'INTERNAL', `the training worker could not start: ${e.message}`);
      return;
    } finally {
      if (quotaTimer) clearTimeout(quotaTimer);
      watch?.stop();
    }
    if (cur.stopReason?.code === 'TRAINING_MEMORY_LIMIT' && outcome.type !== 'exited') this.worker.retire();
    if (cur.lost) {
      this.opts.logger?.warn({ job: row.id, lease: cur.lease }, 'training job stopped after its lease was lost; nothing written');
      return;
    }
    if (outcome.type === 'exited') {
      if (cur.stopReason) {
        await fail(cur.stopReason.code, cur.stopReason.message);
      } else if (this.stopping) {
        await this.release(cur, { ...accounted(), state: 'queued', attempts: attempts - 1, progress: null, history: '[]' },
          { type: 'requeued', reason: 'the server shut down while the job was running; it starts again from the beginning' });
      } else {
        this.metrics?.workerExits.inc();
        const what = `the training worker exited (code ${outcome.code}) while the job was running`;
        if (attempts >= this.opts.config.maxAttempts) {
          await fail('WORKER_EXITED', `${what}, on attempt ${attempts} of ${this.opts.config.maxAttempts}; not retried again`);
        } else {
          await this.release(cur, { ...accounted(), state: 'queued', progress: null, history: '[]' },
            { type: 'requeued', code: 'WORKER_EXITED', reason: `${what}; the worker was restarted and the job starts again from the beginning (attempt ${attempts} of ${this.opts.config.maxAttempts} used)` });
          this.opts.logger?.warn({ job: row.id, attempts }, 'training job requeued after the worker exited');
        }
      }
      return;
    }
    if (outcome.type === 'failed') {
      await fail(outcome.code, outcome.message);
      return;
    }
    if (cur.stopReason) {
      // Stopped by the manager (task deleted, time quota): whatever the worker finished is not published.
      await fail(cur.stopReason.code, cur.stopReason.message);
      return;
    }
    if (outcome.cancelled) {
      if (this.stopping && (await this.table.get(row.id))?.cancel_requested !== 1) {
        // Graceful shutdown: back to the queue, this attempt not counted.
        await this.release(cur, { ...accounted(), state: 'queued', attempts: attempts - 1, progress: null, history: '[]' },
          { type: 'requeued', reason: 'the server shut down while the job was running; it starts again from the beginning' });
        return;
      }
      await this.finish(cur, 'cancelled', { ...accounted(), progress: JSON.stringify(cur.progress), history: JSON.stringify(cur.history) }, { reason: 'cancelled while running; nothing was published' });
      return;
    }
    try {
      cur.ended = true;
      const event = await this.publish(row, cur.lease, outcome.members, options, split.heldOut.length,
        { ...accounted(), progress: JSON.stringify(cur.progress), history: JSON.stringify(cur.history) });
      this.finished(row.id, 'succeeded', event);
    } catch (err) {
      const e = err as SoftserveError;
      cur.ended = false;
      if (await this.table.taskDeleted(row.id)) await fail('TASK_DELETED', `the task ${JSON.stringify(row.task_name)} was deleted while the job ran; nothing was published into a task created later under that name`);
      else await fail(e.code ?? 'INTERNAL', `publishing failed: ${e.message}`);
    }
  }

  /**
   * Publishes the trained prompts (and the ensemble) and marks the job
   * succeeded in one store operation: a task deleted (and perhaps re-created)
   * while the job ran gets nothing. Returns the job's lifecycle event.
   */
  private async publish(row: JobRow, lease: string, members: Array<{ tensors: PromptTensors; summary: MemberSummary }>, options: TrainingOptions, heldOutExamples: number, fields: JobFields): Promise<Record<string, unknown>> {
    const names = this.memberNames(row.prompt_name, members.length);
    // An existing ensemble of that name must already be exactly these members (CONFLICT otherwise).
    if (row.ensemble_name) await this.checkEnsemble(row.tenant_id, row.task_name, row.ensemble_name, names);
    let event: Record<string, unknown> = {};
    const trained = members.map(({ tensors, summary }, i) => ({ name: names[i]!, tensors, provenance: provenanceFor(row.id, options, summary, heldOutExamples) }));
    await this.opts.store.publishTrained(row.id, row.tenant_id, row.task_name, trained, row.ensemble_name, (versions: PromptVersionInfo[]) => {
      const prompts: PublishedMember[] = versions.map((v, i) => {
        const { summary } = members[i]!;
        return {
          name: v.name, version: v.version, seed: summary.seed, init: summary.init,
          held_out_accuracy: summary.heldOut?.accuracy ?? null, held_out_loss: summary.heldOut?.loss ?? null,
          steps: summary.steps, best_step: summary.bestStep, stopped_early: summary.stoppedEarly,
          wall_ms: Math.round(summary.wallMs), examples_per_sec: Math.round(summary.examplesPerSec * 10) / 10,
        };
      });
      const result: JobResult = { prompts, ensemble: row.ensemble_name };
      event = { published: prompts.map((p) => `${p.name}@${p.version}`), ensemble: result.ensemble };
      return { fields: { ...fields, result: JSON.stringify(result) }, event };
    }, lease);
    return event;
  }

  /** Stops the running job at its next step (it goes back to the queue), then the worker. */
  async stop(timeoutMs = 10000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.repumpTimer) clearTimeout(this.repumpTimer);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    const cur = this.current;
    if (cur) {
      this.worker.cancel(cur.id);
      const deadline = Date.now() + timeoutMs;
      while (this.current && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    }
    await this.worker.close();
    if (this.current) {
      // The worker did not stop in time: leave the row "running"; the next start requeues it.
      this.opts.logger?.warn({ job: this.current.id }, 'training job did not stop in time');
    }
  }
}
