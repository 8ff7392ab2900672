// Ensembles in SQLite: a named list of member prompts (each pinned to a
// version or following the latest) with an optional vote mode.

import { SoftserveError } from '../../../kernels/errors.ts';
import type { VoteMode } from '../../vote.ts';
import type { EnsembleInfo, EnsembleMember, EnsembleStore } from '../index.ts';
import { now, type SqliteContext } from './context.ts';

interface EnsembleRow { id: number; name: string; vote: string | null; created_at: string }

/** Inserts an ensemble inside the caller's transaction (also used by JobStore.publish). */
export function insertEnsemble(c: SqliteContext, tenantId: string, taskName: string, name: string, members: EnsembleMember[], vote: VoteMode | null): EnsembleInfo {
  const createdAt = now();
  const t = c.taskRow(tenantId, taskName);
  if (c.sql('SELECT 1 FROM ensembles WHERE task_id = ? AND name = ?').get(t.id, name)) {
    throw new SoftserveError('CONFLICT', `ensemble ${JSON.stringify(name)} already exists`);
  }
  for (const m of members) {
    try {
      c.versionRow(tenantId, taskName, m.prompt, m.version);
    } catch (err) {
      if (err instanceof SoftserveError && err.code === 'NOT_FOUND') throw new SoftserveError('INVALID_INPUT', `ensemble member: ${err.message}`);
      throw err;
    }
  }
  const res = c.sql('INSERT INTO ensembles (task_id, name, vote, created_at) VALUES (?, ?, ?, ?)').run(t.id, name, vote, createdAt);
  const ins = c.sql('INSERT INTO ensemble_members (ensemble_id, position, prompt_name, version) VALUES (?, ?, ?, ?)');
  members.forEach((m, i) => ins.run(res.lastInsertRowid, i, m.prompt, m.version ?? null));
  return { task: taskName, name, members: members.map((m) => (m.version == null ? { prompt: m.prompt } : { prompt: m.prompt, version: m.version })), vote, createdAt };
}

export class SqliteEnsembleStore implements EnsembleStore {
  constructor(private readonly c: SqliteContext) {}

  async create(tenantId: string, task: string, name: string, members: EnsembleMember[], vote: VoteMode | null): Promise<EnsembleInfo> {
    return this.c.tx(() => insertEnsemble(this.c, tenantId, task, name, members, vote));
  }

  private fromRow(taskName: string, e: EnsembleRow): EnsembleInfo {
    const ms = this.c.sql('SELECT prompt_name, version FROM ensemble_members WHERE ensemble_id = ? ORDER BY position').all(e.id) as Array<{ prompt_name: string; version: number | null }>;
    return { task: taskName, name: e.name, createdAt: e.created_at, vote: e.vote as VoteMode | null, members: ms.map((m) => (m.version === null ? { prompt: m.prompt_name } : { prompt: m.prompt_name, version: m.version })) };
  }

  async list(tenantId: string, task: string): Promise<EnsembleInfo[]> {
    const t = this.c.taskRow(tenantId, task);
    const rows = this.c.sql('SELECT id, name, vote, created_at FROM ensembles WHERE task_id = ? ORDER BY name').all(t.id) as EnsembleRow[];
    return rows.map((e) => this.fromRow(task, e));
  }

  async get(tenantId: string, task: string, name: string): Promise<EnsembleInfo> {
    const t = this.c.taskRow(tenantId, task);
    const e = this.c.sql('SELECT id, name, vote, created_at FROM ensembles WHERE task_id = ? AND name = ?').get(t.id, name) as EnsembleRow | undefined;
    if (!e) throw new SoftserveError('NOT_FOUND', `no ensemble ${JSON.stringify(name)} in task ${JSON.stringify(task)}`);
    return this.fromRow(task, e);
  }

  async delete(tenantId: string, task: string, name: string): Promise<void> {
    this.c.tx(() => {
      const t = this.c.taskRow(tenantId, task);
      const res = this.c.sql('DELETE FROM ensembles WHERE task_id = ? AND name = ?').run(t.id, name);
      if (res.changes === 0) throw new SoftserveError('NOT_FOUND', `no ensemble ${JSON.stringify(name)} in task ${JSON.stringify(task)}`);
    });
  }
}
