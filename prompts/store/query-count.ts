// Counts every call into a storage backend's entity stores
// (softserve_store_queries_total{entity,op}), whatever the backend: the
// wrapper sits between PromptStore and the Store interface. It is how the
// hot path's "no database work in steady state" is shown, in /metrics and
// in tests.

import { Counter, type Registry } from 'prom-client';

import type { Store } from './index.ts';

const ENTITIES = ['tenants', 'keys', 'quotas', 'tasks', 'prompts', 'ensembles', 'jobs'] as const;

/** Calls per entity and operation, also kept here for callers without a registry. */
export class QueryCounter {
  private readonly counts = new Map<string, number>();
  private readonly metric: Counter<'entity' | 'op'> | null;

  constructor(registry?: Registry) {
    this.metric = registry
      ? new Counter({ name: 'softserve_store_queries_total', help: 'Calls into the storage backend, by entity and operation', labelNames: ['entity', 'op'], registers: [registry] })
      : null;
  }

  inc(entity: string, op: string): void {
    const k = `${entity}.${op}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
    this.metric?.inc({ entity, op });
  }

  /** Total calls so far (all entities). */
  total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }
}

/** The same backend, with every entity-store method call counted. Other members pass through. */
export function countQueries<B extends Store>(backend: B, counter: QueryCounter): B {
  const wrapped = new Map<string | symbol, unknown>();
  for (const entity of ENTITIES) wrapped.set(entity, countEntity(entity, backend[entity] as object, counter));
  return new Proxy(backend, {
    get(target, prop) {
      if (wrapped.has(prop)) return wrapped.get(prop);
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

function countEntity<T extends object>(entity: string, store: T, counter: QueryCounter): T {
  const fns = new Map<string | symbol, unknown>();
  return new Proxy(store, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      // `on…` members register listeners: not queries.
      if (typeof v !== 'function' || (typeof prop === 'string' && prop.startsWith('on'))) return v;
      let f = fns.get(prop);
      if (!f) {
        const op = String(prop);
        const fn = v as (...a: unknown[]) => unknown;
        f = (...args: unknown[]) => {
          counter.inc(entity, op);
          return fn.apply(target, args);
        };
        fns.set(prop, f);
      }
      return f;
    },
  });
}
