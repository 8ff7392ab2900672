// Per-tenant usage since the process started: requests, classified rows and
// tokens, and requests refused by admission (429), draining (503) or their
// deadline (504). Fed by the request recorder in server/observe.ts (one
// call per finished request that carried a tenant key) and read by the admin
// route GET /v1/tenants/:id/usage (server/routes/usage.ts). In memory only: a
// restart starts from zero, which the answer says with `since`.

export interface TenantUsage {
  requests: number;
  classify_requests: number;
  rows: number;
  tokens: number;
  rejected: number;
  errors: number;
}

const REJECTED = new Set([429, 503, 504]);

export class UsageCounter {
  readonly since = new Date().toISOString();
  private readonly byTenant = new Map<string, TenantUsage>();

  /** One finished request of `tenantId`; `classify`: what a classify request used. */
  record(tenantId: string, status: number, classify?: { rows: number; tokens: number }): void {
    let u = this.byTenant.get(tenantId);
    if (!u) {
      u = { requests: 0, classify_requests: 0, rows: 0, tokens: 0, rejected: 0, errors: 0 };
      this.byTenant.set(tenantId, u);
    }
    u.requests++;
    if (REJECTED.has(status)) u.rejected++;
    else if (status >= 400) u.errors++;
    if (classify && status < 400) {
      u.classify_requests++;
      u.rows += classify.rows;
      u.tokens += classify.tokens;
    }
  }

  get(tenantId: string): TenantUsage {
    return { ...(this.byTenant.get(tenantId) ?? { requests: 0, classify_requests: 0, rows: 0, tokens: 0, rejected: 0, errors: 0 }) };
  }
}
