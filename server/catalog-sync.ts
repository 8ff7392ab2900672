// Keeps this process's in-memory catalog state in step with writes made by
// other processes on the same PostgreSQL database (other serve replicas,
// trainer processes): the catalog cache of PromptStore (keys, tasks, prompt
// resolutions) and the tenant quotas admission reads. Driven by the
// database's change notifications (prompts/store/postgres/notify.ts); on
// every (re)connect everything is forgotten and quotas re-read, since
// notifications sent while disconnected are lost.
//
// SQLite: one server per data directory; its front workers (server/cluster/)
// pass their writes to each other over IPC and call applyCatalogEvent.
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
  /** null in a process without admission (a clustered server's primary). */
  quotas: TenantQuotas | null;
  registry: Registry;
  logger?: StoreLogger;
}

/** Another process's committed write, applied to this process's caches (from NOTIFY, or a front worker's IPC). */
export function applyCatalogEvent(event: CatalogEvent, store: PromptStore, quotas: TenantQuotas | null, logger?: StoreLogger): void {
  store.catalog.invalidate(event);
  if (!quotas) return;
  if (event.entity === 'quota') reloadQuotasOrWarn(quotas, logger);
  if (event.entity === 'tenant') quotas.forget(event.tenantId);
}

function reloadQuotasOrWarn(quotas: TenantQuotas, logger?: StoreLogger): void {
  quotas.reload().catch((err: Error) => logger?.warn({ err: err.message }, 'could not re-read tenant quotas; keeping the ones held'));
}

/** Starts listening (first connection attempted before it resolves); null without a database URL. */
export async function startCatalogSync(o: CatalogSyncOptions): Promise<CatalogSync | null> {
  if (!o.databaseUrl) return null;
  const { CatalogListener } = await import('../prompts/store/postgres/notify.ts');
  const up = new Gauge({ name: 'softserve_catalog_listener_connected', help: '1 while this process receives catalog change notifications from the database', registers: [o.registry] });
  const events = new Counter({ name: 'softserve_catalog_notifications_total', help: 'Catalog change notifications received, by entity', labelNames: ['entity'], registers: [o.registry] });
  const resyncs = new Counter({ name: 'softserve_catalog_resyncs_total', help: 'Times every cached catalog entry was dropped because notifications may have been missed (each (re)connect)', registers: [o.registry] });
  const reloadQuotas = () => { if (o.quotas) reloadQuotasOrWarn(o.quotas, o.logger); };
  const listener = new CatalogListener({
    url: o.databaseUrl,
    ...(o.logger ? { logger: o.logger } : {}),
    onEvent(event: CatalogEvent) {
      events.inc({ entity: event.entity });
      applyCatalogEvent(event, o.store, o.quotas, o.logger);
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
