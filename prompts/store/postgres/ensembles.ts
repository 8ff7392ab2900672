// Ensembles in PostgreSQL: a named list of member prompts (each pinned to a
// version or following the latest) with an optional vote mode.

import { SoftserveError } from '../../../kernels/errors.ts';
import type { VoteMode } from '../../vote.ts';
import type { EnsembleInfo, EnsembleMember, EnsembleStore } from '../index.ts';
import { now, type PgContext } from './context.ts';
import type { Queryable } from './db.ts';

interface EnsembleRow { id: string; name: string; vote: string | null; created_at: string }

/** Inserts an ensemble inside the caller's transaction (also used by JobStore.publish). */
export async function insertEnsemble(c: PgContext, db: Queryable, tenantId: string, taskName: string, name: string, members: EnsembleMember[], vote: VoteMode | null): Promise<EnsembleInfo> {
  const createdAt = now();
  // The task row locked: a member prompt cannot be deleted between the check and the commit.
  const t = await c.taskRow(db, tenantId, taskName, 'FOR UPDATE');
  if ((await db.query('SELECT 1 FROM ensembles WHERE task_id = $1 AND name = $2', [t.id, name])).rowCount! > 0) {
    throw new SoftserveError('CONFLICT', `ensemble ${JSON.stringify(name)} already exists`);
  }
  for (const m of members) {
    try {
      await c.versionRow(db, tenantId, taskName, m.prompt, m.version);
    } catch (err) {
      if (err instanceof SoftserveError && err.code === 'NOT_FOUND') throw new SoftserveError('INVALID_INPUT', `ensemble member: ${err.message}`);
      throw err;
    }
  }
  const e = await db.query<{ id: string }>('INSERT INTO ensembles (task_id, name, vote, created_at) VALUES ($1, $2, $3, $4) RETURNING id', [t.id, name, vote, createdAt]);
  for (const [i, m] of members.entries()) {
    await db.query('INSERT INTO ensemble_members (ensemble_id, position, prompt_name, version) VALUES ($1, $2, $3, $4)', [e.rows[0]!.id, i, m.prompt, m.version ?? null]);
  }
  return { task: taskName, name, members: members.map((m) => (m.version == null ? { prompt: m.prompt } : { prompt: m.prompt, version: m.version })), vote, createdAt };
}

export class PgEnsembleStore implements EnsembleStore {
  constructor(private readonly c: PgContext) {}

  async create(tenantId: string, task: string, name: string, members: EnsembleMember[], vote: VoteMode | null): Promise<EnsembleInfo> {
    return this.c.tx((db) => insertEnsemble(this.c, db, tenantId, task, name, members, vote));
  }

  private async fromRow(taskName: string, e: EnsembleRow): Promise<EnsembleInfo> {
    const ms = await this.c.pool.query<{ prompt_name: string; version: number | null }>('SELECT prompt_name, version FROM ensemble_members WHERE ensemble_id = $1 ORDER BY position', [e.id]);
    return { task: taskName, name: e.name, createdAt: e.created_at, vote: e.vote as VoteMode | null, members: ms.rows.map((m) => (m.version === null ? { prompt: m.prompt_name } : { prompt: m.prompt_name, version: m.version })) };
  }

  async list(tenantId: string, task: string): Promise<EnsembleInfo[]> {
    const t = await this.c.taskRow(this.c.pool, tenantId, task);
    const rows = await this.c.pool.query<EnsembleRow>('SELECT id, name, vote, created_at FROM ensembles WHERE task_id = $1 ORDER BY name', [t.id]);
    return Promise.all(rows.rows.map((e) => this.fromRow(task, e)));
  }

  async get(tenantId: string, task: string, name: string): Promise<EnsembleInfo> {
    const t = await this.c.taskRow(this.c.pool, tenantId, task);
    const e = (await this.c.pool.query<EnsembleRow>('SELECT id, name, vote, created_at FROM ensembles WHERE task_id = $1 AND name = $2', [t.id, name])).rows[0];
    if (!e) throw new SoftserveError('NOT_FOUND', `no ensemble ${JSON.stringify(name)} in task ${JSON.stringify(task)}`);
    return this.fromRow(task, e);
  }

  async delete(tenantId: string, task: string, name: string): Promise<void> {
    const t = await this.c.taskRow(this.c.pool, tenantId, task);
    const res = await this.c.pool.query('DELETE FROM ensembles WHERE task_id = $1 AND name = $2', [t.id, name]);
    if (res.rowCount === 0) throw new SoftserveError('NOT_FOUND', `no ensemble ${JSON.stringify(name)} in task ${JSON.stringify(task)}`);
  }
}
