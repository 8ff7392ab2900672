// A front worker's side of the IPC channel to the primary process
// (protocol.ts). It stands in for what a single process holds itself: the
// scheduler (`RowQueue`: rows go to the primary's one scheduler, so fairness
// across tenants and batching span every front), the engine's readiness, the
// catalog changes of other processes, and the gathering of metrics and usage
// over all processes.
//
// Rows cross packed as for the inference thread (rows-wire.ts). Only scores
// come back: classify reads nothing else (the inference worker fetches
// nothing else from the model).

import { SoftserveError } from '../../kernels/errors.ts';
import type { ModelSpec } from '../../models/spec.ts';
import type { EngineRow } from '../../models/batch.ts';
import type { CatalogEvent } from '../../prompts/catalog-cache.ts';
import { packRows } from '../inference/rows-wire.ts';
import type { RowOutput, RowQueue, SubmitResult } from '../scheduler.ts';
import { errorFromWire, type GatherWhat, type ToFront, type ToPrimary } from './protocol.ts';

interface Pending { resolve(value: never): void; reject(err: Error): void }

export class FrontLink implements RowQueue {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private engineReady = true;
  private retryAfter = 1;
  private catalogListener: ((event: CatalogEvent) => void) | null = null;
  private collector: ((query: GatherWhat) => Promise<unknown>) | null = null;
  private drainListener: (() => void) | null = null;
  private inFlightSubmits = 0;
  private idleWaiters: Array<() => void> = [];
  private draining = false;

  private constructor(
    private readonly channel: NodeJS.Process,
    readonly spec: ModelSpec,
    /** How many fronts share the port (this one included). */
    readonly fronts: number,
    /** This front's number, for its log lines. */
    readonly index: number,
  ) {
    channel.on('message', (m: ToFront) => this.onMessage(m));
  }

  /** Waits for the primary's hello (the model's spec) on this process's IPC channel. */
  static async connect(channel: NodeJS.Process = process): Promise<FrontLink> {
    if (!channel.send) throw new Error('a front worker needs an IPC channel to its primary (started by node:cluster)');
    const hello = await new Promise<Extract<ToFront, { t: 'hello' }>>((resolve) => {
      const onHello = (m: ToFront) => {
        if (m.t !== 'hello') return;
        channel.off('message', onHello);
        resolve(m);
      };
      channel.on('message', onHello);
      channel.send!({ t: 'connect' } satisfies ToPrimary);
    });
    return new FrontLink(channel, hello.spec, hello.fronts, hello.index);
  }

  private send(m: ToPrimary): void {
    this.channel.send!(m);
  }

  get isEngineReady(): boolean {
    return this.engineReady;
  }

  retryAfterSeconds(): number {
    return this.retryAfter;
  }

  submit(tenant: string, rows: EngineRow[], deadlineMs: number): Promise<SubmitResult> {
    if (this.draining) return Promise.reject(new SoftserveError('DRAINING', 'the server is shutting down; retry on another instance'));
    const id = this.nextId++;
    const { packed } = packRows({ rows, groups: rows.map(() => 0) });
    this.inFlightSubmits++;
    return new Promise<SubmitResult>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject });
      this.send({ t: 'submit', id, tenant, deadlineMs, rows: packed });
    }).finally(() => {
      this.inFlightSubmits--;
      if (this.inFlightSubmits === 0) for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  /** Asks the primary to merge `query` over every process (metrics, usage). */
  gather<T>(query: GatherWhat): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: never) => void, reject });
      this.send({ t: 'gather', id, query });
    });
  }

  /** A write committed here: every other process must forget what it changed. */
  publish(event: CatalogEvent): void {
    this.send({ t: 'catalog', event });
  }

  jobQueued(): void {
    this.send({ t: 'job-queued' });
  }

  /** Where other processes' catalog changes go (this process's caches). */
  onCatalog(listener: (event: CatalogEvent) => void): void {
    this.catalogListener = listener;
  }

  /** Answers the primary's gathers with this process's own share. */
  onCollect(collector: (query: GatherWhat) => Promise<unknown>): void {
    this.collector = collector;
  }

  onDrain(listener: () => void): void {
    this.drainListener = listener;
  }

  /** Refuses new rows; resolves once every row already sent has its answer. */
  drain(): Promise<void> {
    this.draining = true;
    if (this.inFlightSubmits === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  get depth(): { inFlight: number } {
    return { inFlight: this.inFlightSubmits };
  }

  private onMessage(m: ToFront): void {
    switch (m.t) {
      case 'result': {
        const p = this.take(m.id);
        if (!p) return;
        const rows: RowOutput[] = [];
        for (let r = 0; r < m.rowBatch.length; r++) {
          // A copy per row: a view would keep the whole message's buffer alive as long as any one row.
          rows.push({ scores: m.scores.slice(m.scoreStart[r], m.scoreStart[r + 1]), batchId: m.rowBatch[r]! });
        }
        p.resolve({ rows, batchIds: m.batchIds, queueMs: m.queueMs, inferenceMs: m.inferenceMs } as never);
        return;
      }
      case 'error': {
        this.take(m.id)?.reject(errorFromWire(m.error));
        return;
      }
      case 'gathered': {
        this.take(m.id)?.resolve(m.data as never);
        return;
      }
      case 'engine':
        this.engineReady = m.ready;
        this.retryAfter = m.retryAfter;
        return;
      case 'catalog':
        this.catalogListener?.(m.event);
        return;
      case 'collect': {
        const collect = this.collector ?? (async () => null);
        collect(m.query).then(
          (data) => this.send({ t: 'collected', gid: m.gid, data }),
          () => this.send({ t: 'collected', gid: m.gid, data: null }),
        );
        return;
      }
      case 'drain':
        this.drainListener?.();
        return;
      case 'hello':
        return;
    }
  }

  private take(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }

  /** The primary is gone: nothing in flight will be answered. */
  failAll(): void {
    const err = new SoftserveError('INFERENCE_WORKER_RESTARTING', 'the inference process is gone');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.engineReady = false;
  }
}
