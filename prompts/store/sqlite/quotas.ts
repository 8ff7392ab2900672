// Per-tenant admission settings (weight, limit overrides) in SQLite; the
// server keeps them in memory (server/tenant-quotas.ts) and writes through.

import type { QuotaStore, StoredQuota } from '../index.ts';
import { now, type SqliteContext } from './context.ts';

export class SqliteQuotaStore implements QuotaStore {
  constructor(private readonly c: SqliteContext) {}

  async list(): Promise<Array<{ tenantId: string; quota: StoredQuota }>> {
    const rows = this.c.sql('SELECT tenant_id, weight, limits FROM tenant_quotas ORDER BY tenant_id').all() as Array<{ tenant_id: string; weight: number; limits: string }>;
    return rows.map((r) => ({ tenantId: r.tenant_id, quota: { weight: r.weight, limits: JSON.parse(r.limits) as StoredQuota['limits'] } }));
  }

  async put(tenantId: string, quota: StoredQuota): Promise<void> {
    this.c.tx(() => {
      // The tenant must exist (ids are global: no other tenant's can match).
      this.c.requireTenant(tenantId);
      this.c.sql(`INSERT INTO tenant_quotas (tenant_id, weight, limits, updated_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (tenant_id) DO UPDATE SET weight = excluded.weight, limits = excluded.limits, updated_at = excluded.updated_at`)
        .run(tenantId, quota.weight, JSON.stringify(quota.limits), now());
    });
  }
}
