// Admission rules on their own (server/admission.ts): state in, decision out,
// no server and no clocks. The HTTP side is in test/isolation.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Registry } from 'prom-client';
import { Admission, REFUSAL_HOLD_MAX_MS, REFUSAL_STRETCH_MAX, RESERVE_SLOTS, estimateCost, type AdmissionConfig, type TenantQuota } from '../server/admission.ts';
import { jsonDepthOver } from '../server/body-limits.ts';
import { SoftserveError } from '../kernels/errors.ts';

const CONFIG: AdmissionConfig = { maxRows: 1000, maxTokens: 1_000_000, reservePercent: 25, refusalDelayMs: 0, tenant: { maxConcurrency: 4, maxRows: 10_000, maxTokens: 10_000_000 } };

function make(quotas: Record<string, TenantQuota> = {}, config = CONFIG) {
  return new Admission(config, (id) => quotas[id] ?? { weight: 1, limits: {} }, () => 3, new Registry());
}

/** The error code of a refused call, or 'admitted'. */
function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'admitted';
  } catch (err) {
    assert.ok(err instanceof SoftserveError, String(err));
    return `${err.code}:${String(err.details?.limit)}`;
  }
}

/** Admits `rows`-row requests for `tenant` until one is refused; returns how many got in and the refusal. */
function fill(a: Admission, tenant: string, rows: number): { admitted: number; refusal: string } {
  for (let n = 0; ; n++) {
    const r = outcome(() => a.admit(tenant, { rows, tokens: rows }));
    if (r !== 'admitted') return { admitted: n, refusal: r };
  }
}

test('a lone tenant may use the whole main budget, not the reserve', () => {
  const a = make();
  const main = 1000 * 0.75;
  const f = fill(a, 'flood', 16);
  assert.equal(f.admitted, Math.floor(main / 16));
  assert.equal(f.refusal, 'FAIR_SHARE_EXCEEDED:reserve');
  assert.equal(a.usage('flood').rows, Math.floor(main / 16) * 16);
});

test('five flooders, arriving one after another, cannot push a light tenant into 429', () => {
  const a = make();
  for (const t of ['f1', 'f2', 'f3', 'f4', 'f5']) fill(a, t, 16);
  // Heavy tenants together hold at most the main budget; the reserve is for light ones.
  const flooders = ['f1', 'f2', 'f3', 'f4', 'f5'].reduce((s, t) => s + a.usage(t).rows, 0);
  assert.ok(flooders <= 750 + 4 * (250 / RESERVE_SLOTS), `flooders hold ${flooders} rows`);
  for (let i = 0; i < 10; i++) assert.equal(outcome(() => a.admit('polite', { rows: 1, tokens: 50 })), 'admitted', `polite request ${i}`);
  // And the flooders still cannot take more.
  for (const t of ['f1', 'f2', 'f3', 'f4', 'f5']) assert.match(outcome(() => a.admit(t, { rows: 16, tokens: 16 })), /^(FAIR_SHARE_EXCEEDED|OVERLOADED)/);
});

test('one actor with many requests is one tenant: its keys share one account', () => {
  const a = make();
  assert.equal(fill(a, 'actor', 64).refusal, 'FAIR_SHARE_EXCEEDED:reserve');
  assert.equal(fill(a, 'actor', 1).refusal, 'FAIR_SHARE_EXCEEDED:reserve');
  assert.equal(a.usage('actor').rows, 750);
  assert.equal(outcome(() => a.admit('polite', { rows: 4, tokens: 400 })), 'admitted');
});

test('released work frees the budget; a flooder over its new share drains instead of growing', () => {
  const a = make();
  const tickets = Array.from({ length: 40 }, () => a.admit('big', { rows: 16, tokens: 16 }));
  const p = a.admit('p', { rows: 8, tokens: 8 });
  // Two active tenants: big's share is half the main budget, and it holds more.
  assert.equal(outcome(() => a.admit('big', { rows: 16, tokens: 16 })), 'FAIR_SHARE_EXCEEDED:fair_share');
  for (const t of tickets.slice(0, 20)) t.release();
  assert.equal(a.usage('big').rows, 320);
  assert.equal(outcome(() => a.admit('big', { rows: 16, tokens: 16 })), 'admitted');
  p.release();
  for (const t of tickets.slice(20)) t.release();
  t0(a);
});

function t0(a: Admission) {
  // Everything released except one 16-row request of 'big'.
  assert.equal(a.usage('big').rows, 16);
  assert.equal(a.usage('p').rows, 0);
}

test('weights divide the main budget', () => {
  const a = make({ heavy: { weight: 3, limits: {} } });
  a.admit('light', { rows: 1, tokens: 1 });
  const h = fill(a, 'heavy', 10);
  // heavy's share: 750 × 3/4.
  assert.equal(h.admitted * 10, Math.floor((750 * 3) / 4 / 10) * 10);
  const b = make();
  b.admit('light', { rows: 1, tokens: 1 });
  assert.equal(fill(b, 'heavy', 10).admitted * 10, Math.floor(750 / 2 / 10) * 10);
});

test('per-tenant limits: rows, tokens, concurrency; and what can never fit is 413', () => {
  const a = make({ small: { weight: 1, limits: { maxRows: 40, maxTokens: 1000, maxConcurrency: 2 } } });
  a.admit('small', { rows: 32, tokens: 100 });
  assert.equal(outcome(() => a.admit('small', { rows: 16, tokens: 10 })), 'TENANT_LIMIT:tenant_rows');
  assert.equal(outcome(() => a.admit('small', { rows: 1, tokens: 950 })), 'TENANT_LIMIT:tenant_tokens');
  assert.equal(outcome(() => a.admit('small', { rows: 41, tokens: 1 })), 'PAYLOAD_TOO_LARGE:request_size');
  assert.equal(outcome(() => a.admit('other', { rows: 751, tokens: 1 })), 'PAYLOAD_TOO_LARGE:request_size');
  const s1 = a.enter('small');
  a.enter('small');
  assert.equal(outcome(() => a.enter('small')), 'TENANT_LIMIT:tenant_concurrency');
  s1.release();
  s1.release(); // twice is once
  assert.equal(outcome(() => a.enter('small')), 'admitted');
  assert.equal(outcome(() => a.enter('small')), 'TENANT_LIMIT:tenant_concurrency');
});

test('the global budget bounds everyone, light tenants included', () => {
  const cfg: AdmissionConfig = { ...CONFIG, maxRows: 100, reservePercent: 80 };
  const a = make({}, cfg);
  // Main budget 20 rows, reserve 80 (light tenants hold at most 80 / 8 = 10 rows each).
  for (let i = 0; i < 10; i++) a.admit(`t${i}`, { rows: 8, tokens: 8 });
  a.admit('late', { rows: 8, tokens: 8 });
  assert.equal(outcome(() => a.admit('late', { rows: 4, tokens: 4 })), 'FAIR_SHARE_EXCEEDED:reserve');
  a.admit('late2', { rows: 8, tokens: 8 });
  assert.equal(outcome(() => a.admit('late3', { rows: 8, tokens: 8 })), 'OVERLOADED:global_rows');
});

test('cost estimate: an upper bound from bytes, capped by max_text_tokens, times members', () => {
  const c = estimateCost(['abc', 'é'.repeat(1000)], 10, [5, 5, 0], 256);
  assert.equal(c.rows, 6);
  // Per member: (3+1) + min(256, 2001) text tokens, plus (10 + 1 + 4) per input; plus virtual tokens per input.
  assert.equal(c.tokens, 3 * (4 + 256 + 2 * 15) + 2 * 10);
  assert.deepEqual(estimateCost(['x'], 0, [], 256), { rows: 1, tokens: 2 + 5 });
});

test('JSON depth scan: brackets in strings do not count, escapes are skipped', () => {
  const b = (s: string) => Buffer.from(s);
  assert.equal(jsonDepthOver(b('{"a":[[1,2],[3]]}'), 3), 0);
  assert.equal(jsonDepthOver(b('{"a":[[[1]]]}'), 3), 4);
  assert.equal(jsonDepthOver(b('{"a":"[[[[[[\\"[[[["}'), 2), 0);
  assert.equal(jsonDepthOver(b('['.repeat(1_000_000)), 32), 33);
});

test('refusals are held longer for a tenant that already has many held, at most REFUSAL_STRETCH_MAX times, and only for it', async () => {
  const a = make({ small: { weight: 1, limits: { maxConcurrency: 4 } } }, { ...CONFIG, refusalDelayMs: 20 });
  assert.equal(a.refusalDelay(1, 'small'), 20, 'nothing held: the plain delay');
  assert.equal(a.refusalDelay(0.01, 'small'), 10, 'never more than Retry-After before stretching');
  const answered: string[] = [];
  const held: Array<Promise<void>> = [];
  const refuse = (tenant: string) => held.push(a.holdRefusal(1, tenant).then(() => { answered.push(tenant); }));
  for (let i = 0; i < 2; i++) refuse('small');
  assert.equal(a.refusalDelay(1, 'small'), 25, '2 held with a limit of 4: 1 + (2/4)² times the delay');
  for (let i = 0; i < 2; i++) refuse('small');
  assert.equal(a.refusalDelay(1, 'small'), 40, '4 held with a limit of 4: twice the delay');
  for (let i = 0; i < 4; i++) refuse('small');
  assert.equal(a.refusalDelay(1, 'small'), 100, '8 held: 1 + 2² times');
  assert.equal(a.refusalDelay(1, 'other'), 20, 'another tenant is not slowed');
  assert.equal(a.refusalDelay(1), 20, 'a refusal not tied to a tenant is not stretched');
  for (let i = 0; i < 100; i++) refuse('small');
  assert.equal(a.refusalDelay(1, 'small'), 20 * REFUSAL_STRETCH_MAX, 'capped');
  assert.equal(answered.length, 0, 'held until the delay passes');
  await Promise.all(held);
  assert.equal(answered.length, 108);
  assert.equal(a.refusalDelay(1, 'small'), 20, 'back to the plain delay once they are answered');

  // A refusal whose client went away (its response closed) is dropped: not answered, no longer held.
  const gone = new EventEmitter();
  const dropped: string[] = [];
  void a.holdRefusal(1, 'small', gone).then(() => dropped.push('gone'));
  assert.equal(a.refusalDelay(1, 'small'), Math.round(20 * (1 + (1 / 4) ** 2)), 'one held');
  gone.emit('close');
  assert.equal(a.refusalDelay(1, 'small'), 20, 'dropped at once when its response closes');
  // A later refusal of a delay as long is answered after the dropped one would have been.
  await a.holdRefusal(1, 'small');
  assert.equal(dropped.join(), '', 'the dropped refusal is never answered');
  const alreadyGone = Object.assign(new EventEmitter(), { closed: true });
  void a.holdRefusal(1, 'small', alreadyGone).then(() => dropped.push('already gone'));
  assert.equal(a.refusalDelay(1, 'small'), 20, 'a client gone before the refusal: not held');
  const answeredThenClosed = new EventEmitter();
  await a.holdRefusal(1, 'small', answeredThenClosed);
  answeredThenClosed.emit('close'); // a response closes after it is answered too: nothing is released twice
  assert.equal(dropped.join(), '', 'nor is one whose client had gone already');
  assert.equal(a.refusalDelay(1, 'small'), 20);

  // However long the delay, a stretched hold stops at REFUSAL_HOLD_MAX_MS (a plain delay above it is kept).
  const slow = make({ small: { weight: 1, limits: { maxConcurrency: 1 } } }, { ...CONFIG, refusalDelayMs: 5_000 });
  const slowHeld: Array<Promise<void>> = [];
  for (let i = 0; i < 3; i++) slowHeld.push(slow.holdRefusal(0.001, 'small'));
  assert.equal(slow.refusalDelay(10, 'small'), REFUSAL_HOLD_MAX_MS, '5 s x 8 is held 10 s');
  assert.equal(make({}, { ...CONFIG, refusalDelayMs: 20_000 }).refusalDelay(30, 'small'), 20_000, 'nothing held: the plain 20 s');
  await Promise.all(slowHeld);
});

test('the concurrency gate gives a slot back when the response closes, and takes none for a response already closed', async () => {
  const a = make(); // at most 4 requests of one tenant at once
  const open = Array.from({ length: 3 }, () => new EventEmitter());
  const outcomes = await Promise.all(open.map((res) => a.gate('t', res).then(() => 'admitted', (refusal: SoftserveError) => refusal.code)));
  assert.deepEqual(outcomes, ['admitted', 'admitted', 'admitted']);
  assert.equal(a.usage('t').requests, 3);
  // A client that left while it was authenticated: its 'close' has fired already, so a slot taken now would never come back.
  let called = false;
  void a.gate('t', Object.assign(new EventEmitter(), { closed: true })).finally(() => { called = true; });
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(called, false, 'no answer for a client that is gone');
  assert.equal(a.usage('t').requests, 3, 'no slot taken for it, though one was free');
  open[0]!.emit('close');
  assert.equal(a.usage('t').requests, 2, 'a closed response gives its slot back');
  // Over the limit: refused with TENANT_LIMIT (after the refusal delay, 0 here), taking no slot.
  await Promise.all([a.gate('t', new EventEmitter()), a.gate('t', new EventEmitter())]);
  const over = await a.gate('t', new EventEmitter()).then(() => 'admitted', (refusal: SoftserveError) => refusal.code);
  assert.equal(over, 'TENANT_LIMIT');
  assert.equal(a.usage('t').requests, 4);
});
