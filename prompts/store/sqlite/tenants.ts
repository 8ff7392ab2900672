// Tenants in SQLite. A tenant is made with its first API key in one
// transaction; deleting one cascades to everything it owns.

import { randomBytes } from 'node:crypto';

import { SoftserveError } from '../../../kernels/errors.ts';
import type { NewApiKey, Tenant, TenantStore } from '../index.ts';
import { now, type SqliteContext } from './context.ts';
import { insertKey } from './keys.ts';

export class SqliteTenantStore implements TenantStore {
  constructor(private readonly c: SqliteContext) {}

  async create(name: string): Promise<{ tenant: Tenant } & NewApiKey> {
    const tenant: Tenant = { id: `ten_${randomBytes(8).toString('hex')}`, name, createdAt: now() };
    return this.c.tx(() => {
      if (this.c.sql('SELECT 1 FROM tenants WHERE name = ?').get(name)) {
        throw new SoftserveError('CONFLICT', `a tenant named ${JSON.stringify(name)} already exists`);
      }
      this.c.sql('INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)').run(tenant.id, tenant.name, tenant.createdAt);
      return { tenant, ...insertKey(this.c, tenant.id) };
    });
  }

  async list(): Promise<Tenant[]> {
    const rows = this.c.sql('SELECT id, name, created_at FROM tenants ORDER BY created_at, id').all() as Array<{ id: string; name: string; created_at: string }>;
    return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at }));
  }

  getSync(id: string): Tenant {
    const r = this.c.sql('SELECT id, name, created_at FROM tenants WHERE id = ?').get(id) as { id: string; name: string; created_at: string } | undefined;
    if (!r) throw new SoftserveError('NOT_FOUND', `no tenant ${JSON.stringify(id)}`);
    return { id: r.id, name: r.name, createdAt: r.created_at };
  }

  async get(id: string): Promise<Tenant> {
    return this.getSync(id);
  }

  async delete(id: string): Promise<void> {
    const hashes = this.c.tx(() => {
      this.getSync(id);
      const hs = this.c.sql(`
        SELECT v.tensor_hash AS h FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id
        JOIN tasks t ON t.id = p.task_id WHERE t.tenant_id = ?`).all(id) as Array<{ h: string }>;
      this.c.sql('DELETE FROM tenants WHERE id = ?').run(id);
      return hs.map((r) => r.h);
    });
    this.c.removeIfUnreferenced(hashes);
  }
}
