// What the classify path reads per request, held in memory: API key ->
// tenant, (tenant, task) -> task definition, (tenant, task, selector) -> the
// stored prompt versions it resolves to. Steady-state classify then reads
// nothing from the store (tensors already live in the residency cache, and
// the task's row plan is cached against the task object by its caller).
//
// Correctness rests on explicit invalidation: every write through
// PromptStore calls `invalidate(event)` after it commits. Events are small
// and serialisable so that, with several processes sharing one database, the
// same entry point can be driven by LISTEN/NOTIFY. A read that overlaps a
// write must not put a stale answer back: fills carry the generation seen
// before the read and are dropped if any invalidation happened meanwhile.
//
// Bounded by entry count (lru-cache). Unknown keys and missing things are
// not cached: a miss costs one query, as before, and random keys cannot push
// real ones out.

import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';

import type { StoredPromptVersion, Task, Tenant } from './store/index.ts';
import type { VoteMode } from './vote.ts';

/** A committed write the cache must forget. */
export type CatalogEvent =
  /** A key of this tenant was revoked. */
  | { entity: 'key'; tenantId: string }
  /** The tenant was deleted (with its keys, tasks, prompts and ensembles). */
  | { entity: 'tenant'; tenantId: string }
  /** The task, or one of its prompts or ensembles, was created, changed or deleted. */
  | { entity: 'task'; tenantId: string; task: string }
  /** A version of this prompt was added or deleted, or the prompt deleted: its selectors and the task's ensembles go, the rest of the task stays. */
  | { entity: 'prompt'; tenantId: string; task: string; prompt: string }
  /** The tenant's admission settings changed (held by server/tenant-quotas.ts, not here). */
  | { entity: 'quota'; tenantId: string };

/** An event that crossed a process boundary (NOTIFY), checked; null if it is not one. */
export function parseCatalogEvent(value: unknown): CatalogEvent | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.tenantId !== 'string') return null;
  if (v.entity === 'key' || v.entity === 'tenant' || v.entity === 'quota') return { entity: v.entity, tenantId: v.tenantId };
  if (v.entity === 'task' && typeof v.task === 'string') return { entity: 'task', tenantId: v.tenantId, task: v.task };
  if (v.entity === 'prompt' && typeof v.task === 'string' && typeof v.prompt === 'string') return { entity: 'prompt', tenantId: v.tenantId, task: v.task, prompt: v.prompt };
  return null;
}

/** What a selector resolves to before tensors are loaded. */
export interface CachedResolution {
  task: Task;
  ensemble: string | null;
  vote: VoteMode | null;
  versions: StoredPromptVersion[];
}

export interface CatalogCacheOptions {
  /** Most entries per map (keys, tasks, resolutions); default 10,000. */
  maxEntries?: number;
}

const SEP = '\u0000';
const PROMPT_SELECTOR = 'p/';
const ENSEMBLE_SELECTOR = 'e/';

/** A classify selector as a resolution key (names are validated: no '/' in them). */
export function selectorKey(s: { prompt?: string; version?: number; ensemble?: string }): string {
  if (s.ensemble !== undefined) return s.prompt !== undefined ? `!${s.prompt}/${s.ensemble}` : `${ENSEMBLE_SELECTOR}${s.ensemble}`;
  if (s.prompt !== undefined) return `${PROMPT_SELECTOR}${s.prompt}/${s.version ?? ''}`;
  return s.version !== undefined ? `v/${s.version}` : '-';
}

export class CatalogCache {
  private readonly keys: LRUCache<string, Tenant>;
  private readonly tasks: LRUCache<string, Task>;
  private readonly resolutions: LRUCache<string, CachedResolution>;
  private gen = 0;

  constructor(opts: CatalogCacheOptions = {}) {
    const max = opts.maxEntries ?? 10_000;
    this.keys = new LRUCache({ max });
    this.tasks = new LRUCache({ max });
    this.resolutions = new LRUCache({ max });
  }

  /** Take before a store read; pass to the matching `put…` so a read overlapping a write is not cached. */
  get generation(): number {
    return this.gen;
  }

  /** Keys are held by their digest, not in clear. */
  static keyId(apiKey: string): string {
    return createHash('sha256').update(apiKey, 'utf8').digest('base64');
  }

  tenantForKey(keyId: string): Tenant | undefined {
    return this.keys.get(keyId);
  }

  putTenantForKey(keyId: string, tenant: Tenant, generation: number): void {
    if (generation === this.gen) this.keys.set(keyId, tenant);
  }

  task(tenantId: string, name: string): Task | undefined {
    return this.tasks.get(tenantId + SEP + name);
  }

  putTask(task: Task, generation: number): void {
    if (generation === this.gen) this.tasks.set(task.tenantId + SEP + task.name, task);
  }

  resolution(tenantId: string, task: string, selector: string): CachedResolution | undefined {
    return this.resolutions.get(tenantId + SEP + task + SEP + selector);
  }

  putResolution(tenantId: string, task: string, selector: string, r: CachedResolution, generation: number): void {
    if (generation === this.gen) this.resolutions.set(tenantId + SEP + task + SEP + selector, r);
  }

  /** Forget everything a committed write may have changed. Writes are rare: a scan of bounded maps is fine. */
  invalidate(event: CatalogEvent): void {
    this.gen++;
    if (event.entity === 'key' || event.entity === 'tenant') {
      for (const [k, t] of [...this.keys.entries()]) if (t.id === event.tenantId) this.keys.delete(k);
    }
    if (event.entity === 'tenant') {
      dropPrefix(this.tasks, event.tenantId + SEP);
      dropPrefix(this.resolutions, event.tenantId + SEP);
    } else if (event.entity === 'task') {
      this.tasks.delete(event.tenantId + SEP + event.task);
      dropPrefix(this.resolutions, event.tenantId + SEP + event.task + SEP);
    } else if (event.entity === 'prompt') {
      // Another prompt's resolutions cannot change; an ensemble's may (members name prompts).
      const task = event.tenantId + SEP + event.task + SEP;
      dropPrefix(this.resolutions, task + PROMPT_SELECTOR + event.prompt + '/');
      dropPrefix(this.resolutions, task + ENSEMBLE_SELECTOR);
    }
  }

  /** Forget everything (a write whose scope is unknown). */
  clear(): void {
    this.gen++;
    this.keys.clear();
    this.tasks.clear();
    this.resolutions.clear();
  }

  stats(): { keys: number; tasks: number; resolutions: number } {
    return { keys: this.keys.size, tasks: this.tasks.size, resolutions: this.resolutions.size };
  }
}

function dropPrefix<V extends {}>(cache: LRUCache<string, V>, prefix: string): void {
  for (const k of [...cache.keys()]) if (k.startsWith(prefix)) cache.delete(k);
}
