// The scheduler's batching rules, with a stand-in inference backend that
// records every batch it is given (assembling with the same per-request
// isolation as the real worker).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_SCHEDULER_CONFIG, Scheduler, type SchedulerConfig } from '../server/scheduler.ts';
import type { AssembledBatch, EngineRow } from '../models/batch.ts';
import type { BatchInput, BatchOutput } from '../server/inference/backend.ts';
import { assembleIsolated } from '../server/inference/assembly.ts';
import { SoftserveError } from '../kernels/errors.ts';

interface Seen { tenants: string[]; lengths: number[] }

function harness(config: Partial<SchedulerConfig>, runMs = 2) {
  const batches: Seen[] = [];
  const assemble = (rows: EngineRow[]): AssembledBatch => {
    if (rows.some((r) => r.inputIds.includes(-1))) throw new SoftserveError('ENGINE_INPUT_INVALID', 'bad token');
    return {
      feeds: {}, numClasses: rows.map(() => 2), rows: rows.length,
      paddedLength: Math.max(...rows.map((r) => r.inputIds.length)), realTokens: rows.reduce((a, r) => a + r.inputIds.length, 0),
    };
  };
  const backend = {
    capacity: 1,
    async run(input: BatchInput): Promise<BatchOutput> {
      const { batch, ran, failed } = assembleIsolated(input, assemble);
      // Rows carry their tenant in the first id, for the record.
      const rows = ran.map((i) => input.rows[i]!);
      if (batch) batches.push({ tenants: rows.map((r) => `t${r.inputIds[0]}`), lengths: rows.map((r) => r.inputIds.length) });
      await new Promise((r) => setTimeout(r, runMs));
      const B = batch?.rows ?? 0;
      return {
        ran, failed, scores: new Float32Array(B * 2), classes: 2, numClasses: batch?.numClasses ?? [],
        paddedLength: batch?.paddedLength ?? 0, realTokens: batch?.realTokens ?? 0, inferenceMs: runMs,
      };
    },
  };
  const scheduler = new Scheduler(backend, { ...DEFAULT_SCHEDULER_CONFIG, maxWaitMs: 5, ...config });
  const rows = (tenant: number, n: number, length = 8): EngineRow[] =>
    Array.from({ length: n }, () => ({ inputIds: [tenant, ...Array(length - 1).fill(5)], labelIds: [1, 2] }));
  return { scheduler, batches, rows };
}

test('cross-tenant policy mixes tenants in one batch', async () => {
  // The batch forms when it is full (12 rows), not when a wait runs out: a
  // busy machine that pauses between the submits cannot split it.
  const { scheduler, batches, rows } = harness({ maxBatchRows: 12, maxWaitMs: 60_000 });
  await Promise.all([1, 2, 3].map((t) => scheduler.submit(`t${t}`, rows(t, 4), 10_000)));
  assert.ok(batches.some((b) => new Set(b.tenants).size === 3), JSON.stringify(batches));
});

test('per-tenant policy never mixes tenants; single runs one row at a time', async () => {
  const per = harness({ policy: 'per-tenant' });
  await Promise.all([1, 2, 3].map((t) => per.scheduler.submit(`t${t}`, per.rows(t, 4), 10_000)));
  assert.ok(per.batches.every((b) => new Set(b.tenants).size === 1));
  assert.ok(per.batches.some((b) => b.tenants.length > 1), 'per-tenant still batches within a tenant');
  const single = harness({ policy: 'single' });
  await Promise.all([1, 2].map((t) => single.scheduler.submit(`t${t}`, single.rows(t, 3), 10_000)));
  assert.ok(single.batches.every((b) => b.tenants.length === 1));
  assert.equal(single.batches.length, 6);
});

test('a flood from one tenant does not starve another (deficit round-robin)', async () => {
  const { scheduler, batches, rows } = harness({ maxBatchRows: 8, maxTenantQueueRows: 10_000, maxQueueRows: 10_000 });
  const flood = scheduler.submit('t1', rows(1, 400), 60_000);
  await new Promise((r) => setTimeout(r, 1));
  const formedBefore = batches.length;
  const polite = await scheduler.submit('t2', rows(2, 4), 60_000);
  const politeBatch = Math.max(...polite.batchIds);
  // Served by the first batch formed after it arrived (one may be in flight), not after 400 rows.
  assert.ok(politeBatch <= formedBefore + 1, `the polite tenant arrived after batch ${formedBefore} and waited until batch ${politeBatch}`);
  await flood;
  const withT2 = batches.filter((b) => b.tenants.includes('t2'));
  assert.ok(withT2.every((b) => b.tenants.includes('t1')), 'the polite rows shared batches with the flood');
});

test("a light tenant's rows open the next batches, not a turn away behind five floods", async () => {
  // Batches of 8 rows: one flooder's quantum fills a batch, so a tenant served only in turn would wait a round.
  const { scheduler, batches, rows } = harness({ maxBatchRows: 8, maxTenantQueueRows: 10_000, maxQueueRows: 10_000 });
  const floods = [1, 2, 3, 4, 5].map((t) => scheduler.submit(`t${t}`, rows(t, 200), 60_000));
  await new Promise((r) => setTimeout(r, 1));
  const formedBefore = batches.length;
  // Two single-row requests of lengths that cannot share a batch: the second waits for the first's batch, then seeds the next.
  const polite = await Promise.all([scheduler.submit('t9', rows(9, 1, 40), 60_000), scheduler.submit('t9', rows(9, 1, 8), 60_000)]);
  const last = Math.max(...polite.flatMap((p) => p.batchIds));
  assert.ok(last <= formedBefore + 2, `the light tenant arrived after batch ${formedBefore}; its second row waited until batch ${last}`);
  await Promise.all(floods);
});

test('the batch time target caps batches while rows of a tenant that held a whole batch are queued', async () => {
  // The stand-in backend takes 2 ms a batch whatever its size, so a batch's
  // rate is rows × 8 tokens / 2 ms, and a 1 ms target allows half the
  // average's tokens: capped batches start at 3 rows and shrink to one.
  const { scheduler, batches, rows } = harness({ targetBatchMs: 1, maxBatchRows: 16, maxWaitMs: 5 });
  await scheduler.submit('t1', rows(1, 4), 10_000); // measures the rate
  const threeTenants = async () => {
    const from = batches.length;
    await Promise.all([1, 2, 3].map((t) => scheduler.submit(`t${t}`, rows(t, 5), 10_000)));
    return batches.slice(from).map((b) => b.tenants.length);
  };
  // Three tenants of 5 rows each (none holds 16): one full-size batch.
  assert.deepEqual(await threeTenants(), [15], 'no bulk rows: no cap');
  // One tenant sends one row, another 40 (≥ 16; the batch forms at once): every
  // batch is capped until the last of the 40 has run, fewer than 16 left included.
  const from = batches.length;
  await Promise.all([scheduler.submit('t2', rows(2, 1), 10_000), scheduler.submit('t1', rows(1, 40), 10_000)]);
  const sizes = batches.slice(from).map((b) => b.tenants.length);
  assert.ok(batches[from]!.tenants.includes('t2'), `the light row rides in the first batch: ${sizes.join(',')}`);
  assert.ok(sizes.every((n) => n <= 3), `every batch capped: ${sizes.join(',')}`);
  // The flood has run: batches are full-size again.
  assert.deepEqual(await threeTenants(), [15], 'the cap lifts with the last bulk row');
});

test('rows of very different lengths do not share a batch', async () => {
  // No wait runs out here: everything is queued, then drain() forms the batches.
  const { scheduler, batches, rows } = harness({ maxWaitMs: 60_000 });
  const all = Promise.all([
    scheduler.submit('t1', rows(1, 4, 6), 10_000),
    scheduler.submit('t2', rows(2, 4, 200), 10_000),
    scheduler.submit('t3', rows(3, 4, 7), 10_000),
  ]);
  await scheduler.drain();
  await all;
  for (const b of batches) assert.ok(Math.max(...b.lengths) / Math.min(...b.lengths) <= 1.7, JSON.stringify(b.lengths));
  assert.ok(batches.some((b) => b.tenants.includes('t1') && b.tenants.includes('t3')), 'similar lengths still share');
});

test('the queue is bounded per tenant and in total, with a Retry-After hint', async () => {
  // Nothing leaves the queue until it holds a full batch of 15 rows, so the
  // bounds are checked against exactly what was submitted, however slow the machine.
  const { scheduler, rows } = harness({ maxTenantQueueRows: 10, maxQueueRows: 15, maxBatchRows: 15, maxWaitMs: 60_000 }, 20);
  const first = scheduler.submit('t1', rows(1, 8), 10_000);
  await assert.rejects(scheduler.submit('t1', rows(1, 8), 10_000), (e: unknown) =>
    e instanceof SoftserveError && e.code === 'OVERLOADED' && Number(e.details?.retryAfter) >= 1);
  const other = scheduler.submit('t2', rows(2, 6), 10_000);
  await assert.rejects(scheduler.submit('t3', rows(3, 6), 10_000), (e: unknown) => e instanceof SoftserveError && e.code === 'OVERLOADED');
  // One more row makes the queue a full batch, which runs everything.
  await Promise.all([first, other, scheduler.submit('t4', rows(4, 1), 10_000)]);
  await assert.rejects(scheduler.submit('t1', rows(1, 11), 10_000), (e: unknown) => e instanceof SoftserveError && e.code === 'PAYLOAD_TOO_LARGE');
});

test('a deadline removes queued rows and rejects with DEADLINE_EXCEEDED; drain refuses new work', async () => {
  const { scheduler, batches, rows } = harness({ maxWaitMs: 50 });
  await assert.rejects(scheduler.submit('t1', rows(1, 3), 5), (e: unknown) => e instanceof SoftserveError && e.code === 'DEADLINE_EXCEEDED');
  assert.equal(scheduler.depth.rows, 0);
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(batches.length, 0, 'expired rows never ran');
  const pending = scheduler.submit('t1', rows(1, 2), 10_000);
  const drained = scheduler.drain();
  await assert.rejects(scheduler.submit('t2', rows(2, 1), 10_000), (e: unknown) => e instanceof SoftserveError && e.code === 'DRAINING');
  await pending;
  await drained;
});

test("one request's bad row fails that request only, not the others in its batch", async () => {
  const { scheduler, rows } = harness({ maxWaitMs: 20 });
  const bad = rows(1, 2);
  bad[1]!.inputIds[3] = -1;
  const results = await Promise.allSettled([
    scheduler.submit('t1', bad, 10_000),
    scheduler.submit('t2', rows(2, 3), 10_000),
    scheduler.submit('t3', rows(3, 1), 10_000),
  ]);
  assert.equal(results[0]!.status, 'rejected');
  assert.equal(results[1]!.status, 'fulfilled');
  assert.equal(results[2]!.status, 'fulfilled');
});
