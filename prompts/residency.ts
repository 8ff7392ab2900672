// Prompt tensors resident in memory: an LRU bounded in bytes, keyed by the
// content hash of the stored file (so two versions with identical tensors
// share one entry, and an entry can never be stale: a hash names fixed bytes).
// Loads of the same hash that overlap share one read. Hits, misses,
// evictions, bytes and entries are counted, and exported to prom-client when a
// registry is given.
//
// The Float32Arrays handed out are shared with the cache: callers read them,
// never write them.

import { LRUCache } from 'lru-cache';
import { Counter, Gauge, type Registry } from 'prom-client';

import { promptBytes, type PromptTensors } from './kinds.ts';

export interface ResidencyStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Bytes of tensors now resident. */
  bytes: number;
  entries: number;
  maxBytes: number;
}

export interface ResidencyOptions {
  maxBytes: number;
  registry?: Registry;
  /** Metric name prefix (default 'softserve_prompt_cache'). */
  metricPrefix?: string;
}

export class PromptResidency {
  readonly maxBytes: number;
  private readonly cache: LRUCache<string, PromptTensors>;
  private readonly inflight = new Map<string, Promise<PromptTensors>>();
  private hits = 0;
  private misses = 0;
  private evictions = 0;
  private readonly metrics?: { hits: Counter; misses: Counter; evictions: Counter };

  constructor(opts: ResidencyOptions) {
    if (!Number.isSafeInteger(opts.maxBytes) || opts.maxBytes < 1) throw new Error(`cache size must be a positive integer of bytes, got ${opts.maxBytes}`);
    this.maxBytes = opts.maxBytes;
    this.cache = new LRUCache<string, PromptTensors>({
      maxSize: opts.maxBytes,
      sizeCalculation: (v) => Math.max(1, promptBytes(v)),
      dispose: (_v, _k, reason) => {
        if (reason === 'evict') {
          this.evictions++;
          this.metrics?.evictions.inc();
        }
      },
    });
    if (opts.registry) {
      const p = opts.metricPrefix ?? 'softserve_prompt_cache';
      const registers = [opts.registry];
      this.metrics = {
        hits: new Counter({ name: `${p}_hits_total`, help: 'Prompt tensor loads served from memory', registers }),
        misses: new Counter({ name: `${p}_misses_total`, help: 'Prompt tensor loads that read the tensor file', registers }),
        evictions: new Counter({ name: `${p}_evictions_total`, help: 'Prompts evicted to stay within the byte bound', registers }),
      };
      const cache = this.cache;
      new Gauge({ name: `${p}_bytes`, help: 'Bytes of prompt tensors resident', registers, collect() { this.set(cache.calculatedSize); } });
      new Gauge({ name: `${p}_entries`, help: 'Prompts resident', registers, collect() { this.set(cache.size); } });
      const max = opts.maxBytes;
      new Gauge({ name: `${p}_max_bytes`, help: 'Byte bound of the prompt cache', registers, collect() { this.set(max); } });
    }
  }

  /** Returns the tensors for `hash`, calling `load` on a miss. */
  async get(hash: string, load: () => Promise<PromptTensors>): Promise<PromptTensors> {
    const hit = this.cache.get(hash);
    if (hit) {
      this.hits++;
      this.metrics?.hits.inc();
      return hit;
    }
    const pending = this.inflight.get(hash);
    if (pending) {
      // Another caller is already reading it: one read, counted once as a miss.
      this.hits++;
      this.metrics?.hits.inc();
      return pending;
    }
    this.misses++;
    this.metrics?.misses.inc();
    const p = load().then((t) => {
      // Larger than the whole bound: served, never resident.
      if (promptBytes(t) <= this.maxBytes) this.cache.set(hash, t);
      return t;
    }).finally(() => {
      this.inflight.delete(hash);
    });
    this.inflight.set(hash, p);
    return p;
  }

  /** Drops an entry (its file is going away). */
  forget(hash: string): void {
    this.cache.delete(hash);
  }

  has(hash: string): boolean {
    return this.cache.has(hash);
  }

  stats(): ResidencyStats {
    return {
      hits: this.hits,
      misses: this.misses,
      evictions: this.evictions,
      bytes: this.cache.calculatedSize,
      entries: this.cache.size,
      maxBytes: this.maxBytes,
    };
  }
}
