// Training jobs in PostgreSQL: one row per job, its examples in the row, so a
// job survives a restart with everything it needs. Rows go with their tenant
// (ON DELETE CASCADE); deleting the task marks the job (tasks.ts), and
// publish refuses such a job.
//
// Leases (migration 2) are the job queue of a fleet: a trainer claims with
// SELECT ... FOR UPDATE SKIP LOCKED in one transaction (two trainers never
// get the same job, neither waits on the other's row), renews the lease with
// heartbeats, and every later write of the run (progress, the end, publish)
// names its lease token, so a trainer whose lease expired and was taken back
// writes nothing. Lease times are the database's clock (clock_timestamp()):
// trainers on other machines need not agree on theirs. Why not pg-boss: the
// jobs already live in this table, publish must be one transaction with the
// job row, and the fair pick across tenants is a query on this table.

import { SoftserveError } from '../../../kernels/errors.ts';
import { newLeaseToken, type JobClaim, type JobFields, type JobRow, type JobState, type JobStore, type LeaseState, type NewJob, type PromptVersionInfo, type PublishRequest } from '../index.ts';
import { now, type PgContext } from './context.ts';
import type { Queryable } from './db.ts';
import { insertEnsemble } from './ensembles.ts';
import { insertVersion } from './prompt-versions.ts';

/** Every column but the examples (views and lists never need them); train_ms narrowed from BIGINT to a JS number. */
const COLUMNS = `id, tenant_id, task_name, task_created_at, prompt_name, ensemble_name, state, options, '' AS examples, NULL AS validation,
  num_examples, progress, history, result, error, cancel_requested, attempts, events, created_at, started_at, finished_at, updated_at,
  task_deleted_at, train_ms::float8 AS train_ms, memory, lease_owner,
  to_char(lease_expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS lease_expires_at`;

/** The fair pick (as nextQueued): tenants that never started a job first, then the one whose last start is oldest. */
const FAIR_ORDER = `ORDER BY (SELECT MAX(s.started_at) FROM training_jobs s WHERE s.tenant_id = j.tenant_id) IS NOT NULL,
               (SELECT MAX(s.started_at) FROM training_jobs s WHERE s.tenant_id = j.tenant_id),
               j.created_at, j.id`;

/** Column names a caller may set: the only strings that reach SQL text. */
const SETTABLE = new Set(['tenant_id', 'task_name', 'task_created_at', 'prompt_name', 'ensemble_name', 'state', 'options', 'examples', 'validation',
  'num_examples', 'progress', 'history', 'result', 'error', 'cancel_requested', 'attempts', 'events', 'created_at', 'started_at', 'finished_at',
  'task_deleted_at', 'train_ms', 'memory']);
const STATES = new Set<JobState>(['queued', 'running', 'succeeded', 'failed', 'cancelled']);

/** `SET a = $2, b = $3, updated_at = $n` and its values ($1 is the id). */
function setClause(fields: JobFields): { sql: string; values: unknown[] } {
  const keys = Object.keys(fields) as Array<keyof JobFields>;
  for (const k of keys) if (!SETTABLE.has(k)) throw new SoftserveError('INTERNAL', `not a job column: ${k}`);
  const values: unknown[] = keys.map((k) => fields[k]);
  values.push(now());
  return { sql: [...keys.map((k, i) => `${k} = $${i + 2}`), `updated_at = $${keys.length + 2}`].join(', '), values };
}

async function updateRow(db: Queryable, id: string, fields: JobFields): Promise<boolean> {
  const { sql, values } = setClause(fields);
  return (await db.query(`UPDATE training_jobs SET ${sql} WHERE id = $1`, [id, ...values])).rowCount! > 0;
}

async function transitionRow(db: Queryable, id: string, from: JobState[], fields: JobFields & { state: JobState }): Promise<boolean> {
  for (const s of from) if (!STATES.has(s)) throw new SoftserveError('INTERNAL', `not a job state: ${s}`);
  const { sql, values } = setClause(fields);
  return (await db.query(`UPDATE training_jobs SET ${sql} WHERE id = $1 AND state IN (${from.map((s) => `'${s}'`).join(', ')})`, [id, ...values])).rowCount! > 0;
}

/** Appends a lifecycle event, the row locked so concurrent appends do not lose one another (inside the caller's transaction). */
async function appendEventRow(db: Queryable, id: string, event: Record<string, unknown>): Promise<void> {
  const row = (await db.query<{ events: string }>('SELECT events FROM training_jobs WHERE id = $1 FOR UPDATE', [id])).rows[0];
  if (!row) return;
  const events = JSON.parse(row.events) as unknown[];
  events.push({ at: now(), ...event });
  await updateRow(db, id, { events: JSON.stringify(events) });
}

export class PgJobStore implements JobStore {
  constructor(private readonly c: PgContext) {}

  async insert(job: NewJob): Promise<void> {
    await this.c.pool.query(`INSERT INTO training_jobs
      (id, tenant_id, task_name, task_created_at, prompt_name, ensemble_name, state, options, examples, validation, num_examples, created_at, updated_at, memory)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)`,
    [job.id, job.tenant_id, job.task_name, job.task_created_at, job.prompt_name, job.ensemble_name, job.state, job.options, job.examples,
      job.validation, job.num_examples, job.created_at, job.memory ?? null]);
  }

  async examples(id: string): Promise<{ examples: string; validation: string | null } | undefined> {
    return (await this.c.pool.query<{ examples: string; validation: string | null }>('SELECT examples, validation FROM training_jobs WHERE id = $1', [id])).rows[0];
  }

  async taskDeleted(id: string): Promise<boolean> {
    const r = (await this.c.pool.query<{ task_deleted_at: string | null }>('SELECT task_deleted_at FROM training_jobs WHERE id = $1', [id])).rows[0];
    return !r || r.task_deleted_at !== null;
  }

  async get(id: string): Promise<JobRow | undefined> {
    return (await this.c.pool.query<JobRow>(`SELECT ${COLUMNS} FROM training_jobs WHERE id = $1`, [id])).rows[0];
  }

  async getForTenant(tenantId: string, id: string): Promise<JobRow | undefined> {
    return (await this.c.pool.query<JobRow>(`SELECT ${COLUMNS} FROM training_jobs WHERE id = $1 AND tenant_id = $2`, [id, tenantId])).rows[0];
  }

  async list(tenantId: string, task?: string, limit = 100): Promise<JobRow[]> {
    return (task === undefined
      ? await this.c.pool.query<JobRow>(`SELECT ${COLUMNS} FROM training_jobs WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT $2`, [tenantId, limit])
      : await this.c.pool.query<JobRow>(`SELECT ${COLUMNS} FROM training_jobs WHERE tenant_id = $1 AND task_name = $2 ORDER BY created_at DESC, id LIMIT $3`, [tenantId, task, limit])).rows;
  }

  async countActive(tenantId?: string): Promise<number> {
    const r = tenantId === undefined
      ? await this.c.pool.query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM training_jobs WHERE state IN ('queued', 'running')`)
      : await this.c.pool.query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM training_jobs WHERE tenant_id = $1 AND state IN ('queued', 'running')`, [tenantId]);
    return r.rows[0]!.n;
  }

  async countByState(): Promise<{ queued: number; running: number }> {
    const rows = (await this.c.pool.query<{ state: string; n: number }>(`SELECT state, COUNT(*)::int AS n FROM training_jobs WHERE state IN ('queued', 'running') GROUP BY state`)).rows;
    return { queued: rows.find((x) => x.state === 'queued')?.n ?? 0, running: rows.find((x) => x.state === 'running')?.n ?? 0 };
  }

  async nextQueued(exclude: readonly string[] = []): Promise<JobRow | undefined> {
    // Tenants that never started a job first (false sorts before true), then the one whose last start is oldest.
    return (await this.c.pool.query<JobRow>(`
      SELECT ${COLUMNS} FROM training_jobs j
      WHERE j.state = 'queued' AND NOT (j.tenant_id = ANY($1::text[]))
      ${FAIR_ORDER}
      LIMIT 1`, [[...exclude]])).rows[0];
  }

  async queuedTenants(): Promise<string[]> {
    return (await this.c.pool.query<{ tenant_id: string }>(`SELECT DISTINCT tenant_id FROM training_jobs WHERE state = 'queued'`)).rows.map((r) => r.tenant_id);
  }

  async trainingTime(tenantId: string, sinceIso: string): Promise<{ ms: number; oldest: string | null }> {
    return (await this.c.pool.query<{ ms: number; oldest: string | null }>(`SELECT COALESCE(SUM(train_ms), 0)::float8 AS ms, MIN(updated_at) AS oldest FROM training_jobs
      WHERE tenant_id = $1 AND train_ms > 0 AND updated_at > $2`, [tenantId, sinceIso])).rows[0]!;
  }

  async running(): Promise<JobRow[]> {
    return (await this.c.pool.query<JobRow>(`SELECT ${COLUMNS} FROM training_jobs WHERE state = 'running'`)).rows;
  }

  async update(id: string, fields: JobFields): Promise<boolean> {
    return updateRow(this.c.pool, id, fields);
  }

  async transition(id: string, from: JobState[], fields: JobFields & { state: JobState }): Promise<boolean> {
    return transitionRow(this.c.pool, id, from, fields);
  }

  async appendEvent(id: string, event: Record<string, unknown>): Promise<void> {
    await this.c.tx((db) => appendEventRow(db, id, event));
  }

  async claim(owner: string, leaseMs: number, exclude: readonly string[] = []): Promise<JobClaim | undefined> {
    return this.c.tx(async (db) => {
      // SKIP LOCKED: a row another trainer is claiming right now is passed over, not waited for.
      const next = (await db.query<{ id: string }>(`SELECT j.id FROM training_jobs j
        WHERE j.state = 'queued' AND NOT (j.tenant_id = ANY($1::text[]))
        ${FAIR_ORDER} LIMIT 1 FOR UPDATE OF j SKIP LOCKED`, [[...exclude]])).rows[0];
      if (!next) return undefined;
      const lease = newLeaseToken(owner);
      const at = now();
      const job = (await db.query<JobRow>(`UPDATE training_jobs SET state = 'running', started_at = $2, attempts = attempts + 1, lease_owner = $3,
        lease_expires_at = clock_timestamp() + $4 * interval '1 millisecond', updated_at = $2 WHERE id = $1 RETURNING ${COLUMNS}`,
      [next.id, at, lease, leaseMs])).rows[0]!;
      return { job, lease };
    });
  }

  async heartbeat(id: string, lease: string, leaseMs: number, fields: JobFields = {}): Promise<LeaseState> {
    const { sql, values } = setClause(fields);
    const n = values.length + 2;
    const r = (await this.c.pool.query<{ cancel_requested: number; task_deleted_at: string | null }>(`UPDATE training_jobs
      SET ${sql}, lease_expires_at = clock_timestamp() + $${n + 1} * interval '1 millisecond'
      WHERE id = $1 AND state = 'running' AND lease_owner = $${n} RETURNING cancel_requested, task_deleted_at`,
    [id, ...values, lease, leaseMs])).rows[0];
    return r ? { held: true, cancelRequested: r.cancel_requested === 1, taskDeleted: r.task_deleted_at !== null } : { held: false, cancelRequested: false, taskDeleted: false };
  }

  async expired(all = false): Promise<JobRow[]> {
    return (await this.c.pool.query<JobRow>(`SELECT ${COLUMNS} FROM training_jobs WHERE state = 'running'
      ${all ? '' : 'AND (lease_expires_at IS NULL OR lease_expires_at < clock_timestamp())'}`)).rows;
  }

  async release(id: string, lease: string | null, fields: JobFields & { state: JobState }, event: Record<string, unknown>, onlyIfExpired = false): Promise<boolean> {
    if (!STATES.has(fields.state)) throw new SoftserveError('INTERNAL', `not a job state: ${fields.state}`);
    return this.c.tx(async (db) => {
      const { sql, values } = setClause(fields);
      const n = values.length + 2;
      // The row lock of the UPDATE orders this against a heartbeat: whichever comes second sees the other's outcome.
      const changed = (await db.query(`UPDATE training_jobs SET ${sql}, lease_owner = NULL, lease_expires_at = NULL
        WHERE id = $1 AND state = 'running' AND lease_owner IS NOT DISTINCT FROM $${n}::text
        ${onlyIfExpired ? 'AND (lease_expires_at IS NULL OR lease_expires_at < clock_timestamp())' : ''}`, [id, ...values, lease])).rowCount! > 0;
      if (changed) await appendEventRow(db, id, event);
      return changed;
    });
  }

  async publish(jobId: string, req: PublishRequest): Promise<PromptVersionInfo[]> {
    return this.c.tx(async (db) => {
      const seen = (await db.query<{ tenant_id: string; task_name: string }>('SELECT tenant_id, task_name FROM training_jobs WHERE id = $1', [jobId])).rows[0];
      if (!seen) throw new SoftserveError('NOT_FOUND', `no training job ${JSON.stringify(jobId)}`);
      const gone = () => new SoftserveError('NOT_FOUND', `the task ${JSON.stringify(seen.task_name)} the job was submitted to was deleted`);
      // Locks in the order a task delete takes them (task, then its jobs), so the two cannot deadlock. The task
      // is locked for update up front, not upgraded later from the versions' key-share lock (two publishers would deadlock).
      try {
        await this.c.taskRow(db, seen.tenant_id, seen.task_name, 'FOR UPDATE');
      } catch (err) {
        if (err instanceof SoftserveError && err.code === 'NOT_FOUND') throw gone();
        throw err;
      }
      // Then the job: a concurrent cancel or a second publish waits, then sees the outcome.
      const job = (await db.query<JobRow>(`SELECT ${COLUMNS} FROM training_jobs WHERE id = $1 FOR UPDATE`, [jobId])).rows[0];
      if (!job) throw new SoftserveError('NOT_FOUND', `no training job ${JSON.stringify(jobId)}`);
      if (job.task_deleted_at !== null) throw gone();
      if (job.state !== 'running') throw new SoftserveError('CONFLICT', `job ${jobId} is ${job.state}, not running: nothing published`);
      if (req.lease !== undefined && job.lease_owner !== req.lease) throw new SoftserveError('CONFLICT', `job ${jobId} is no longer held by this runner (its lease expired and was taken back): nothing published`);
      const versions: PromptVersionInfo[] = [];
      for (const m of req.members) versions.push(await insertVersion(this.c, db, job.tenant_id, job.task_name, m.name, m.write));
      if (req.ensemble !== null) {
        const exists = await db.query(`SELECT 1 FROM ensembles e JOIN tasks t ON t.id = e.task_id WHERE t.tenant_id = $1 AND t.name = $2 AND e.name = $3`,
          [job.tenant_id, job.task_name, req.ensemble]);
        if (exists.rowCount === 0) await insertEnsemble(this.c, db, job.tenant_id, job.task_name, req.ensemble, req.members.map((m) => ({ prompt: m.name })), null);
      }
      const { fields, event } = req.finish(versions);
      await transitionRow(db, jobId, ['running'], { ...fields, state: 'succeeded', finished_at: now() });
      await db.query('UPDATE training_jobs SET lease_owner = NULL, lease_expires_at = NULL WHERE id = $1', [jobId]);
      await appendEventRow(db, jobId, { type: 'succeeded', ...event });
      return versions;
    });
  }
}
