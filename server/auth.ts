// Authentication: `Authorization: Bearer <key>`. The admin key (from the
// environment, or the one the server made on first run and keeps hashed in the
// store: KeyStore in prompts/store/) manages tenants and nothing else; a tenant key reaches only its
// tenant's tasks, prompts and ensembles. Tenant keys are looked up by their
// sha256 (only hashes are stored); the admin key is compared in constant time.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

import { SoftserveError } from '../kernels/errors.ts';
import type { PromptStore, Tenant } from '../prompts/store.ts';
import type { ServerConfig } from './config.ts';

export function bearerToken(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(h);
  return m ? m[1]! : null;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

export function isAdminKey(config: ServerConfig, token: string): boolean {
  if (config.adminKey === null) return false;
  return timingSafeEqual(digest(token), digest(config.adminKey));
}

function needKey(): SoftserveError {
  return new SoftserveError('UNAUTHORIZED', 'missing or malformed Authorization header; send "Authorization: Bearer <api key>"');
}

export function requireAdmin(config: ServerConfig, store: PromptStore): RequestHandler {
  const keys = store.backend.keys;
  return async (req: Request, _res: Response, next: NextFunction) => {
    const token = bearerToken(req);
    if (token === null) return next(needKey());
    if (isAdminKey(config, token) || await keys.isAdminKey(token)) return next();
    if (config.adminKey === null && await keys.activeAdminKey() === null) return next(new SoftserveError('FORBIDDEN', 'the admin API is disabled: SOFTSERVE_ADMIN_KEY is not set'));
    if (await store.authenticate(token)) return next(new SoftserveError('FORBIDDEN', 'this route needs the admin key, not a tenant key'));
    return next(new SoftserveError('UNAUTHORIZED', 'unknown API key'));
  };
}

/** The tenant whose key `req` carries; throws UNAUTHORIZED or FORBIDDEN (the admin key) otherwise. */
export async function authenticateTenant(config: ServerConfig, store: PromptStore, req: IncomingMessage): Promise<Tenant> {
  const token = bearerToken(req);
  if (token === null) throw needKey();
  // The classify hot path: served from the catalog cache; the store is asked only on a miss.
  const tenant = await store.authenticate(token);
  if (tenant) return tenant;
  if (isAdminKey(config, token) || await store.backend.keys.isAdminKey(token)) throw new SoftserveError('FORBIDDEN', 'the admin key manages tenants; use a tenant API key here');
  throw new SoftserveError('UNAUTHORIZED', 'unknown or revoked API key');
}

/** Express middleware: `authenticateTenant`, then the tenant is `tenantOf(res)`. */
export function requireTenant(config: ServerConfig, store: PromptStore): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    let tenant: Tenant;
    try {
      tenant = await authenticateTenant(config, store, req);
    } catch (err) {
      return next(err);
    }
    res.locals.tenant = tenant;
    next();
  };
}

/** The authenticated tenant of a request that went through requireTenant. */
export function tenantOf(res: Response): Tenant {
  const t = res.locals.tenant as Tenant | undefined;
  if (!t) throw new SoftserveError('INTERNAL', 'route reached without tenant authentication');
  return t;
}

/**
 * GET /metrics behind its own token (SOFTSERVE_METRICS_TOKEN), apart from
 * tenant and admin keys, so a scraper holds no key that reaches data. No
 * token configured: open, as before.
 */
export function metricsAuth(token: string | null): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    if (token === null) return next();
    const given = bearerToken(req);
    if (given === null) return next(new SoftserveError('UNAUTHORIZED', 'GET /metrics needs "Authorization: Bearer <SOFTSERVE_METRICS_TOKEN>"'));
    if (!timingSafeEqual(digest(given), digest(token))) return next(new SoftserveError('UNAUTHORIZED', 'wrong metrics token'));
    return next();
  };
}
