// Admin routes for a tenant's admission settings: PATCH /v1/tenants/:id sets
// its fair-share weight and limit overrides (persisted), GET
// /v1/tenants/:id/quota shows them with what the tenant holds right now.
// Mounted ahead of the tenants module (server/server.ts), whose /v1/tenants
// router would otherwise authenticate and parse these requests a first time.

import type { Request, Response } from 'express';
import type { Admission, TenantLimits } from '../admission.ts';
import { quotaView, type TenantQuotas } from '../tenant-quotas.ts';
import { errors, json, name, ok, ref } from '../openapi.ts';
import type { RouteModule } from '../route-module.ts';
import { requireJson } from '../json-only.ts';

export function tenantQuotaRoutes(quotas: TenantQuotas, admission: Admission, defaults: TenantLimits): RouteModule {
  return {
    name: 'tenant-quotas',
    mount(app, ctx) {
      const view = (id: string) => ({ id, ...quotaView(quotas.get(id), defaults), in_flight: admission.usage(id) });
      app.patch('/v1/tenants/:id', ctx.adminAuth, requireJson, ctx.jsonBody, async (req: Request, res: Response) => {
        const id = String(req.params.id);
        await ctx.store.getTenant(id); // 404 for an unknown tenant
        await quotas.update(id, req.body);
        res.json(view(id));
      });
      app.get('/v1/tenants/:id/quota', ctx.adminAuth, async (req: Request, res: Response) => {
        const id = String(req.params.id);
        await ctx.store.getTenant(id);
        res.json(view(id));
      });
    },
    openapi: {
      paths: {
        '/v1/tenants/{id}': {
          parameters: [name('id')],
          patch: { summary: 'Set the tenant\'s admission weight and limits (admin; docs/API.md, Admission)', requestBody: { content: json(ref('QuotaPatch')) }, responses: { 200: ok('the tenant\'s quota', ref('Quota')), ...errors(400, 401, 403, 404) } },
        },
        '/v1/tenants/{id}/quota': {
          parameters: [name('id')],
          get: { summary: 'The tenant\'s admission weight, limits and what it holds now (admin)', responses: { 200: ok('the tenant\'s quota', ref('Quota')), ...errors(401, 403, 404) } },
        },
      },
      schemas: {
        QuotaPatch: {
          type: 'object',
          properties: {
            weight: { type: 'number', exclusiveMinimum: true, minimum: 0, maximum: 1000, description: 'share of the main admission budget relative to other active tenants (default 1)' },
            limits: { type: 'object', properties: Object.fromEntries(['max_concurrency', 'max_rows', 'max_tokens'].map((k) => [k, { type: 'integer', minimum: 1, nullable: true, description: 'null: the server default' }])) },
          },
        },
        Quota: {
          type: 'object',
          properties: {
            id: { type: 'string' }, weight: { type: 'number' },
            limits: { type: 'object', properties: { max_concurrency: { type: 'integer' }, max_rows: { type: 'integer' }, max_tokens: { type: 'integer' } } },
            overrides: { type: 'object' },
            in_flight: { type: 'object', properties: { rows: { type: 'integer' }, tokens: { type: 'integer' }, requests: { type: 'integer' } } },
          },
        },
      },
    },
  };
}
