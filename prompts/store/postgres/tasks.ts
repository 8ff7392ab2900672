// Tasks in PostgreSQL. Deleting one takes its prompts and ensembles with it
// (foreign keys) and marks its unfinished training jobs task-deleted, in one
// transaction; then the tensors no version names any more go.

import { SoftserveError } from '../../../kernels/errors.ts';
import type { Task, TaskDefinition, TaskStore } from '../index.ts';
import { now, taskFromRow, type PgContext, type TaskRow } from './context.ts';
import { sqlState, UNIQUE_VIOLATION } from './db.ts';

export class PgTaskStore implements TaskStore {
  constructor(private readonly c: PgContext) {}

  async create(tenantId: string, d: TaskDefinition): Promise<Task> {
    const scoring = d.scoring.type === 'head' ? { type: 'head', pooling: d.scoring.pooling } : { type: 'verbalizer', label_words: d.scoring.labelWords };
    const createdAt = now();
    try {
      await this.c.tx(async (db) => {
        await this.c.requireTenant(db, tenantId, 'FOR KEY SHARE');
        await db.query('INSERT INTO tasks (tenant_id, name, labels, template, scoring, created_at) VALUES ($1, $2, $3, $4, $5, $6)',
          [tenantId, d.name, JSON.stringify(d.labels), d.template, JSON.stringify(scoring), createdAt]);
      });
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) throw new SoftserveError('CONFLICT', `task ${JSON.stringify(d.name)} already exists`);
      throw err;
    }
    return { name: d.name, labels: d.labels, template: d.template, scoring: d.scoring, tenantId, createdAt };
  }

  async list(tenantId: string): Promise<Task[]> {
    const r = await this.c.pool.query<TaskRow>('SELECT * FROM tasks WHERE tenant_id = $1 ORDER BY name', [tenantId]);
    return r.rows.map(taskFromRow);
  }

  async get(tenantId: string, name: string): Promise<Task> {
    return taskFromRow(await this.c.taskRow(this.c.pool, tenantId, name));
  }

  async delete(tenantId: string, name: string): Promise<void> {
    const hashes = await this.c.tx(async (db) => {
      const t = await this.c.taskRow(db, tenantId, name, 'FOR UPDATE');
      const hs = await db.query<{ h: string }>('SELECT DISTINCT v.tensor_hash AS h FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id WHERE p.task_id = $1', [t.id]);
      await db.query('DELETE FROM tasks WHERE id = $1', [t.id]);
      // A task re-created under the same name is another task: the job must never publish into it.
      await db.query(`UPDATE training_jobs SET task_deleted_at = $1
        WHERE tenant_id = $2 AND task_name = $3 AND task_deleted_at IS NULL AND state IN ('queued', 'running')`, [now(), tenantId, name]);
      return hs.rows.map((r) => r.h);
    });
    await this.c.removeIfUnreferenced(hashes);
  }
}
