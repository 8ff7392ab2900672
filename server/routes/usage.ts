// GET /v1/tenants/:id/usage (admin key): a tenant's counters since the
// process started (server/usage.ts keeps them).

import type { Request, Response } from 'express';

import type { RouteModule } from '../route-module.ts';
import type { TenantUsage, UsageCounter } from '../usage.ts';

/** GET /v1/tenants/:id/usage (admin key): 404 for a tenant that does not exist. */
export function usageRoutes(usage: UsageCounter, read: (tenantId: string) => Promise<TenantUsage> = async (id) => usage.get(id)): RouteModule {
  return {
    name: 'usage',
    openapi: { paths: usageOpenApiPaths() },
    mount(app, { adminAuth, store }) {
      app.get('/v1/tenants/:id/usage', adminAuth, async (req: Request, res: Response) => {
        const tenant = await store.getTenant(String(req.params.id));
        res.json({ tenant: tenant.id, since: usage.since, ...(await read(tenant.id)) });
      });
    },
  };
}

const usageOpenApiPaths = (): Record<string, Record<string, unknown>> => ({
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
