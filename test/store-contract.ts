// The store contract: what every Store implementation (prompts/store/index.ts)
// must do, as node:test tests. A backend's test file calls storeContract with
// a factory that opens a fresh, empty store; SQLite runs it in
// store-contract-sqlite.test.ts, and a PostgreSQL store runs the same suite.
// It checks each method's behaviour, that a failed multi-step operation
// leaves nothing half-written, and that one tenant never reaches another's
// things (NOT_FOUND, as for things that do not exist).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

import { SoftserveError } from '../kernels/errors.ts';
import type { ModelDims } from '../prompts/kinds.ts';
import { newJobId, type NewJob, type PromptVersionWrite, type Store, type TaskDefinition } from '../prompts/store/index.ts';

export type StoreFactory = () => Promise<Store>;

const DIMS: ModelDims = { hiddenSize: 64, numLayers: 2, numHeads: 2, numKvHeads: 2, headDim: 32 };
const TASK: TaskDefinition = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', labelWords: [' bad', ' good'] } };
const HEAD_TASK: TaskDefinition = { name: 'topic', labels: ['a', 'b', 'c'], template: 'Topic: {text}', scoring: { type: 'head', pooling: 'mean' } };

function write(bytes: Uint8Array = randomBytes(256), extra: Partial<PromptVersionWrite> = {}): PromptVersionWrite {
  return { bytes, kind: 'soft', numVirtualTokens: 2, hasHead: false, modelDims: DIMS, source: 'json', ...extra };
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function refused(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SoftserveError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
}

function job(tenantId: string, over: Partial<NewJob> = {}): NewJob {
  return {
    id: newJobId(), tenant_id: tenantId, task_name: 'sentiment', task_created_at: new Date().toISOString(), prompt_name: 'p', ensemble_name: null,
    state: 'queued', options: '{}', examples: '[["a",0],["b",1]]', validation: null, num_examples: 2, created_at: new Date().toISOString(), ...over,
  };
}

/** Runs `body` on a fresh store and closes it whatever happens. */
function withStore(factory: StoreFactory, body: (s: Store) => Promise<void>): () => Promise<void> {
  return async () => {
    const s = await factory();
    try {
      await body(s);
    } finally {
      await s.close();
    }
  };
}

/** A tenant with a task: the common start. */
async function tenantWithTask(s: Store, name = 'acme', def: TaskDefinition = TASK): Promise<string> {
  const { tenant } = await s.tenants.create(name);
  await s.tasks.create(tenant.id, def);
  return tenant.id;
}

export function storeContract(backend: string, factory: StoreFactory): void {
  describe(`store contract: ${backend}`, () => {
    describe('tenants and keys', () => {
      it('makes, lists, gets and deletes tenants; names are unique', withStore(factory, async (s) => {
        const a = await s.tenants.create('acme');
        assert.equal(a.tenant.name, 'acme');
        assert.equal(a.key.tenantId, a.tenant.id);
        assert.equal(a.key.revokedAt, null);
        assert.ok(a.apiKey.startsWith(a.key.prefix));
        await refused(s.tenants.create('acme'), 'CONFLICT');
        const b = await s.tenants.create('beta');
        assert.deepEqual((await s.tenants.list()).map((t) => t.name), ['acme', 'beta']);
        assert.deepEqual(await s.tenants.get(b.tenant.id), b.tenant);
        await s.tenants.delete(a.tenant.id);
        await refused(s.tenants.get(a.tenant.id), 'NOT_FOUND');
        await refused(s.tenants.delete(a.tenant.id), 'NOT_FOUND');
        assert.deepEqual((await s.tenants.list()).map((t) => t.name), ['beta']);
      }));

      it('authenticates keys by hash, revokes them, and keeps them per tenant', withStore(factory, async (s) => {
        const a = await s.tenants.create('acme');
        const b = await s.tenants.create('beta');
        assert.equal((await s.keys.authenticate(a.apiKey))?.id, a.tenant.id);
        assert.equal(await s.keys.authenticate(a.apiKey + 'x'), null);
        assert.equal(await s.keys.authenticate(''), null);
        assert.equal(await s.keys.authenticate('x'.repeat(600)), null);
        const second = await s.keys.create(a.tenant.id);
        assert.equal((await s.keys.authenticate(second.apiKey))?.id, a.tenant.id);
        assert.deepEqual((await s.keys.list(a.tenant.id)).map((k) => k.id).sort(), [a.key.id, second.key.id].sort());
        await refused(s.keys.create('ten_nope'), 'NOT_FOUND');
        await refused(s.keys.list('ten_nope'), 'NOT_FOUND');
        // Another tenant's key: not found, and still working.
        await refused(s.keys.revoke(b.tenant.id, a.key.id), 'NOT_FOUND');
        assert.equal((await s.keys.authenticate(a.apiKey))?.id, a.tenant.id);
        await s.keys.revoke(a.tenant.id, a.key.id);
        assert.equal(await s.keys.authenticate(a.apiKey), null);
        assert.notEqual((await s.keys.list(a.tenant.id)).find((k) => k.id === a.key.id)?.revokedAt, null);
        await refused(s.keys.revoke(a.tenant.id, a.key.id), 'NOT_FOUND');
        await s.tenants.delete(a.tenant.id);
        assert.equal(await s.keys.authenticate(second.apiKey), null, 'a deleted tenant\'s keys stop working');
        assert.equal((await s.keys.authenticate(b.apiKey))?.id, b.tenant.id);
      }));

      it('keeps at most one active admin key: ensure makes one once, rotate replaces it', withStore(factory, async (s) => {
        assert.equal(await s.keys.activeAdminKey(), null);
        assert.equal(await s.keys.isAdminKey('ssa_nothing'), false);
        const made = await s.keys.ensureAdminKey();
        assert.ok(made);
        assert.equal(await s.keys.ensureAdminKey(), null, 'a second ensure makes nothing');
        assert.equal((await s.keys.activeAdminKey())?.id, made.key.id);
        assert.equal(await s.keys.isAdminKey(made.apiKey), true);
        assert.equal(await s.keys.isAdminKey(made.apiKey + 'x'), false);
        const rotated = await s.keys.rotateAdminKey();
        assert.equal(await s.keys.isAdminKey(made.apiKey), false, 'the old key stops working');
        assert.equal(await s.keys.isAdminKey(rotated.apiKey), true);
        assert.equal((await s.keys.activeAdminKey())?.id, rotated.key.id);
        const t = await s.tenants.create('acme');
        assert.equal(await s.keys.isAdminKey(t.apiKey), false, 'a tenant key is not an admin key');
        assert.equal(await s.keys.authenticate(rotated.apiKey), null, 'an admin key is no tenant\'s key');
      }));

      it('stores quotas per existing tenant; they go with the tenant', withStore(factory, async (s) => {
        const a = await s.tenants.create('acme');
        assert.deepEqual(await s.quotas.list(), []);
        await s.quotas.put(a.tenant.id, { weight: 2.5, limits: { maxConcurrency: 1 } });
        await s.quotas.put(a.tenant.id, { weight: 3, limits: { maxTokens: 100 } });
        assert.deepEqual(await s.quotas.list(), [{ tenantId: a.tenant.id, quota: { weight: 3, limits: { maxTokens: 100 } } }]);
        await refused(s.quotas.put('ten_nope', { weight: 1, limits: {} }), 'NOT_FOUND');
        await s.tenants.delete(a.tenant.id);
        assert.deepEqual(await s.quotas.list(), []);
      }));
    });

    describe('tasks', () => {
      it('makes, lists (by name), gets and deletes tasks; names are unique per tenant', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        const head = await s.tasks.create(t, HEAD_TASK);
        assert.deepEqual(head.scoring, { type: 'head', pooling: 'mean' });
        const got = await s.tasks.get(t, 'sentiment');
        assert.deepEqual({ ...got, createdAt: '' }, { ...TASK, tenantId: t, createdAt: '' });
        assert.deepEqual((await s.tasks.list(t)).map((x) => x.name), ['sentiment', 'topic']);
        await refused(s.tasks.create(t, TASK), 'CONFLICT');
        await refused(s.tasks.create('ten_nope', TASK), 'NOT_FOUND');
        await s.tasks.delete(t, 'topic');
        await refused(s.tasks.get(t, 'topic'), 'NOT_FOUND');
        await refused(s.tasks.delete(t, 'topic'), 'NOT_FOUND');
        // The same name in another tenant is another task.
        const other = await tenantWithTask(s, 'beta');
        assert.equal((await s.tasks.get(other, 'sentiment')).tenantId, other);
      }));
    });

    describe('prompt versions and tensors', () => {
      it('numbers versions, addresses tensors by sha256, reads them back whole', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        const bytes1 = randomBytes(300);
        const v1 = await s.prompts.put(t, 'sentiment', 'p', write(bytes1, { source: 'peft', sourceDtype: 'F16', peftConfig: { peft_type: 'PROMPT_TUNING' } }));
        const v2 = await s.prompts.put(t, 'sentiment', 'p', write(undefined, { provenance: { method: 'prompt_tuning', seed: 1 } }));
        assert.deepEqual([v1.version, v2.version], [1, 2]);
        assert.equal(v1.tensorHash, sha256(bytes1));
        assert.equal(v1.tensorBytes, 300);
        assert.deepEqual(Buffer.from(await s.prompts.readTensor(v1.tensorHash)), bytes1);
        const latest = await s.prompts.get(t, 'sentiment', 'p');
        assert.equal(latest.version, 2);
        assert.deepEqual(latest.provenance, { method: 'prompt_tuning', seed: 1 });
        const first = await s.prompts.get(t, 'sentiment', 'p', 1);
        assert.deepEqual([first.source, first.sourceDtype, first.peftConfig, first.modelDims], ['peft', 'F16', { peft_type: 'PROMPT_TUNING' }, DIMS]);
        await refused(s.prompts.get(t, 'sentiment', 'p', 3), 'NOT_FOUND');
        await refused(s.prompts.get(t, 'sentiment', 'nope'), 'NOT_FOUND');
        await refused(s.prompts.put(t, 'nope', 'p', write()), 'NOT_FOUND');
        const list = await s.prompts.list(t, 'sentiment');
        assert.deepEqual(list.map((p) => [p.name, p.latestVersion, p.versions.map((v) => v.version)]), [['p', 2, [1, 2]]]);
        await refused(s.prompts.list(t, 'nope'), 'NOT_FOUND');
      }));

      it('never reuses a version number; the last version takes the prompt with it', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        await s.prompts.put(t, 'sentiment', 'p', write());
        await s.prompts.put(t, 'sentiment', 'p', write());
        await s.prompts.deleteVersion(t, 'sentiment', 'p', 2);
        assert.equal((await s.prompts.put(t, 'sentiment', 'p', write())).version, 3);
        await refused(s.prompts.deleteVersion(t, 'sentiment', 'p', 2), 'NOT_FOUND');
        await s.prompts.deleteVersion(t, 'sentiment', 'p', 1);
        await s.prompts.deleteVersion(t, 'sentiment', 'p', 3);
        assert.deepEqual(await s.prompts.list(t, 'sentiment'), []);
        assert.equal((await s.prompts.put(t, 'sentiment', 'p', write())).version, 1, 'a new prompt of the old name starts again');
        await s.prompts.delete(t, 'sentiment', 'p');
        await refused(s.prompts.delete(t, 'sentiment', 'p'), 'NOT_FOUND');
      }));

      it('removes a tensor when its last version goes, not before, and says so', withStore(factory, async (s) => {
        const removed: string[] = [];
        s.prompts.onTensorRemoved((h) => removed.push(h));
        const t = await tenantWithTask(s);
        const shared = randomBytes(128);
        const a = await s.prompts.put(t, 'sentiment', 'a', write(shared));
        const b = await s.prompts.put(t, 'sentiment', 'b', write(shared));
        assert.equal(a.tensorHash, b.tensorHash, 'identical tensors, one hash');
        await s.prompts.delete(t, 'sentiment', 'a');
        assert.deepEqual(removed, []);
        assert.deepEqual(Buffer.from(await s.prompts.readTensor(b.tensorHash)), shared);
        await s.prompts.delete(t, 'sentiment', 'b');
        assert.deepEqual(removed, [b.tensorHash]);
        await assert.rejects(s.prompts.readTensor(b.tensorHash));
        const report = await s.prompts.fsck(() => {});
        assert.deepEqual([report.rows, report.missing, report.orphans, report.corrupt], [0, [], [], []]);
      }));

      it('deleting a task or a tenant removes its prompts and their tensors', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        const other = await tenantWithTask(s, 'beta');
        const gone = await s.prompts.put(t, 'sentiment', 'p', write());
        const kept = await s.prompts.put(other, 'sentiment', 'p', write());
        await s.tasks.delete(t, 'sentiment');
        await assert.rejects(s.prompts.readTensor(gone.tensorHash));
        await s.tasks.create(t, TASK);
        assert.deepEqual(await s.prompts.list(t, 'sentiment'), [], 'a task re-created under the name starts empty');
        const again = await s.prompts.put(t, 'sentiment', 'q', write());
        await s.tenants.delete(t);
        await assert.rejects(s.prompts.readTensor(again.tensorHash));
        assert.ok((await s.prompts.readTensor(kept.tensorHash)).byteLength > 0);
      }));

      it('fsck reports what the check refuses, without changing anything', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        const good = await s.prompts.put(t, 'sentiment', 'good', write());
        const bad = await s.prompts.put(t, 'sentiment', 'bad', write(undefined, { numVirtualTokens: 7 }));
        const report = await s.prompts.fsck((_bytes, v) => { if (v.numVirtualTokens === 7) throw new Error('does not decode'); });
        assert.deepEqual([report.rows, report.missing, report.orphans, report.corrupt], [2, [], [], [bad.tensorHash]]);
        assert.ok((await s.prompts.readTensor(good.tensorHash)).byteLength > 0);
        const sweep = await s.prompts.sweep();
        assert.deepEqual([sweep.removedOrphans, sweep.missing], [0, []]);
      }));
    });

    describe('concurrent callers (replicas share one database)', () => {
      it('distinct version numbers, one winner per name, one admin key, no tensor lost to a racing delete', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        const versions = await Promise.all(Array.from({ length: 8 }, () => s.prompts.put(t, 'sentiment', 'p', write())));
        assert.deepEqual(versions.map((v) => v.version).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8]);
        const tenants = await Promise.allSettled(Array.from({ length: 4 }, () => s.tenants.create('same')));
        assert.equal(tenants.filter((r) => r.status === 'fulfilled').length, 1);
        for (const r of tenants) if (r.status === 'rejected') assert.equal((r.reason as SoftserveError).code, 'CONFLICT');
        const admins = await Promise.all(Array.from({ length: 4 }, () => s.keys.ensureAdminKey()));
        assert.equal(admins.filter((a) => a !== null).length, 1);
        // The same bytes uploaded under one name while the only other version using them is deleted.
        for (let i = 0; i < 5; i++) {
          const shared = randomBytes(64);
          await s.prompts.put(t, 'sentiment', `old${i}`, write(shared));
          const [, kept] = await Promise.all([s.prompts.delete(t, 'sentiment', `old${i}`), s.prompts.put(t, 'sentiment', `new${i}`, write(shared))]);
          assert.deepEqual(Buffer.from(await s.prompts.readTensor(kept.tensorHash)), shared);
        }
        const report = await s.prompts.fsck(() => {});
        assert.deepEqual([report.missing, report.orphans, report.corrupt], [[], [], []]);
      }));
    });

    describe('ensembles', () => {
      it('makes ensembles of existing prompts and protects their members', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        await s.prompts.put(t, 'sentiment', 'm0', write());
        await s.prompts.put(t, 'sentiment', 'm0', write());
        await s.prompts.put(t, 'sentiment', 'm1', write());
        const e = await s.ensembles.create(t, 'sentiment', 'duo', [{ prompt: 'm0', version: 1 }, { prompt: 'm1' }], 'weighted');
        assert.deepEqual([e.members, e.vote], [[{ prompt: 'm0', version: 1 }, { prompt: 'm1' }], 'weighted']);
        assert.deepEqual(await s.ensembles.get(t, 'sentiment', 'duo'), e);
        await refused(s.ensembles.create(t, 'sentiment', 'duo', [{ prompt: 'm1' }], null), 'CONFLICT');
        await refused(s.ensembles.create(t, 'sentiment', 'ghost', [{ prompt: 'nope' }], null), 'INVALID_INPUT');
        await refused(s.ensembles.create(t, 'sentiment', 'ghost', [{ prompt: 'm0', version: 9 }], null), 'INVALID_INPUT');
        await refused(s.ensembles.get(t, 'sentiment', 'ghost'), 'NOT_FOUND');
        await refused(s.prompts.delete(t, 'sentiment', 'm1'), 'CONFLICT');
        await refused(s.prompts.deleteVersion(t, 'sentiment', 'm0', 1), 'CONFLICT');
        await refused(s.prompts.deleteVersion(t, 'sentiment', 'm1', 1), 'CONFLICT');
        await s.prompts.deleteVersion(t, 'sentiment', 'm0', 2);
        await s.ensembles.create(t, 'sentiment', 'all', [{ prompt: 'm1' }], null);
        assert.deepEqual((await s.ensembles.list(t, 'sentiment')).map((x) => x.name), ['all', 'duo']);
        await s.ensembles.delete(t, 'sentiment', 'duo');
        await s.ensembles.delete(t, 'sentiment', 'all');
        await refused(s.ensembles.delete(t, 'sentiment', 'all'), 'NOT_FOUND');
        await s.prompts.delete(t, 'sentiment', 'm1');
      }));
    });

    describe('tenant isolation', () => {
      it('another tenant\'s task, prompt, ensemble and job are NOT_FOUND, and unchanged', withStore(factory, async (s) => {
        const a = await tenantWithTask(s, 'a');
        const b = (await s.tenants.create('b')).tenant.id;
        const secret = await s.prompts.put(a, 'sentiment', 'secret', write());
        await s.ensembles.create(a, 'sentiment', 'e', [{ prompt: 'secret' }], null);
        const j = job(a);
        await s.jobs.insert(j);
        assert.deepEqual(await s.tasks.list(b), []);
        await refused(s.tasks.get(b, 'sentiment'), 'NOT_FOUND');
        await refused(s.tasks.delete(b, 'sentiment'), 'NOT_FOUND');
        await refused(s.prompts.list(b, 'sentiment'), 'NOT_FOUND');
        await refused(s.prompts.get(b, 'sentiment', 'secret'), 'NOT_FOUND');
        await refused(s.prompts.put(b, 'sentiment', 'x', write()), 'NOT_FOUND');
        await refused(s.prompts.delete(b, 'sentiment', 'secret'), 'NOT_FOUND');
        await refused(s.prompts.deleteVersion(b, 'sentiment', 'secret', 1), 'NOT_FOUND');
        await refused(s.ensembles.list(b, 'sentiment'), 'NOT_FOUND');
        await refused(s.ensembles.get(b, 'sentiment', 'e'), 'NOT_FOUND');
        await refused(s.ensembles.delete(b, 'sentiment', 'e'), 'NOT_FOUND');
        assert.equal(await s.jobs.getForTenant(b, j.id), undefined);
        assert.deepEqual(await s.jobs.list(b), []);
        // b's own task of the same name sees none of a's things.
        await s.tasks.create(b, TASK);
        assert.deepEqual(await s.prompts.list(b, 'sentiment'), []);
        assert.deepEqual(await s.ensembles.list(b, 'sentiment'), []);
        await refused(s.ensembles.create(b, 'sentiment', 'e2', [{ prompt: 'secret' }], null), 'INVALID_INPUT');
        // a's things are untouched.
        assert.equal((await s.prompts.get(a, 'sentiment', 'secret')).tensorHash, secret.tensorHash);
        assert.equal((await s.ensembles.get(a, 'sentiment', 'e')).name, 'e');
        assert.equal((await s.jobs.getForTenant(a, j.id))?.id, j.id);
      }));
    });

    describe('training jobs', () => {
      it('stores jobs, lists them newest first, counts the active ones', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        const first = job(t, { created_at: '2026-01-01T00:00:00.000Z', validation: '[["v",1]]' });
        const second = job(t, { created_at: '2026-01-02T00:00:00.000Z', task_name: 'other' });
        await s.jobs.insert(first);
        await s.jobs.insert(second);
        const got = await s.jobs.get(first.id);
        assert.deepEqual([got?.state, got?.attempts, got?.cancel_requested, got?.history, got?.events, got?.examples], ['queued', 0, 0, '[]', '[]', ''], 'examples are not read with the row');
        assert.deepEqual(await s.jobs.examples(first.id), { examples: first.examples, validation: '[["v",1]]' });
        assert.equal(await s.jobs.get('job_nope'), undefined);
        assert.deepEqual((await s.jobs.list(t)).map((r) => r.id), [second.id, first.id]);
        assert.deepEqual((await s.jobs.list(t, 'other')).map((r) => r.id), [second.id]);
        assert.deepEqual((await s.jobs.list(t, undefined, 1)).map((r) => r.id), [second.id]);
        assert.equal(await s.jobs.countActive(t), 2);
        assert.equal(await s.jobs.countActive(), 2);
        assert.deepEqual(await s.jobs.queuedTenants(), [t]);
        assert.equal(await s.jobs.transition(first.id, ['queued'], { state: 'running', started_at: new Date().toISOString(), attempts: 1 }), true);
        assert.equal(await s.jobs.transition(first.id, ['queued'], { state: 'running' }), false, 'compare-and-set');
        assert.deepEqual(await s.jobs.countByState(), { queued: 1, running: 1 });
        assert.deepEqual((await s.jobs.running()).map((r) => r.id), [first.id]);
        assert.equal(await s.jobs.update(first.id, { progress: '{"step":3}', train_ms: 1500 }), true);
        await s.jobs.appendEvent(first.id, { type: 'requeued' });
        await s.jobs.appendEvent(first.id, { type: 'cancel_requested' });
        const after = await s.jobs.get(first.id);
        assert.equal(after?.progress, '{"step":3}');
        assert.deepEqual((JSON.parse(after!.events) as Array<{ type: string }>).map((e) => e.type), ['requeued', 'cancel_requested']);
        const time = await s.jobs.trainingTime(t, '2000-01-01T00:00:00.000Z');
        assert.equal(time.ms, 1500);
        assert.ok(time.oldest);
        assert.deepEqual(await s.jobs.trainingTime(t, '2999-01-01T00:00:00.000Z'), { ms: 0, oldest: null });
        await s.tenants.delete(t);
        assert.equal(await s.jobs.get(first.id), undefined, 'jobs go with their tenant');
        assert.equal(await s.jobs.update(first.id, { progress: null }), false);
        assert.equal(await s.jobs.countActive(), 0);
      }));

      it('picks the next job round-robin over tenants, skipping excluded ones', withStore(factory, async (s) => {
        const ids = [await tenantWithTask(s, 'a'), await tenantWithTask(s, 'b')];
        let clock = Date.parse('2026-01-01T00:00:00Z');
        const tick = () => new Date(clock += 1000).toISOString();
        for (const [t, n] of [[0, 2], [1, 1]] as const) {
          for (let i = 1; i <= n; i++) await s.jobs.insert(job(ids[t]!, { id: `job_${'ab'[t]}${i}`, created_at: tick() }));
        }
        const order: string[] = [];
        for (let next = await s.jobs.nextQueued(); next; next = await s.jobs.nextQueued()) {
          order.push(next.id.slice(4));
          await s.jobs.transition(next.id, ['queued'], { state: 'succeeded', started_at: tick() });
        }
        assert.deepEqual(order, ['a1', 'b1', 'a2']);
        await s.jobs.insert(job(ids[0]!, { id: 'job_a3', created_at: tick() }));
        assert.equal(await s.jobs.nextQueued([ids[0]!]), undefined);
        assert.equal((await s.jobs.nextQueued([ids[1]!]))?.id, 'job_a3');
      }));

      it('a job whose task is deleted is marked, even when the task comes back', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        const queued = job(t);
        const done = job(t);
        await s.jobs.insert(queued);
        await s.jobs.insert(done);
        await s.jobs.transition(done.id, ['queued'], { state: 'succeeded' });
        assert.equal(await s.jobs.taskDeleted(queued.id), false);
        await s.tasks.delete(t, 'sentiment');
        await s.tasks.create(t, TASK);
        assert.equal(await s.jobs.taskDeleted(queued.id), true);
        assert.equal((await s.jobs.get(done.id))?.task_deleted_at, null, 'finished jobs are left as they were');
        assert.equal(await s.jobs.taskDeleted('job_nope'), true, 'a job that is gone publishes nothing');
      }));
    });

    describe('job leases (runners on any number of machines)', () => {
      it('claims each queued job once, fairly, with a lease; heartbeats renew it and bring back cancel requests', withStore(factory, async (s) => {
        const [a, b] = [await tenantWithTask(s, 'a'), await tenantWithTask(s, 'b')];
        await s.jobs.insert(job(a, { id: 'job_a1', created_at: '2026-01-01T00:00:01.000Z' }));
        await s.jobs.insert(job(a, { id: 'job_a2', created_at: '2026-01-01T00:00:02.000Z' }));
        await s.jobs.insert(job(b, { id: 'job_b1', created_at: '2026-01-01T00:00:03.000Z' }));
        // Three runners at once: three distinct jobs, none twice.
        const claims = await Promise.all(['r1', 'r2', 'r3', 'r4'].map((r) => s.jobs.claim(r, 60_000)));
        const got = claims.filter((c) => c !== undefined);
        assert.equal(got.length, 3, 'three jobs, four runners: one gets nothing');
        assert.deepEqual(got.map((c) => c.job.id).sort(), ['job_a1', 'job_a2', 'job_b1']);
        for (const c of got) {
          assert.equal(c.job.state, 'running');
          assert.equal(c.job.attempts, 1);
          assert.equal(c.job.lease_owner, c.lease);
          assert.ok(c.job.lease_expires_at !== null && Date.parse(c.job.lease_expires_at) > Date.now());
        }
        assert.equal(new Set(got.map((c) => c.lease)).size, 3, 'a token per claim');
        const first = got.find((c) => c.job.id === 'job_b1')!;
        assert.deepEqual(await s.jobs.heartbeat(first.job.id, first.lease, 60_000, { progress: '{"step":2}' }), { held: true, cancelRequested: false, taskDeleted: false });
        assert.equal((await s.jobs.get(first.job.id))?.progress, '{"step":2}', 'progress rides on the heartbeat');
        await s.jobs.update(first.job.id, { cancel_requested: 1 });
        assert.deepEqual(await s.jobs.heartbeat(first.job.id, first.lease, 60_000), { held: true, cancelRequested: true, taskDeleted: false });
        assert.equal((await s.jobs.heartbeat(first.job.id, 'someone-else/x', 60_000)).held, false, 'another token holds nothing');
        assert.equal(await s.jobs.release(first.job.id, 'someone-else/x', { state: 'cancelled' }, { type: 'cancelled' }), false);
        assert.equal(await s.jobs.release(first.job.id, first.lease, { state: 'cancelled' }, { type: 'cancelled', reason: 'r' }), true);
        const ended = await s.jobs.get(first.job.id);
        assert.deepEqual([ended?.state, ended?.lease_owner, ended?.lease_expires_at], ['cancelled', null, null]);
        assert.equal((JSON.parse(ended!.events) as Array<{ type: string }>).at(-1)?.type, 'cancelled');
        assert.equal((await s.jobs.heartbeat(first.job.id, first.lease, 60_000)).held, false, 'an ended run holds nothing');
        assert.deepEqual(await s.jobs.expired(), [], 'live leases are not expired');
        assert.equal((await s.jobs.expired(true)).length, 2, 'all running jobs, for a single process\'s start');
      }));

      it('an expired lease is taken back once; its old holder can neither renew, end nor publish', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        await s.jobs.insert(job(t, { id: 'job_x' }));
        const old = (await s.jobs.claim('dead', 300))!;
        // A lease that ends: wait for the store to call it expired (its own clock), not for a fixed time.
        while ((await s.jobs.expired()).length === 0) await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual((await s.jobs.expired()).map((r) => [r.id, r.lease_owner]), [['job_x', old.lease]]);
        const back = await Promise.all([1, 2].map(() => s.jobs.release('job_x', old.lease, { state: 'queued', progress: null }, { type: 'requeued' }, true)));
        assert.deepEqual(back.sort(), [false, true], 'two runners take it back: one wins');
        const again = (await s.jobs.claim('alive', 60_000))!;
        assert.deepEqual([again.job.id, again.job.attempts], ['job_x', 2], 'attempts counted across runners');
        assert.equal((await s.jobs.heartbeat('job_x', old.lease, 60_000)).held, false);
        assert.equal(await s.jobs.release('job_x', old.lease, { state: 'failed' }, { type: 'failed' }), false);
        const finish = (versions: Array<{ name: string; version: number }>) => ({ fields: { result: JSON.stringify(versions.length) }, event: {} });
        await refused(s.jobs.publish('job_x', { members: [{ name: 'p', write: write() }], ensemble: null, finish, lease: old.lease }), 'CONFLICT');
        assert.deepEqual(await s.prompts.list(t, 'sentiment'), [], 'the stale runner published nothing');
        // A live lease is not taken back even when asked to take back expired ones.
        assert.equal(await s.jobs.release('job_x', again.lease, { state: 'queued' }, { type: 'requeued' }, true), false);
        const versions = await s.jobs.publish('job_x', { members: [{ name: 'p', write: write() }], ensemble: null, finish, lease: again.lease });
        assert.deepEqual(versions.map((v) => v.version), [1]);
        const row = await s.jobs.get('job_x');
        assert.deepEqual([row?.state, row?.lease_owner, row?.attempts], ['succeeded', null, 2]);
        await refused(s.jobs.publish('job_x', { members: [{ name: 'p', write: write() }], ensemble: null, finish, lease: again.lease }), 'CONFLICT');
        assert.equal((await s.prompts.list(t, 'sentiment'))[0]?.latestVersion, 1, 'published exactly once');
      }));

      it('a heartbeat reports the task deleted; a tenant\'s deletion ends the lease', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        await s.jobs.insert(job(t));
        const c = (await s.jobs.claim('r', 60_000))!;
        await s.tasks.delete(t, 'sentiment');
        assert.deepEqual(await s.jobs.heartbeat(c.job.id, c.lease, 60_000), { held: true, cancelRequested: false, taskDeleted: true });
        await s.tenants.delete(t);
        assert.equal((await s.jobs.heartbeat(c.job.id, c.lease, 60_000)).held, false);
      }));
    });

    describe('publishing a trained prompt (one operation)', () => {
      async function runningJob(s: Store, t: string, over: Partial<NewJob> = {}): Promise<string> {
        const j = job(t, over);
        await s.jobs.insert(j);
        await s.jobs.transition(j.id, ['queued'], { state: 'running', attempts: 1 });
        return j.id;
      }
      const finish = (versions: Array<{ name: string; version: number }>) => ({
        fields: { result: JSON.stringify(versions.map((v) => `${v.name}@${v.version}`)), train_ms: 10 },
        event: { published: versions.map((v) => `${v.name}@${v.version}`) },
      });

      it('writes the versions and the ensemble and marks the job succeeded', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        await s.prompts.put(t, 'sentiment', 'p-1', write());
        const id = await runningJob(s, t, { ensemble_name: 'p' });
        const versions = await s.jobs.publish(id, {
          members: [{ name: 'p-1', write: write(undefined, { source: 'training', provenance: { seed: 1 } }) }, { name: 'p-2', write: write(undefined, { source: 'training' }) }],
          ensemble: 'p', finish,
        });
        assert.deepEqual(versions.map((v) => [v.name, v.version, v.source]), [['p-1', 2, 'training'], ['p-2', 1, 'training']]);
        assert.deepEqual((await s.prompts.get(t, 'sentiment', 'p-1')).provenance, { seed: 1 });
        assert.deepEqual((await s.ensembles.get(t, 'sentiment', 'p')).members, [{ prompt: 'p-1' }, { prompt: 'p-2' }]);
        const row = await s.jobs.get(id);
        assert.deepEqual([row?.state, row?.result, row?.train_ms, row?.finished_at !== null], ['succeeded', '["p-1@2","p-2@1"]', 10, true]);
        const last = (JSON.parse(row!.events) as Array<{ type: string; published: string[] }>).at(-1);
        assert.deepEqual([last?.type, last?.published], ['succeeded', ['p-1@2', 'p-2@1']]);
        // An ensemble that exists already is kept as it is.
        const again = await runningJob(s, t, { ensemble_name: 'p' });
        await s.jobs.publish(again, { members: [{ name: 'p-1', write: write() }, { name: 'p-2', write: write() }], ensemble: 'p', finish });
        assert.deepEqual((await s.ensembles.get(t, 'sentiment', 'p')).members, [{ prompt: 'p-1' }, { prompt: 'p-2' }]);
      }));

      async function nothingWritten(s: Store, t: string, id: string, state: string): Promise<void> {
        assert.deepEqual(await s.prompts.list(t, 'sentiment'), []);
        assert.deepEqual(await s.ensembles.list(t, 'sentiment'), []);
        assert.equal((await s.jobs.get(id))?.state, state);
        const report = await s.prompts.fsck(() => {});
        assert.deepEqual([report.rows, report.orphans, report.temps], [0, [], []], 'no tensor left without its row');
      }

      it('refuses a job whose task was deleted (and re-created): nothing written', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        const id = await runningJob(s, t, { ensemble_name: 'p' });
        await s.tasks.delete(t, 'sentiment');
        await s.tasks.create(t, TASK);
        await refused(s.jobs.publish(id, { members: [{ name: 'p-1', write: write() }, { name: 'p-2', write: write() }], ensemble: 'p', finish }), 'NOT_FOUND');
        await nothingWritten(s, t, id, 'running');
      }));

      it('refuses a job that is no longer running: nothing written', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        const id = await runningJob(s, t);
        await s.jobs.transition(id, ['running'], { state: 'cancelled' });
        await refused(s.jobs.publish(id, { members: [{ name: 'p', write: write() }], ensemble: null, finish }), 'CONFLICT');
        await nothingWritten(s, t, id, 'cancelled');
      }));

      it('a step that fails midway leaves nothing half-written', withStore(factory, async (s) => {
        const t = await tenantWithTask(s);
        const id = await runningJob(s, t);
        await assert.rejects(s.jobs.publish(id, {
          members: [{ name: 'p-1', write: write() }, { name: 'p-2', write: write() }], ensemble: null,
          finish: () => { throw new Error('fails after both versions were written'); },
        }), /fails after both versions/);
        await nothingWritten(s, t, id, 'running');
        // A job that does not exist.
        await refused(s.jobs.publish('job_nope', { members: [{ name: 'p', write: write() }], ensemble: null, finish }), 'NOT_FOUND');
        await nothingWritten(s, t, id, 'running');
      }));
    });
  });
}
