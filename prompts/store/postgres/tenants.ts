// Tenants in PostgreSQL. A tenant is made with its first API key in one
// transaction; deleting one cascades (foreign keys) to everything it owns,
// then removes the tensors no other tenant's version names.

import { randomBytes } from 'node:crypto';

import { SoftserveError } from '../../../kernels/errors.ts';
import type { NewApiKey, Tenant, TenantStore } from '../index.ts';
import { now, type PgContext } from './context.ts';
import { sqlState, UNIQUE_VIOLATION } from './db.ts';
import { insertKey } from './keys.ts';

interface TenantRow { id: string; name: string; created_at: string }

const fromRow = (r: TenantRow): Tenant => ({ id: r.id, name: r.name, createdAt: r.created_at });

export class PgTenantStore implements TenantStore {
  constructor(private readonly c: PgContext) {}

  async create(name: string): Promise<{ tenant: Tenant } & NewApiKey> {
    const tenant: Tenant = { id: `ten_${randomBytes(8).toString('hex')}`, name, createdAt: now() };
    try {
      return await this.c.tx(async (db) => {
        await db.query('INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)', [tenant.id, tenant.name, tenant.createdAt]);
        return { tenant, ...await insertKey(db, tenant.id) };
      });
    } catch (err) {
      if (sqlState(err) === UNIQUE_VIOLATION) throw new SoftserveError('CONFLICT', `a tenant named ${JSON.stringify(name)} already exists`);
      throw err;
    }
  }

  async list(): Promise<Tenant[]> {
    const r = await this.c.pool.query<TenantRow>('SELECT id, name, created_at FROM tenants ORDER BY created_at, id');
    return r.rows.map(fromRow);
  }

  async get(id: string): Promise<Tenant> {
    const r = await this.c.pool.query<TenantRow>('SELECT id, name, created_at FROM tenants WHERE id = $1', [id]);
    if (!r.rows[0]) throw new SoftserveError('NOT_FOUND', `no tenant ${JSON.stringify(id)}`);
    return fromRow(r.rows[0]);
  }

  async delete(id: string): Promise<void> {
    const hashes = await this.c.tx(async (db) => {
      const hs = await db.query<{ h: string }>(`
        SELECT DISTINCT v.tensor_hash AS h FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id
        JOIN tasks t ON t.id = p.task_id WHERE t.tenant_id = $1`, [id]);
      const res = await db.query('DELETE FROM tenants WHERE id = $1', [id]);
      if (res.rowCount === 0) throw new SoftserveError('NOT_FOUND', `no tenant ${JSON.stringify(id)}`);
      return hs.rows.map((r) => r.h);
    });
    await this.c.removeIfUnreferenced(hashes);
  }
}
