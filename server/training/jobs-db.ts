// Training jobs in the store's SQLite database: one row per job, created
// beside the store's own tables (CREATE TABLE IF NOT EXISTS, so the store's
// migrations stay the store's). A job's examples live in its row, so a job
// survives a restart with everything it needs. Rows go with their tenant
// (ON DELETE CASCADE).

import { randomBytes } from 'node:crypto';
import type { Db } from '../../prompts/db.ts';

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const FINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

export interface JobRow {
  id: string;
  tenant_id: string;
  task_name: string;
  task_created_at: string;
  prompt_name: string;
  ensemble_name: string | null;
  state: JobState;
  options: string;
  examples: string;
  validation: string | null;
  num_examples: number;
  progress: string | null;
  history: string;
  result: string | null;
  error: string | null;
  cancel_requested: number;
  attempts: number;
  events: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
  /** Set (by a trigger) when the job's task is deleted: the job must never publish into a task of the same name created later. */
  task_deleted_at: string | null;
  /** Training time of this job's attempts so far (for the tenant's time quota). */
  train_ms: number;
  /** JSON {estimate_mb, limit_mb, peak_growth_mb}: the memory budget and what the job used. */
  memory: string | null;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS training_jobs (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    task_name         TEXT NOT NULL,
    task_created_at   TEXT NOT NULL,  -- the task as it was at submit (a re-created task is another task)
    prompt_name       TEXT NOT NULL,
    ensemble_name     TEXT,
    state             TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    options           TEXT NOT NULL,  -- JSON, the API's snake_case options after defaults
    examples          TEXT NOT NULL,  -- JSON [[text, label index], ...]
    validation        TEXT,           -- JSON, same form, or NULL (held out from examples)
    num_examples      INTEGER NOT NULL,
    progress          TEXT,           -- JSON: the latest progress report
    history           TEXT NOT NULL DEFAULT '[]',  -- JSON: held-out evaluations
    result            TEXT,           -- JSON: published prompt versions and ensemble
    error             TEXT,           -- JSON {code, message}
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL DEFAULT 0,
    events            TEXT NOT NULL DEFAULT '[]',  -- JSON: lifecycle notes (restarts, cancel)
    created_at        TEXT NOT NULL,
    started_at        TEXT,
    finished_at       TEXT,
    updated_at        TEXT NOT NULL
  ) STRICT;
  CREATE INDEX IF NOT EXISTS training_jobs_tenant ON training_jobs(tenant_id, created_at);
  CREATE INDEX IF NOT EXISTS training_jobs_state ON training_jobs(state, created_at);
`;

/** Columns added after the table first shipped (added to existing databases at open). */
const ADDED_COLUMNS: Array<[string, string]> = [
  ['task_deleted_at', 'TEXT'],
  ['train_ms', 'INTEGER NOT NULL DEFAULT 0'],
  ['memory', 'TEXT'],
];

// A job is bound to its task row, not to the name: deleting the task marks
// its unfinished jobs in the same transaction, so a task re-created under the
// same name (even one that reuses the row id) is never mistaken for it.
const TRIGGERS = `
  CREATE TRIGGER IF NOT EXISTS training_jobs_task_deleted AFTER DELETE ON tasks
  BEGIN
    UPDATE training_jobs SET task_deleted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE tenant_id = OLD.tenant_id AND task_name = OLD.name AND task_deleted_at IS NULL
      AND state IN ('queued', 'running');
  END;
`;

export function now(): string {
  return new Date().toISOString();
}

export function newJobId(): string {
  return `job_${randomBytes(12).toString('base64url')}`;
}

/** Every column but the examples (views and lists never need them). */
const COLUMNS = `id, tenant_id, task_name, task_created_at, prompt_name, ensemble_name, state, options, '' AS examples, NULL AS validation,
  num_examples, progress, history, result, error, cancel_requested, attempts, events, created_at, started_at, finished_at, updated_at,
  task_deleted_at, train_ms, memory`;

export class JobsTable {
  constructor(readonly db: Db) {
    db.exec(SCHEMA);
    const have = new Set((db.prepare('PRAGMA table_info(training_jobs)').all() as Array<{ name: string }>).map((c) => c.name));
    for (const [name, type] of ADDED_COLUMNS) if (!have.has(name)) db.exec(`ALTER TABLE training_jobs ADD COLUMN ${name} ${type}`);
    db.exec(TRIGGERS);
  }

  /** A job's examples and validation set (JSON), read only when it runs. */
  examples(id: string): { examples: string; validation: string | null } | undefined {
    return this.db.prepare('SELECT examples, validation FROM training_jobs WHERE id = ?').get(id) as { examples: string; validation: string | null } | undefined;
  }

  insert(row: Omit<JobRow, 'progress' | 'history' | 'result' | 'error' | 'cancel_requested' | 'attempts' | 'events' | 'started_at' | 'finished_at' | 'updated_at' | 'task_deleted_at' | 'train_ms' | 'memory'> & { memory?: string | null }): void {
    this.db.prepare(`INSERT INTO training_jobs
      (id, tenant_id, task_name, task_created_at, prompt_name, ensemble_name, state, options, examples, validation, num_examples, created_at, updated_at, memory)
      VALUES (@id, @tenant_id, @task_name, @task_created_at, @prompt_name, @ensemble_name, @state, @options, @examples, @validation, @num_examples, @created_at, @created_at, @memory)`).run({ memory: null, ...row });
  }

  /** Whether the job's task was deleted after it was submitted. */
  taskDeleted(id: string): boolean {
    const r = this.db.prepare('SELECT task_deleted_at FROM training_jobs WHERE id = ?').get(id) as { task_deleted_at: string | null } | undefined;
    return !r || r.task_deleted_at !== null;
  }

  get(id: string): JobRow | undefined {
    return this.db.prepare(`SELECT ${COLUMNS} FROM training_jobs WHERE id = ?`).get(id) as JobRow | undefined;
  }

  getForTenant(tenantId: string, id: string): JobRow | undefined {
    return this.db.prepare(`SELECT ${COLUMNS} FROM training_jobs WHERE id = ? AND tenant_id = ?`).get(id, tenantId) as JobRow | undefined;
  }

  list(tenantId: string, task?: string, limit = 100): JobRow[] {
    return (task === undefined
      ? this.db.prepare(`SELECT ${COLUMNS} FROM training_jobs WHERE tenant_id = ? ORDER BY created_at DESC, id LIMIT ?`).all(tenantId, limit)
      : this.db.prepare(`SELECT ${COLUMNS} FROM training_jobs WHERE tenant_id = ? AND task_name = ? ORDER BY created_at DESC, id LIMIT ?`).all(tenantId, task, limit)) as JobRow[];
  }

  countActive(tenantId?: string): number {
    const r = (tenantId === undefined
      ? this.db.prepare(`SELECT COUNT(*) AS n FROM training_jobs WHERE state IN ('queued', 'running')`).get()
      : this.db.prepare(`SELECT COUNT(*) AS n FROM training_jobs WHERE tenant_id = ? AND state IN ('queued', 'running')`).get(tenantId)) as { n: number };
    return r.n;
  }

  /**
   * The next job to run, fair across tenants (round-robin): the oldest queued
   * job of the tenant whose last job started longest ago (a tenant that never
   * ran first), skipping `exclude` (tenants over their time quota).
   */
  nextQueued(exclude: readonly string[] = []): JobRow | undefined {
    const skip = exclude.length > 0 ? `AND j.tenant_id NOT IN (${exclude.map(() => '?').join(', ')})` : '';
    return this.db.prepare(`
      SELECT ${COLUMNS} FROM training_jobs j
      WHERE j.state = 'queued' ${skip}
      ORDER BY (SELECT MAX(s.started_at) FROM training_jobs s WHERE s.tenant_id = j.tenant_id) IS NOT NULL,
               (SELECT MAX(s.started_at) FROM training_jobs s WHERE s.tenant_id = j.tenant_id),
               j.created_at, j.id
      LIMIT 1`).get(...exclude) as JobRow | undefined;
  }

  /** Tenants with queued jobs. */
  queuedTenants(): string[] {
    return (this.db.prepare(`SELECT DISTINCT tenant_id FROM training_jobs WHERE state = 'queued'`).all() as Array<{ tenant_id: string }>).map((r) => r.tenant_id);
  }

  /**
   * Training time (ms) the tenant's finished attempts used within the window
   * (attempts counted by when they ended), and when the oldest of them leaves it.
   */
  trainingTime(tenantId: string, sinceIso: string): { ms: number; oldest: string | null } {
    const r = this.db.prepare(`SELECT COALESCE(SUM(train_ms), 0) AS ms, MIN(updated_at) AS oldest FROM training_jobs
      WHERE tenant_id = ? AND train_ms > 0 AND updated_at > ?`).get(tenantId, sinceIso) as { ms: number; oldest: string | null };
    return r;
  }

  running(): JobRow[] {
    return this.db.prepare(`SELECT ${COLUMNS} FROM training_jobs WHERE state = 'running'`).all() as JobRow[];
  }

  /** Updates the given columns; returns false when the row is gone (tenant deleted). */
  update(id: string, fields: Partial<Omit<JobRow, 'id'>>): boolean {
    const keys = Object.keys(fields);
    const sets = [...keys.map((k) => `${k} = @${k}`), 'updated_at = @updated_at'].join(', ');
    const res = this.db.prepare(`UPDATE training_jobs SET ${sets} WHERE id = @id`).run({ ...fields, updated_at: now(), id });
    return res.changes > 0;
  }

  /** Moves a job between states only if it is in `from` (a compare-and-set). */
  transition(id: string, from: JobState[], fields: Partial<Omit<JobRow, 'id'>> & { state: JobState }): boolean {
    const keys = Object.keys(fields);
    const sets = [...keys.map((k) => `${k} = @${k}`), 'updated_at = @updated_at'].join(', ');
    const res = this.db.prepare(`UPDATE training_jobs SET ${sets} WHERE id = @id AND state IN (${from.map((s) => `'${s}'`).join(', ')})`)
      .run({ ...fields, updated_at: now(), id });
    return res.changes > 0;
  }

  appendEvent(id: string, event: Record<string, unknown>): void {
    const row = this.get(id);
    if (!row) return;
    const events = JSON.parse(row.events) as unknown[];
    events.push({ at: now(), ...event });
    this.update(id, { events: JSON.stringify(events) });
  }
}
