// Per-tenant admission settings (weight in the fair share, limit overrides),
// kept in the store (QuotaStore, prompts/store/) and in memory: admission
// reads them on every request, so reads never touch the store. Only the admin
// API writes them, through this class, which keeps the two in step. A tenant without a row has weight 1 and the default limits.

import { SoftserveError } from '../kernels/errors.ts';
import type { QuotaStore } from '../prompts/store/index.ts';
import type { TenantLimits, TenantQuota } from './admission.ts';

const DEFAULT_QUOTA: TenantQuota = Object.freeze({ weight: 1, limits: Object.freeze({}) }) as TenantQuota;

/** API field names (snake_case) of the limits a tenant may override. */
const LIMIT_FIELDS: Record<string, keyof TenantLimits> = {
  max_concurrency: 'maxConcurrency',
  max_rows: 'maxRows',
  max_tokens: 'maxTokens',
};
const MAX_WEIGHT = 1000;
const MAX_LIMIT = 1e9;

export class TenantQuotas {
  private readonly cache = new Map<string, TenantQuota>();
  private reloads = 0;
  private readonly writeListeners: Array<(tenantId: string) => void> = [];

  private constructor(private readonly store: QuotaStore) {}

  /** Reads every stored quota into memory. */
  static async load(store: QuotaStore): Promise<TenantQuotas> {
    const q = new TenantQuotas(store);
    for (const r of await store.list()) q.cache.set(r.tenantId, { weight: r.quota.weight, limits: r.quota.limits as Partial<TenantLimits> });
    return q;
  }

  /** Called after this process changed a tenant's quota (other processes must re-read theirs). */
  onWrite(listener: (tenantId: string) => void): void {
    this.writeListeners.push(listener);
  }

  get(tenantId: string): TenantQuota {
    return this.cache.get(tenantId) ?? DEFAULT_QUOTA;
  }

  /**
   * Applies a PATCH body `{weight?, limits?: {max_concurrency?, max_rows?, max_tokens?}}`
   * (a limit of null goes back to the default) and returns the result.
   */
  async update(tenantId: string, patch: unknown): Promise<TenantQuota> {
    if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) throw new SoftserveError('BAD_REQUEST', 'body must be a JSON object {weight?, limits?}');
    const p = patch as Record<string, unknown>;
    for (const k of Object.keys(p)) if (k !== 'weight' && k !== 'limits') throw new SoftserveError('BAD_REQUEST', `unknown field ${JSON.stringify(k)}; a tenant's weight and limits can be changed`);
    const current = this.get(tenantId);
    let weight = current.weight;
    if (p.weight !== undefined) {
      if (typeof p.weight !== 'number' || !Number.isFinite(p.weight) || p.weight <= 0 || p.weight > MAX_WEIGHT) {
        throw new SoftserveError('BAD_REQUEST', `weight must be a number in (0, ${MAX_WEIGHT}]`);
      }
      weight = p.weight;
    }
    const limits: Partial<TenantLimits> = { ...current.limits };
    if (p.limits !== undefined) {
      if (typeof p.limits !== 'object' || p.limits === null || Array.isArray(p.limits)) throw new SoftserveError('BAD_REQUEST', 'limits must be an object');
      for (const [k, v] of Object.entries(p.limits)) {
        const field = LIMIT_FIELDS[k];
        if (!field) throw new SoftserveError('BAD_REQUEST', `unknown limit ${JSON.stringify(k)}; one of ${Object.keys(LIMIT_FIELDS).join(', ')}`);
        if (v === null) delete limits[field];
        else if (!Number.isSafeInteger(v) || (v as number) < 1 || (v as number) > MAX_LIMIT) throw new SoftserveError('BAD_REQUEST', `limits.${k} must be an integer in [1, ${MAX_LIMIT}] or null (the default)`);
        else limits[field] = v as number;
      }
    }
    const next: TenantQuota = { weight, limits };
    // NOT_FOUND for an unknown tenant (ids are global: no one else's can match).
    await this.store.put(tenantId, next);
    this.cache.set(tenantId, next);
    for (const listener of this.writeListeners) listener(tenantId);
    return next;
  }

  /**
   * Re-reads every stored quota (another process changed one, or changes may
   * have been missed). Rejects, keeping what it holds, when the store cannot
   * answer; of overlapping reloads, the last one started wins.
   */
  async reload(): Promise<void> {
    const seq = ++this.reloads;
    const rows = await this.store.list();
    if (seq !== this.reloads) return;
    this.cache.clear();
    for (const r of rows) this.cache.set(r.tenantId, { weight: r.quota.weight, limits: r.quota.limits as Partial<TenantLimits> });
  }

  /** Drops the cached entry of a deleted tenant (its row went with it). */
  forget(tenantId: string): void {
    this.cache.delete(tenantId);
  }
}

/** The API view: weight, the effective limits, and which of them are overrides. */
export function quotaView(q: TenantQuota, defaults: TenantLimits) {
  const eff = { ...defaults, ...q.limits };
  return {
    weight: q.weight,
    limits: { max_concurrency: eff.maxConcurrency, max_rows: eff.maxRows, max_tokens: eff.maxTokens },
    overrides: Object.fromEntries(Object.entries(LIMIT_FIELDS).filter(([, f]) => q.limits[f] !== undefined).map(([k, f]) => [k, q.limits[f]])),
  };
}
