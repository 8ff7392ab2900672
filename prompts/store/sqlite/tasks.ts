// Tasks in SQLite. Deleting one takes its prompts, ensembles and tensor files
// with it, and (by the trigger of migration 5) marks its unfinished training
// jobs task-deleted in the same transaction.

import { SoftserveError } from '../../../kernels/errors.ts';
import type { Task, TaskDefinition, TaskStore } from '../index.ts';
import { now, taskFromRow, type SqliteContext, type TaskRow } from './context.ts';

export class SqliteTaskStore implements TaskStore {
  constructor(private readonly c: SqliteContext) {}

  async create(tenantId: string, d: TaskDefinition): Promise<Task> {
    const scoring = d.scoring.type === 'head' ? { type: 'head', pooling: d.scoring.pooling } : { type: 'verbalizer', label_words: d.scoring.labelWords };
    const createdAt = now();
    this.c.tx(() => {
      this.c.requireTenant(tenantId);
      if (this.c.sql('SELECT 1 FROM tasks WHERE tenant_id = ? AND name = ?').get(tenantId, d.name)) {
        throw new SoftserveError('CONFLICT', `task ${JSON.stringify(d.name)} already exists`);
      }
      this.c.sql('INSERT INTO tasks (tenant_id, name, labels, template, scoring, created_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(tenantId, d.name, JSON.stringify(d.labels), d.template, JSON.stringify(scoring), createdAt);
    });
    return { name: d.name, labels: d.labels, template: d.template, scoring: d.scoring, tenantId, createdAt };
  }

  async list(tenantId: string): Promise<Task[]> {
    return (this.c.sql('SELECT * FROM tasks WHERE tenant_id = ? ORDER BY name').all(tenantId) as TaskRow[]).map(taskFromRow);
  }

  async get(tenantId: string, name: string): Promise<Task> {
    return taskFromRow(this.c.taskRow(tenantId, name));
  }

  async delete(tenantId: string, name: string): Promise<void> {
    const hashes = this.c.tx(() => {
      const t = this.c.taskRow(tenantId, name);
      const hs = this.c.sql('SELECT v.tensor_hash AS h FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id WHERE p.task_id = ?').all(t.id) as Array<{ h: string }>;
      this.c.sql('DELETE FROM tasks WHERE id = ?').run(t.id);
      return hs.map((r) => r.h);
    });
    this.c.removeIfUnreferenced(hashes);
  }
}
