// Training jobs in PostgreSQL: one row per job, its examples in the row, so a
// job survives a restart with everything it needs. Rows go with their tenant
// (ON DELETE CASCADE); deleting the task marks the job (tasks.ts), and
// publish refuses such a job.

import { SoftserveError } from '../../../kernels/errors.ts';
import type { JobFields, JobRow, JobState, JobStore, NewJob, PromptVersionInfo, PublishRequest } from '../index.ts';
import { now, type PgContext } from './context.ts';
import type { Queryable } from './db.ts';
import { insertEnsemble } from './ensembles.ts';
import { insertVersion } from './prompt-versions.ts';

/** Every column but the examples (views and lists never need them); train_ms narrowed from BIGINT to a JS number. */
const COLUMNS = `id, tenant_id, task_name, task_created_at, prompt_name, ensemble_name, state, options, '' AS examples, NULL AS validation,
  num_examples, progress, history, result, error, cancel_requested, attempts, events, created_at, started_at, finished_at, updated_at,
  task_deleted_at, train_ms::float8 AS train_ms, memory`;

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
      ORDER BY (SELECT MAX(s.started_at) FROM training_jobs s WHERE s.tenant_id = j.tenant_id) IS NOT NULL,
               (SELECT MAX(s.started_at) FROM training_jobs s WHERE s.tenant_id = j.tenant_id),
               j.created_at, j.id
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
      const versions: PromptVersionInfo[] = [];
      for (const m of req.members) versions.push(await insertVersion(this.c, db, job.tenant_id, job.task_name, m.name, m.write));
      if (req.ensemble !== null) {
        const exists = await db.query(`SELECT 1 FROM ensembles e JOIN tasks t ON t.id = e.task_id WHERE t.tenant_id = $1 AND t.name = $2 AND e.name = $3`,
          [job.tenant_id, job.task_name, req.ensemble]);
        if (exists.rowCount === 0) await insertEnsemble(this.c, db, job.tenant_id, job.task_name, req.ensemble, req.members.map((m) => ({ prompt: m.name })), null);
      }
      const { fields, event } = req.finish(versions);
      await transitionRow(db, jobId, ['running'], { ...fields, state: 'succeeded', finished_at: now() });
      await appendEventRow(db, jobId, { type: 'succeeded', ...event });
      return versions;
    });
  }
}
