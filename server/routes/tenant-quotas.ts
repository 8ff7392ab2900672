// Admin routes for a tenant's admission settings: PATCH /v1/tenants/:id sets
// its fair-share weight and limit overrides (persisted), GET
// /v1/tenants/:id/quota shows them with what the tenant holds right now.
// Mounted as an app extension: the built-in /v1/tenants router has no PATCH,
// so the request falls through to these.

import type { Request, Response } from 'express';
import type { AppExtension } from '../app.ts';
import type { Admission, TenantLimits } from '../admission.ts';
import { quotaView, type TenantQuotas } from '../tenant-quotas.ts';

export function tenantQuotaRoutes(quotas: TenantQuotas, admission: Admission, defaults: TenantLimits): AppExtension {
  return (ctx) => {
    const view = (id: string) => ({ id, ...quotaView(quotas.get(id), defaults), in_flight: admission.usage(id) });
    ctx.app.patch('/v1/tenants/:id', ctx.adminAuth, ctx.jsonBody, async (req: Request, res: Response) => {
      const id = String(req.params.id);
      await ctx.store.getTenant(id); // 404 for an unknown tenant
      await quotas.update(id, req.body);
      res.json(view(id));
    });
    ctx.app.get('/v1/tenants/:id/quota', ctx.adminAuth, async (req: Request, res: Response) => {
      const id = String(req.params.id);
      await ctx.store.getTenant(id);
      res.json(view(id));
    });
  };
}
