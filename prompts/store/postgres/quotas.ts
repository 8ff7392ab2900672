// Per-tenant admission settings (weight, limit overrides) in PostgreSQL.

import type { QuotaStore, StoredQuota } from '../index.ts';
import { now, type PgContext } from './context.ts';

export class PgQuotaStore implements QuotaStore {
  constructor(private readonly c: PgContext) {}

  async list(): Promise<Array<{ tenantId: string; quota: StoredQuota }>> {
    const r = await this.c.pool.query<{ tenant_id: string; weight: number; limits: string }>('SELECT tenant_id, weight, limits FROM tenant_quotas ORDER BY tenant_id');
    return r.rows.map((row) => ({ tenantId: row.tenant_id, quota: { weight: row.weight, limits: JSON.parse(row.limits) as StoredQuota['limits'] } }));
  }

  async put(tenantId: string, quota: StoredQuota): Promise<void> {
    await this.c.tx(async (db) => {
      // The tenant must exist (ids are global: no other tenant's can match), and stay until this commits.
      await this.c.requireTenant(db, tenantId, 'FOR KEY SHARE');
      await db.query(`INSERT INTO tenant_quotas (tenant_id, weight, limits, updated_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (tenant_id) DO UPDATE SET weight = excluded.weight, limits = excluded.limits, updated_at = excluded.updated_at`,
      [tenantId, quota.weight, JSON.stringify(quota.limits), now()]);
    });
  }
}
