// Admission: whether a classify request may start, decided before any costly
// work (tokenisation, queueing) from a cheap estimate of what it will cost.
// A refused request answers 429 with Retry-After and a code that names the
// limit it hit; it has cost an auth lookup, a bounded JSON parse and a map
// lookup, nothing more.
//
// What is counted. A request holds, from admission until it is answered:
//   - one concurrency slot of its tenant (taken before the body is read);
//   - its rows (inputs × prompts) and an upper bound on its tokens, in the
//     tenant's account and in the global account.
// The token bound is taken from the body, not the tokenizer: a token covers
// at least one UTF-8 byte, so min(max_text_tokens, bytes + 1) per input, plus
// the template's bytes, the prompt's virtual tokens and a few special tokens.
//
// The rules, in order (the first that fails answers). C is the global budget
// (rows, and tokens alike), R the reserve (SOFTSERVE_ADMIT_RESERVE_PERCENT of
// C), B = C − R the main budget, u a tenant's holding, U the total, s the request.
//   1. A request that could never fit (over its tenant's limits, or over B)
//      is 413, not 429: retrying would not help.
//   2. Per tenant: concurrency (requests in flight, checked before the body
//      is read), rows and tokens in flight (limits configurable per tenant
//      through the admin API).
//   3. Global: U + s ≤ C.
//   4. Within the main budget (U + s ≤ B), a weighted fair share of it:
//      u + s ≤ B × w / W, where W is the weight of the active tenants (those
//      holding admitted work, counting the one asking). Alone, a tenant may
//      use all of B; with five others active, a sixth of it. Shares bind once
//      the main budget is more than half in use (below that, capacity is
//      idle: anyone may take it). Holding more than a few batches' worth buys
//      a tenant no throughput (the scheduler serves tenants round-robin), so
//      the cap costs nothing useful.
//   5. The reserve: when U + s > B, only light tenants are admitted: those
//      that will hold at most R × w / 8 after admission. Tenants that hold
//      more (flooders, however many keys they use: keys belong to one
//      tenant) can never enter the reserve. So heavy tenants together hold
//      at most B, each light tenant at most R × w / 8, and a light tenant is
//      refused only if other light tenants of total weight 8 − w fill the
//      reserve: five flooders cannot push a polite tenant into 429, nor can
//      a flooder that arrives while the others' excess (taken when they were
//      alone) drains.
// A tenant's shares shrink when others become active; what it holds above
// its new share is not taken back, it drains as its requests are answered.

import { Counter, Gauge, type Registry } from 'prom-client';
import { SoftserveError } from '../kernels/errors.ts';

export interface TenantLimits {
  /** Requests in flight at once. */
  maxConcurrency: number;
  /** Engine rows (inputs × prompts) admitted and not yet answered. */
  maxRows: number;
  /** Estimated tokens admitted and not yet answered. */
  maxTokens: number;
}

export interface TenantQuota {
  /** Relative weight in the fair share (default 1). */
  weight: number;
  /** Overrides of the default tenant limits; absent keys take the default. */
  limits: Partial<TenantLimits>;
}

export interface AdmissionConfig {
  /** Global budget: rows and estimated tokens in flight over all tenants. */
  maxRows: number;
  maxTokens: number;
  /** Percent of the global budget held back for tenants within their fair share. */
  reservePercent: number;
  /** Default per-tenant limits. */
  tenant: TenantLimits;
  /**
   * A 429 is answered after this pause (at most its Retry-After): a client
   * that ignores Retry-After and resends at once cannot spin the server on
   * refusals. An honest client waits Retry-After anyway and loses nothing.
   */
  refusalDelayMs: number;
}

export const DEFAULT_TENANT_LIMITS: TenantLimits = { maxConcurrency: 64, maxRows: 1024, maxTokens: 65536 };

export interface RequestCost { rows: number; tokens: number }

/** Special tokens a row may carry besides its text, template and prompt (BOS, CLS/SEP, a mask). */
const SPECIAL_TOKENS_BOUND = 4;

/**
 * Upper bound on a classify request's rows and tokens, from its body and its
 * resolved prompts, without tokenising: every token covers at least one byte.
 */
export function estimateCost(inputs: string[], templateBytes: number, virtualTokens: number[], maxTextTokens: number): RequestCost {
  let text = 0;
  for (const s of inputs) text += Math.min(maxTextTokens, Buffer.byteLength(s, 'utf8') + 1);
  const members = Math.max(1, virtualTokens.length);
  const perRowExtra = templateBytes + 1 + SPECIAL_TOKENS_BOUND;
  const virtual = virtualTokens.reduce((a, b) => a + b, 0);
  return { rows: inputs.length * members, tokens: members * (text + inputs.length * perRowExtra) + inputs.length * virtual };
}

interface Account { rows: number; tokens: number; requests: number; weight: number }

export type AdmissionLimit =
  | 'tenant_concurrency' | 'tenant_rows' | 'tenant_tokens' | 'global_rows' | 'global_tokens' | 'fair_share' | 'reserve';

/** A flooding tenant's refusals are held at most this many times the refusal delay (Admission.refusalDelay)... */
export const REFUSAL_STRETCH_MAX = 8;
/** ... and, stretched, never past 10 s (well inside the drain timeout), nor past the plain delay if that is longer. */
export const REFUSAL_HOLD_MAX_MS = 10_000;

/** The reserve is shared by at most this many light tenants (of weight 1) at once. */
export const RESERVE_SLOTS = 8;

export interface Ticket { release(): void }

/** The part of a response the admission gate and a held refusal watch: whether its client is gone. */
interface ClientResponse {
  readonly closed?: boolean;
  once(event: 'close', listener: () => void): unknown;
}

export class Admission {
  private readonly accounts = new Map<string, Account>();
  private totalRows = 0;
  private totalTokens = 0;
  /** Sum of the weights of tenants holding admitted rows. */
  private activeWeight = 0;
  private readonly refused: Counter<'limit'>;
  private readonly admitted: Counter;
  private readonly inFlightRows: Gauge;
  private readonly inFlightTokens: Gauge;
  private readonly refusalsHeld: Gauge;
  /** Per tenant: refusals waiting out their delay (holdRefusal). */
  private readonly heldRefusals = new Map<string, number>();

  /** The main budget, which fair shares divide: the global budget less the reserve. */
  private readonly mainBudget: RequestCost;

  constructor(
    private readonly config: AdmissionConfig,
    /** The tenant's weight and limit overrides (a memory lookup: called on every request). */
    private readonly quotaOf: (tenantId: string) => TenantQuota,
    /** Seconds a refused client should wait. */
    private readonly retryAfter: () => number,
    registry: Registry,
  ) {
    const keep = 1 - config.reservePercent / 100;
    this.mainBudget = { rows: Math.floor(config.maxRows * keep), tokens: Math.floor(config.maxTokens * keep) };
    this.refused = new Counter({ name: 'softserve_admission_refused_total', help: 'Classify requests refused at admission, before any tokenisation or queueing, by the limit they hit', labelNames: ['limit'], registers: [registry] });
    this.admitted = new Counter({ name: 'softserve_admission_admitted_total', help: 'Classify requests admitted', registers: [registry] });
    this.inFlightRows = new Gauge({ name: 'softserve_admission_rows', help: 'Rows admitted and not yet answered', registers: [registry] });
    this.inFlightTokens = new Gauge({ name: 'softserve_admission_tokens', help: 'Estimated tokens admitted and not yet answered', registers: [registry] });
    this.refusalsHeld = new Gauge({ name: 'softserve_admission_refusals_held', help: 'Refusals (429) waiting out the refusal delay before they are answered', registers: [registry] });
  }

  /** The tenant's account; a new one is only stored once something is admitted into it. */
  private account(tenantId: string): Account {
    return this.accounts.get(tenantId) ?? { rows: 0, tokens: 0, requests: 0, weight: 0 };
  }

  private limitsOf(quota: TenantQuota): TenantLimits {
    return { ...this.config.tenant, ...quota.limits };
  }

  private refuse(limit: AdmissionLimit, message: string, code: 'OVERLOADED' | 'TENANT_LIMIT' | 'FAIR_SHARE_EXCEEDED'): never {
    this.refused.inc({ limit });
    const retryAfter = limit === 'tenant_concurrency' ? 1 : this.retryAfter();
    // A refusal is an answer, not a fault: no stack trace to capture (it is the most frequent error under a flood).
    const keep = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      throw new SoftserveError(code, `${message}; retry after ${retryAfter} s`, { limit, retryAfter });
    } finally {
      Error.stackTraceLimit = keep;
    }
  }

  /**
   * Takes a concurrency slot for the tenant, or throws 429: TENANT_LIMIT
   * (tenant_concurrency), or whatever limit would refuse even a one-row
   * request now (then the body need not be read at all). Release it once the
   * response is done.
   */
  enter(tenantId: string): Ticket {
    const quota = this.quotaOf(tenantId);
    const a = this.account(tenantId);
    const max = this.limitsOf(quota).maxConcurrency;
    if (a.requests + 1 > max) this.refuse('tenant_concurrency', `this tenant already has ${a.requests} requests in flight, its limit`, 'TENANT_LIMIT');
    // If even the smallest request (one row, one token) would be refused now, refuse before the body is read.
    this.check(quota, this.limitsOf(quota), a, { rows: 1, tokens: 1 });
    a.requests++;
    this.accounts.set(tenantId, a);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        a.requests--;
        this.forgetIfIdle(tenantId, a);
      },
    };
  }

  /** Admits a request's rows and tokens, or throws 413/429 naming the limit. */
  admit(tenantId: string, cost: RequestCost): Ticket {
    const quota = this.quotaOf(tenantId);
    const limits = this.limitsOf(quota);
    const a = this.account(tenantId);
    const main = this.mainBudget;
    if (cost.rows > Math.min(limits.maxRows, main.rows)) this.neverAdmitted(`${cost.rows} rows`, Math.min(limits.maxRows, main.rows));
    if (cost.tokens > Math.min(limits.maxTokens, main.tokens)) this.neverAdmitted(`up to ${cost.tokens} tokens`, Math.min(limits.maxTokens, main.tokens));
    this.check(quota, limits, a, cost);
    if (a.rows === 0) {
      a.weight = quota.weight;
      this.activeWeight += quota.weight;
    }
    a.rows += cost.rows;
    a.tokens += cost.tokens;
    this.accounts.set(tenantId, a);
    this.totalRows += cost.rows;
    this.totalTokens += cost.tokens;
    this.admitted.inc();
    this.inFlightRows.set(this.totalRows);
    this.inFlightTokens.set(this.totalTokens);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        a.rows -= cost.rows;
        a.tokens -= cost.tokens;
        this.totalRows -= cost.rows;
        this.totalTokens -= cost.tokens;
        if (a.rows === 0) {
          this.activeWeight -= a.weight;
          a.weight = 0;
        }
        this.inFlightRows.set(this.totalRows);
        this.inFlightTokens.set(this.totalTokens);
        this.forgetIfIdle(tenantId, a);
      },
    };
  }

  /** Throws 413: the request needs more than this tenant can ever have admitted at once. */
  private neverAdmitted(what: string, limit: number): never {
    this.refused.inc({ limit: 'request_size' });
    throw new SoftserveError('PAYLOAD_TOO_LARGE', `this request needs ${what}, more than the ${limit} this tenant can ever have admitted at once`, { limit: 'request_size', max: limit });
  }

  /** Rules 2 to 5 for a request of `cost` from a tenant holding `a` (throws 429 naming the limit). */
  private check(quota: TenantQuota, limits: TenantLimits, a: Account, cost: RequestCost): void {
    const main = this.mainBudget;
    if (a.rows + cost.rows > limits.maxRows) this.refuse('tenant_rows', `this tenant has ${a.rows} rows in flight; ${cost.rows} more would pass its limit of ${limits.maxRows}`, 'TENANT_LIMIT');
    if (a.tokens + cost.tokens > limits.maxTokens) this.refuse('tenant_tokens', `this tenant has up to ${a.tokens} tokens in flight; ${cost.tokens} more would pass its limit of ${limits.maxTokens}`, 'TENANT_LIMIT');
    if (this.totalRows + cost.rows > this.config.maxRows) this.refuse('global_rows', `the server has ${this.totalRows} rows in flight, ${cost.rows} more would pass its limit of ${this.config.maxRows}`, 'OVERLOADED');
    if (this.totalTokens + cost.tokens > this.config.maxTokens) this.refuse('global_tokens', `the server has up to ${this.totalTokens} tokens in flight, ${cost.tokens} more would pass its limit of ${this.config.maxTokens}`, 'OVERLOADED');

    const weight = quota.weight;
    const activeWeight = this.activeWeight + (a.rows > 0 ? 0 : weight);
    const share = { rows: (main.rows * weight) / activeWeight, tokens: (main.tokens * weight) / activeWeight };
    const after = { rows: a.rows + cost.rows, tokens: a.tokens + cost.tokens };
    const inReserve = this.totalRows + cost.rows > main.rows || this.totalTokens + cost.tokens > main.tokens;
    if (inReserve) {
      const reserve = { rows: (this.config.maxRows - main.rows) * weight / RESERVE_SLOTS, tokens: (this.config.maxTokens - main.tokens) * weight / RESERVE_SLOTS };
      if (after.rows > reserve.rows || after.tokens > reserve.tokens) {
        this.refuse('reserve', `the server's main budget is in use and the rest is reserved for tenants holding at most ${Math.floor(reserve.rows)} rows and ${Math.floor(reserve.tokens)} tokens; this tenant would hold ${after.rows} rows and up to ${after.tokens} tokens`, 'FAIR_SHARE_EXCEEDED');
      }
    } else {
      // Shares bind once the main budget is contended (over half in use): below that, capacity is idle and anyone may use it.
      const contended = this.totalRows + cost.rows > main.rows / 2 || this.totalTokens + cost.tokens > main.tokens / 2;
      if (contended && (after.rows > share.rows || after.tokens > share.tokens)) {
        const [what, held, fair] = after.rows > share.rows ? ['rows', a.rows, share.rows] : ['tokens', a.tokens, share.tokens];
        this.refuse('fair_share', `this tenant holds ${held} ${what} in flight; ${what === 'rows' ? cost.rows : cost.tokens} more would pass its fair share of ${Math.floor(fair)} while ${this.activeTenants(a)} tenants are active`, 'FAIR_SHARE_EXCEEDED');
      }
    }

  }

  private activeTenants(a: Account): number {
    let n = a.rows > 0 ? 0 : 1;
    for (const x of this.accounts.values()) if (x.rows > 0) n++;
    return n;
  }

  private forgetIfIdle(tenantId: string, a: Account): void {
    if (a.rows === 0 && a.requests === 0 && this.accounts.get(tenantId) === a) this.accounts.delete(tenantId);
  }

  /**
   * How long a refusal is held before it is answered: the refusal delay (at
   * most `retryAfterSeconds`), stretched for a tenant that already has
   * refusals held, by 1 + (held / its concurrency limit)², at most
   * REFUSAL_STRETCH_MAX times. Up to its limit's worth of refusals held (a
   * burst past the limit) a tenant waits under twice the delay; beyond that
   * its client is resending without waiting, and the hold climbs quickly to
   * the cap, so each round of its flood comes slower and costs the server
   * less. A stretched hold may outlast the refusal's Retry-After; it never
   * passes REFUSAL_HOLD_MAX_MS.
   */
  refusalDelay(retryAfterSeconds: number, tenantId?: string): number {
    const ms = Math.min(this.config.refusalDelayMs, retryAfterSeconds * 1000);
    if (ms <= 0 || tenantId === undefined) return Math.max(0, ms);
    const held = this.heldRefusals.get(tenantId) ?? 0;
    const limit = this.limitsOf(this.quotaOf(tenantId)).maxConcurrency;
    const stretched = ms * Math.min(REFUSAL_STRETCH_MAX, 1 + (held / limit) ** 2);
    return Math.round(Math.min(stretched, Math.max(ms, REFUSAL_HOLD_MAX_MS)));
  }

  /**
   * Resolves after the refusal delay (`refusalDelay`), counting the refusal
   * as held meanwhile; the caller then answers it. If `response` closes
   * first, or has closed already (the client went away), the refusal is
   * dropped: it no longer counts, and the promise never settles (there is
   * nothing to answer).
   */
  holdRefusal(retryAfterSeconds: number, tenantId?: string, response?: ClientResponse): Promise<void> {
    return new Promise((resolve) => {
      if (response?.closed) return;
      const ms = this.refusalDelay(retryAfterSeconds, tenantId);
      if (ms <= 0) return resolve();
      let held = true;
      const release = () => {
        if (!held) return;
        held = false;
        clearTimeout(timer);
        if (tenantId === undefined) return;
        const left = (this.heldRefusals.get(tenantId) ?? 1) - 1;
        if (left > 0) this.heldRefusals.set(tenantId, left);
        else this.heldRefusals.delete(tenantId);
        this.refusalsHeld.dec();
      };
      if (tenantId !== undefined) {
        this.heldRefusals.set(tenantId, (this.heldRefusals.get(tenantId) ?? 0) + 1);
        this.refusalsHeld.inc();
      }
      const timer = setTimeout(() => {
        release();
        resolve();
      }, ms);
      response?.once('close', release);
    });
  }

  /** What a tenant holds now (for tests and the admin view). */
  usage(tenantId: string): { rows: number; tokens: number; requests: number } {
    const a = this.accounts.get(tenantId);
    return { rows: a?.rows ?? 0, tokens: a?.tokens ?? 0, requests: a?.requests ?? 0 };
  }

  /**
   * The classify route's gate, after auth and before the body is read: takes
   * the tenant's concurrency slot at once and resolves, giving the slot back
   * when the response is done or the connection closes; or, over the limit,
   * rejects with the refusal once the refusal delay has passed (the body is
   * never read or parsed). The error writer sends details.retryAfter as
   * Retry-After. A response already closed takes nothing, and the promise
   * never settles.
   */
  gate(tenantId: string, res: ClientResponse): Promise<void> {
    // A client gone while it was authenticated (a store lookup) has no answer to wait for, and its
    // 'close' has already fired: a slot taken now would never be given back.
    if (res.closed) return new Promise(() => {});
    let slot: Ticket;
    try {
      slot = this.enter(tenantId);
    } catch (err) {
      const retry = (err as SoftserveError).details?.retryAfter;
      return this.holdRefusal(Number(retry ?? 1), tenantId, res).then(() => { throw err; });
    }
    res.once('close', () => slot.release());
    return Promise.resolve();
  }
}

/**
 * One front worker's share when K fronts admit independently (server/cluster/):
 * 1/K of every tenant's concurrency, rounded up (connections are spread over
 * the fronts evenly). Rows and tokens are not divided: a front must still
 * admit the largest request it would admit alone, and the primary's one
 * scheduler bounds each tenant's queued rows, and the total, across fronts.
 */
export function frontShare(config: AdmissionConfig, fronts: number): AdmissionConfig {
  if (fronts <= 1) return config;
  return { ...config, tenant: { ...config.tenant, maxConcurrency: Math.ceil(config.tenant.maxConcurrency / fronts) } };
}

/** A tenant's quota as one of K fronts applies it (see frontShare). */
export function frontQuota(quota: TenantQuota, fronts: number): TenantQuota {
  const c = quota.limits.maxConcurrency;
  if (fronts <= 1 || c === undefined) return quota;
  return { ...quota, limits: { ...quota.limits, maxConcurrency: Math.ceil(c / fronts) } };
}
