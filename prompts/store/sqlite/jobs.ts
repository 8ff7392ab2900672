// Training jobs in SQLite (table of migration 5): one row per job; its
// examples live in the row, so a job survives a restart with everything it
// needs. Rows go with their tenant (ON DELETE CASCADE); deleting the task
// marks the job (trigger), and publish refuses such a job.
//
// Leases (migration 6): one process uses a SQLite file, so a claim is a
// BEGIN IMMEDIATE transaction and lease times are this process's clock; the
// semantics are PostgreSQL's (./postgres/jobs.ts), so the in-process runner
// runs the same code path as a trainer process on a fleet.

import { SoftserveError } from '../../../kernels/errors.ts';
import { newLeaseToken, type JobClaim, type JobFields, type JobRow, type JobState, type JobStore, type LeaseState, type NewJob, type PromptVersionInfo, type PublishRequest } from '../index.ts';
import { now, type SqliteContext } from './context.ts';
import { insertEnsemble } from './ensembles.ts';
import { insertVersion, withDurableTensors } from './prompt-versions.ts';

/** Every column but the examples (views and lists never need them). */
const COLUMNS = `id, tenant_id, task_name, task_created_at, prompt_name, ensemble_name, state, options, '' AS examples, NULL AS validation,
  num_examples, progress, history, result, error, cancel_requested, attempts, events, created_at, started_at, finished_at, updated_at,
  task_deleted_at, train_ms, memory, lease_owner, lease_expires_at`;

/** Column names a caller may set: the only strings that reach SQL text. */
const SETTABLE = new Set(['tenant_id', 'task_name', 'task_created_at', 'prompt_name', 'ensemble_name', 'state', 'options', 'examples', 'validation',
  'num_examples', 'progress', 'history', 'result', 'error', 'cancel_requested', 'attempts', 'events', 'created_at', 'started_at', 'finished_at',
  'task_deleted_at', 'train_ms', 'memory']);
const STATES = new Set<JobState>(['queued', 'running', 'succeeded', 'failed', 'cancelled']);

function setClause(fields: JobFields): string {
  const keys = Object.keys(fields);
  for (const k of keys) if (!SETTABLE.has(k)) throw new SoftserveError('INTERNAL', `not a job column: ${k}`);
  return [...keys.map((k) => `${k} = @${k}`), 'updated_at = @updated_at'].join(', ');
}

export class SqliteJobStore implements JobStore {
  constructor(private readonly c: SqliteContext) {}

  async insert(job: NewJob): Promise<void> {
    this.c.sql(`INSERT INTO training_jobs
      (id, tenant_id, task_name, task_created_at, prompt_name, ensemble_name, state, options, examples, validation, num_examples, created_at, updated_at, memory)
      VALUES (@id, @tenant_id, @task_name, @task_created_at, @prompt_name, @ensemble_name, @state, @options, @examples, @validation, @num_examples, @created_at, @created_at, @memory)`).run({ memory: null, ...job });
  }

  async examples(id: string): Promise<{ examples: string; validation: string | null } | undefined> {
    return this.c.sql('SELECT examples, validation FROM training_jobs WHERE id = ?').get(id) as { examples: string; validation: string | null } | undefined;
  }

  private taskDeletedSync(id: string): boolean {
    const r = this.c.sql('SELECT task_deleted_at FROM training_jobs WHERE id = ?').get(id) as { task_deleted_at: string | null } | undefined;
    return !r || r.task_deleted_at !== null;
  }

  async taskDeleted(id: string): Promise<boolean> {
    return this.taskDeletedSync(id);
  }

  private getSync(id: string): JobRow | undefined {
    return this.c.sql(`SELECT ${COLUMNS} FROM training_jobs WHERE id = ?`).get(id) as JobRow | undefined;
  }

  async get(id: string): Promise<JobRow | undefined> {
    return this.getSync(id);
  }

  async getForTenant(tenantId: string, id: string): Promise<JobRow | undefined> {
    return this.c.sql(`SELECT ${COLUMNS} FROM training_jobs WHERE id = ? AND tenant_id = ?`).get(id, tenantId) as JobRow | undefined;
  }

  async list(tenantId: string, task?: string, limit = 100): Promise<JobRow[]> {
    return (task === undefined
      ? this.c.sql(`SELECT ${COLUMNS} FROM training_jobs WHERE tenant_id = ? ORDER BY created_at DESC, id LIMIT ?`).all(tenantId, limit)
      : this.c.sql(`SELECT ${COLUMNS} FROM training_jobs WHERE tenant_id = ? AND task_name = ? ORDER BY created_at DESC, id LIMIT ?`).all(tenantId, task, limit)) as JobRow[];
  }

  async countActive(tenantId?: string): Promise<number> {
    const r = (tenantId === undefined
      ? this.c.sql(`SELECT COUNT(*) AS n FROM training_jobs WHERE state IN ('queued', 'running')`).get()
      : this.c.sql(`SELECT COUNT(*) AS n FROM training_jobs WHERE tenant_id = ? AND state IN ('queued', 'running')`).get(tenantId)) as { n: number };
    return r.n;
  }

  async countByState(): Promise<{ queued: number; running: number }> {
    const rows = this.c.sql(`SELECT state, COUNT(*) AS n FROM training_jobs WHERE state IN ('queued', 'running') GROUP BY state`).all() as Array<{ state: string; n: number }>;
    return { queued: rows.find((x) => x.state === 'queued')?.n ?? 0, running: rows.find((x) => x.state === 'running')?.n ?? 0 };
  }

  async nextQueued(exclude: readonly string[] = []): Promise<JobRow | undefined> {
    return this.nextQueuedSync(exclude);
  }

  private nextQueuedSync(exclude: readonly string[]): JobRow | undefined {
    const skip = exclude.length > 0 ? `AND j.tenant_id NOT IN (${exclude.map(() => '?').join(', ')})` : '';
    // Not cached: the statement's text depends on how many tenants are skipped.
    return this.c.db.prepare(`
      SELECT ${COLUMNS} FROM training_jobs j
      WHERE j.state = 'queued' ${skip}
      ORDER BY (SELECT MAX(s.started_at) FROM training_jobs s WHERE s.tenant_id = j.tenant_id) IS NOT NULL,
               (SELECT MAX(s.started_at) FROM training_jobs s WHERE s.tenant_id = j.tenant_id),
               j.created_at, j.id
      LIMIT 1`).get(...exclude) as JobRow | undefined;
  }

  async queuedTenants(): Promise<string[]> {
    return (this.c.sql(`SELECT DISTINCT tenant_id FROM training_jobs WHERE state = 'queued'`).all() as Array<{ tenant_id: string }>).map((r) => r.tenant_id);
  }

  async trainingTime(tenantId: string, sinceIso: string): Promise<{ ms: number; oldest: string | null }> {
    return this.c.sql(`SELECT COALESCE(SUM(train_ms), 0) AS ms, MIN(updated_at) AS oldest FROM training_jobs
      WHERE tenant_id = ? AND train_ms > 0 AND updated_at > ?`).get(tenantId, sinceIso) as { ms: number; oldest: string | null };
  }

  async running(): Promise<JobRow[]> {
    return this.c.sql(`SELECT ${COLUMNS} FROM training_jobs WHERE state = 'running'`).all() as JobRow[];
  }

  private updateSync(id: string, fields: JobFields): boolean {
    return this.c.db.prepare(`UPDATE training_jobs SET ${setClause(fields)} WHERE id = @id`).run({ ...fields, updated_at: now(), id }).changes > 0;
  }

  async update(id: string, fields: JobFields): Promise<boolean> {
    return this.updateSync(id, fields);
  }

  private transitionSync(id: string, from: JobState[], fields: JobFields & { state: JobState }): boolean {
    for (const s of from) if (!STATES.has(s)) throw new SoftserveError('INTERNAL', `not a job state: ${s}`);
    return this.c.db.prepare(`UPDATE training_jobs SET ${setClause(fields)} WHERE id = @id AND state IN (${from.map((s) => `'${s}'`).join(', ')})`)
      .run({ ...fields, updated_at: now(), id }).changes > 0;
  }

  async transition(id: string, from: JobState[], fields: JobFields & { state: JobState }): Promise<boolean> {
    return this.transitionSync(id, from, fields);
  }

  private appendEventSync(id: string, event: Record<string, unknown>): void {
    const row = this.getSync(id);
    if (!row) return;
    const events = JSON.parse(row.events) as unknown[];
    events.push({ at: now(), ...event });
    this.updateSync(id, { events: JSON.stringify(events) });
  }

  async appendEvent(id: string, event: Record<string, unknown>): Promise<void> {
    this.c.tx(() => this.appendEventSync(id, event));
  }

  async claim(owner: string, leaseMs: number, exclude: readonly string[] = []): Promise<JobClaim | undefined> {
    return this.c.tx(() => {
      const next = this.nextQueuedSync(exclude);
      if (!next) return undefined;
      const lease = newLeaseToken(owner);
      const at = now();
      this.c.sql(`UPDATE training_jobs SET state = 'running', started_at = @at, attempts = attempts + 1, lease_owner = @lease,
        lease_expires_at = @expires, updated_at = @at WHERE id = @id AND state = 'queued'`)
        .run({ at, lease, expires: new Date(Date.now() + leaseMs).toISOString(), id: next.id });
      return { job: this.getSync(next.id)!, lease };
    });
  }

  async heartbeat(id: string, lease: string, leaseMs: number, fields: JobFields = {}): Promise<LeaseState> {
    return this.c.tx(() => {
      const changed = this.c.db.prepare(`UPDATE training_jobs SET ${setClause(fields)}, lease_expires_at = @lease_until
        WHERE id = @id AND state = 'running' AND lease_owner = @lease_token`)
        .run({ ...fields, updated_at: now(), lease_until: new Date(Date.now() + leaseMs).toISOString(), id, lease_token: lease }).changes > 0;
      if (!changed) return { held: false, cancelRequested: false, taskDeleted: false };
      const r = this.c.sql('SELECT cancel_requested, task_deleted_at FROM training_jobs WHERE id = ?').get(id) as { cancel_requested: number; task_deleted_at: string | null };
      return { held: true, cancelRequested: r.cancel_requested === 1, taskDeleted: r.task_deleted_at !== null };
    });
  }

  async expired(all = false): Promise<JobRow[]> {
    return (all
      ? this.c.sql(`SELECT ${COLUMNS} FROM training_jobs WHERE state = 'running'`).all()
      : this.c.sql(`SELECT ${COLUMNS} FROM training_jobs WHERE state = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < ?)`).all(now())) as JobRow[];
  }

  async release(id: string, lease: string | null, fields: JobFields & { state: JobState }, event: Record<string, unknown>, onlyIfExpired = false): Promise<boolean> {
    if (!STATES.has(fields.state)) throw new SoftserveError('INTERNAL', `not a job state: ${fields.state}`);
    return this.c.tx(() => {
      const at = now();
      const changed = this.c.db.prepare(`UPDATE training_jobs SET ${setClause(fields)}, lease_owner = NULL, lease_expires_at = NULL
        WHERE id = @id AND state = 'running' AND lease_owner IS @lease_token
        ${onlyIfExpired ? 'AND (lease_expires_at IS NULL OR lease_expires_at < @updated_at)' : ''}`)
        .run({ ...fields, updated_at: at, id, lease_token: lease }).changes > 0;
      if (changed) this.appendEventSync(id, event);
      return changed;
    });
  }

  async publish(jobId: string, req: PublishRequest): Promise<PromptVersionInfo[]> {
    const job = this.getSync(jobId);
    if (!job) throw new SoftserveError('NOT_FOUND', `no training job ${JSON.stringify(jobId)}`);
    return withDurableTensors(this.c, req.members.map((m) => m.write), (hashes) => {
      // Checked in the write's transaction: a task deleted (and perhaps re-created) while the job ran gets nothing.
      if (this.taskDeletedSync(jobId)) throw new SoftserveError('NOT_FOUND', `the task ${JSON.stringify(job.task_name)} the job was submitted to was deleted`);
      const current = this.getSync(jobId)!;
      if (current.state !== 'running') throw new SoftserveError('CONFLICT', `job ${jobId} is ${current.state}, not running: nothing published`);
      if (req.lease !== undefined && current.lease_owner !== req.lease) throw new SoftserveError('CONFLICT', `job ${jobId} is no longer held by this runner (its lease expired and was taken back): nothing published`);
      const versions = req.members.map((m, i) => insertVersion(this.c, job.tenant_id, job.task_name, m.name, m.write, hashes[i]!));
      if (req.ensemble !== null) {
        const t = this.c.taskRow(job.tenant_id, job.task_name);
        if (!this.c.sql('SELECT 1 FROM ensembles WHERE task_id = ? AND name = ?').get(t.id, req.ensemble)) {
          insertEnsemble(this.c, job.tenant_id, job.task_name, req.ensemble, req.members.map((m) => ({ prompt: m.name })), null);
        }
      }
      const { fields, event } = req.finish(versions);
      this.transitionSync(jobId, ['running'], { ...fields, state: 'succeeded', finished_at: now() });
      this.c.sql('UPDATE training_jobs SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ?').run(jobId);
      this.appendEventSync(jobId, { type: 'succeeded', ...event });
      return versions;
    });
  }
}
