// Per-tenant usage since the process started: requests, classified rows and
// tokens, and requests refused by admission (429), draining (503) or their
// deadline (504). Fed by the request-log middleware in server/server.ts (one
// call per finished request that carried a tenant key) and read by the admin
// route GET /v1/tenants/:id/usage. In memory only: a restart starts from zero,
// which the answer says with `since`.

import type { Request, Response } from 'express';

import type { AppExtension } from './app.ts';

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

  /** One finished request of `tenantId`; `classify` is what the classify route left in res.locals. */
  record(tenantId: string, status: number, classify?: { rows?: unknown; tokens?: unknown }): void {
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
      if (typeof classify.rows === 'number') u.rows += classify.rows;
      if (typeof classify.tokens === 'number') u.tokens += classify.tokens;
    }
  }

  /** Called from the request-log middleware with the finished response. */
  recordResponse(res: Response): void {
    const tenant = res.locals.tenant as { id: string } | undefined;
    if (tenant) this.record(tenant.id, res.statusCode, res.locals.classify as { rows?: unknown; tokens?: unknown } | undefined);
  }

  get(tenantId: string): TenantUsage {
    return { ...(this.byTenant.get(tenantId) ?? { requests: 0, classify_requests: 0, rows: 0, tokens: 0, rejected: 0, errors: 0 }) };
  }
}

/** GET /v1/tenants/:id/usage (admin key): 404 for a tenant that does not exist. */
export function usageExtension(usage: UsageCounter): AppExtension {
  return ({ app, adminAuth, store }) => {
    app.get('/v1/tenants/:id/usage', adminAuth, async (req: Request, res: Response) => {
      const tenant = await store.getTenant(String(req.params.id));
      res.json({ tenant: tenant.id, since: usage.since, ...usage.get(tenant.id) });
    });
  };
}

export const usageOpenApiPaths = (): Record<string, Record<string, unknown>> => ({
  '/v1/tenants/{id}/usage': {
    parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
    get: {
      summary: "A tenant's usage since the server started (admin): requests, classify requests, rows, tokens, rejected (429/503/504), other errors",
      responses: {
        200: {
          description: 'counters',
          content: { 'application/json': { schema: { type: 'object', properties: { tenant: { type: 'string' }, since: { type: 'string', format: 'date-time' }, requests: { type: 'integer' }, classify_requests: { type: 'integer' }, rows: { type: 'integer' }, tokens: { type: 'integer' }, rejected: { type: 'integer' }, errors: { type: 'integer' } } } } },
        },
        ...Object.fromEntries([401, 403, 404].map((s) => [String(s), { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }])),
      },
    },
  },
});
