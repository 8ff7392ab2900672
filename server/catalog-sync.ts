// Keeps this process's in-memory catalog state in step with writes made by
// other processes on the same PostgreSQL database (other serve replicas,
// trainer processes): the catalog cache of PromptStore (keys, tasks, prompt
// resolutions) and the tenant quotas admission reads. Driven by the
// database's change notifications (prompts/store/postgres/notify.ts); on
// every (re)connect everything is forgotten and quotas re-read, since
// notifications sent while disconnected are lost.
//
// SQLite is one process per data directory: nothing to do, nothing loaded.
// The admin key is not cached (checked against the store on every admin
// request), so it needs nothing here.

import { Counter, Gauge, type Registry } from 'prom-client';

import type { CatalogEvent } from '../prompts/catalog-cache.ts';
import type { PromptStore } from '../prompts/store.ts';
import type { StoreLogger } from '../prompts/store/sql-rows.ts';
import type { TenantQuotas } from './tenant-quotas.ts';

export interface CatalogSync {
  /** Whether the notification connection is up now. */
  readonly connected: boolean;
  close(): Promise<void>;
}

export interface CatalogSyncOptions {
  databaseUrl: string | null;
  store: PromptStore;
  quotas: TenantQuotas;
  registry: Registry;
  logger?: StoreLogger;
}

/** Starts listening (first connection attempted before it resolves); null without a database URL. */
export async function startCatalogSync(o: CatalogSyncOptions): Promise<CatalogSync | null> {
  if (!o.databaseUrl) return null;
  const { CatalogListener } = await import('../prompts/store/postgres/notify.ts');
  const up = new Gauge({ name: 'softserve_catalog_listener_connected', help: '1 while this process receives catalog change notifications from the database', registers: [o.registry] });
  const events = new Counter({ name: 'softserve_catalog_notifications_total', help: 'Catalog change notifications received, by entity', labelNames: ['entity'], registers: [o.registry] });
  const resyncs = new Counter({ name: 'softserve_catalog_resyncs_total', help: 'Times every cached catalog entry was dropped because notifications may have been missed (each (re)connect)', registers: [o.registry] });
  const reloadQuotas = () => {
    o.quotas.reload().catch((err: Error) => o.logger?.warn({ err: err.message }, 'could not re-read tenant quotas; keeping the ones held'));
  };
  const listener = new CatalogListener({
    url: o.databaseUrl,
    ...(o.logger ? { logger: o.logger } : {}),
    onEvent(event: CatalogEvent) {
      events.inc({ entity: event.entity });
      o.store.catalog.invalidate(event);
      if (event.entity === 'quota') reloadQuotas();
      if (event.entity === 'tenant') o.quotas.forget(event.tenantId);
    },
    onResync() {
      resyncs.inc();
      o.store.catalog.clear();
      reloadQuotas();
    },
    onState(connected) {
      up.set(connected ? 1 : 0);
    },
  });
  up.set(0);
  await listener.start();
  return listener;
}
