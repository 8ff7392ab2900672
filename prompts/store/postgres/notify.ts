// The process side of cross-process cache invalidation: one dedicated
// connection (not from the pool, whose connections come and go) that LISTENs
// on softserve_catalog and hands every event the triggers send
// (notify-triggers.ts) to `onEvent`.
//
// A notification sent while this connection is down is lost for good, so
// every (re)connect calls `onResync` AFTER the LISTEN is in place: the caller
// forgets everything it holds, and whatever it reads again is at least as new
// as the LISTEN. The connection is re-made with capped exponential backoff
// for as long as the process runs; a periodic ping notices a silently dead
// peer (a half-open TCP connection never says it is closed). Errors on the
// client are handled here and never reach the process.

import pg from 'pg';

import { parseCatalogEvent, type CatalogEvent } from '../../catalog-cache.ts';
import type { StoreLogger } from '../sql-rows.ts';
import { CATALOG_CHANNEL } from './notify-triggers.ts';
import { CONNECT_TIMEOUT_MS } from './db.ts';

/** How the listener's connection shows in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = 'softserve-catalog-listener';

export interface CatalogListenerOptions {
  url: string;
  onEvent(event: CatalogEvent): void;
  /** After every successful LISTEN, the first included: anything missed must be forgotten. */
  onResync(): void;
  /** Connection state changes (for a gauge and /readyz). */
  onState?(connected: boolean): void;
  logger?: StoreLogger;
  /** First retry delay, doubled per failure up to `maxBackoffMs` (default 100 ms, 5 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How often the connection is checked with a trivial query (default 5 s). */
  pingMs?: number;
}

export class CatalogListener {
  private client: pg.Client | null = null;
  private connectedNow = false;
  private closed = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;

  constructor(private readonly opts: CatalogListenerOptions) {
    this.minBackoff = opts.minBackoffMs ?? 100;
    this.maxBackoff = opts.maxBackoffMs ?? 5000;
  }

  get connected(): boolean {
    return this.connectedNow;
  }

  /** Makes the first connection attempt; resolves either way (later attempts go on in the background). */
  async start(): Promise<void> {
    await this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    const c = this.client;
    this.client = null;
    this.setConnected(false);
    await c?.end().catch(() => {});
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.opts.url, application_name: LISTENER_APPLICATION_NAME, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, keepAlive: true, query_timeout: CONNECT_TIMEOUT_MS });
    // Handled here, whatever happens: an unhandled 'error' event would end the process.
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, null));
    client.on('notification', (n) => {
      if (n.channel !== CATALOG_CHANNEL) return;
      let event: CatalogEvent | null = null;
      try { event = parseCatalogEvent(JSON.parse(n.payload ?? '')); } catch { event = null; }
      if (event) this.opts.onEvent(event);
      else {
        // Not ours to understand (a newer build's event?): forgetting everything is always safe.
        this.opts.logger?.warn({ payload: (n.payload ?? '').slice(0, 200) }, 'unknown catalog notification; resyncing');
        this.opts.onResync();
      }
    });
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN ${CATALOG_CHANNEL}`);
    } catch (err) {
      this.lost(client, err as Error);
      return;
    }
    if (this.client !== client || this.closed) return;
    if (this.failures > 0) this.opts.logger?.warn({ attempts: this.failures }, 'catalog listener reconnected; caches cleared');
    this.failures = 0;
    this.setConnected(true);
    this.opts.onResync();
    this.pingTimer = setInterval(() => {
      client.query('SELECT 1').catch((err: Error) => this.lost(client, err));
    }, this.opts.pingMs ?? 5000);
    this.pingTimer.unref();
  }

  /** The connection `client` is gone (or never came): drop it and try again later. Idempotent per client. */
  private lost(client: pg.Client, err: Error | null): void {
    if (this.client !== client) return;
    this.client = null;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    client.removeAllListeners('notification');
    // Keep an 'error' handler on the dead client: a late socket error must still be caught.
    client.end().catch(() => {});
    if (this.closed) return;
    if (this.connectedNow || this.failures === 0) this.opts.logger?.warn({ err: err?.message ?? 'connection ended' }, 'catalog listener lost the database; retrying');
    this.setConnected(false);
    const delay = Math.min(this.maxBackoff, this.minBackoff * 2 ** this.failures) * (0.5 + Math.random() / 2);
    this.failures++;
    this.retryTimer = setTimeout(() => { this.retryTimer = null; void this.connect(); }, delay);
    this.retryTimer.unref();
  }

  private setConnected(c: boolean): void {
    if (c === this.connectedNow) return;
    this.connectedNow = c;
    this.opts.onState?.(c);
  }
}
