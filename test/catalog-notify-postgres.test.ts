// The database side of cross-replica invalidation, on a real PostgreSQL: every
// committed write that changes what classify or auth caches reaches a
// listener on another connection as the CatalogEvent the caches take
// (triggers, prompts/store/postgres/notify-triggers.ts), whichever code made
// it (here: the store a trainer process uses, jobs.publish included); a
// rolled-back write sends nothing; a listener whose connection is cut
// reconnects and asks for a resync.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import pg from 'pg';

import type { CatalogEvent } from '../prompts/catalog-cache.ts';
import type { ModelDims } from '../prompts/kinds.ts';
import { newJobId, type PromptVersionWrite } from '../prompts/store/index.ts';
import { PostgresStore } from '../prompts/store/postgres/index.ts';
import { CatalogListener, LISTENER_APPLICATION_NAME } from '../prompts/store/postgres/notify.ts';
import { startCluster, type PgCluster } from './postgres-cluster.ts';
import { waitFor } from './role-process.ts';

const DIMS: ModelDims = { hiddenSize: 64, numLayers: 2, numHeads: 2, numKvHeads: 2, headDim: 32 };
const TASK = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer' as const, labelWords: [' bad', ' good'] } };
const write = (extra: Partial<PromptVersionWrite> = {}): PromptVersionWrite =>
  ({ bytes: randomBytes(256), kind: 'soft', numVirtualTokens: 2, hasHead: false, modelDims: DIMS, source: 'json', ...extra });

let cluster: PgCluster | undefined;
before(async () => { cluster = await startCluster(); }, { timeout: 180_000 });
after(async () => { await cluster?.stop(); });

test('every catalog write is announced once committed, from any connection; rolled-back writes are not', { timeout: 60_000 }, async (t) => {
  if (!cluster) throw new Error('PostgreSQL did not start');
  const url = await cluster.createDatabase();
  const store = await PostgresStore.open({ url, maxConnections: 2 });
  const received: CatalogEvent[] = [];
  let resyncs = 0;
  const listener = new CatalogListener({ url, onEvent: (e) => received.push(e), onResync: () => { resyncs++; } });
  try {
    await listener.start();
    assert.equal(listener.connected, true);
    // Pooled connections carry the statement bound (a stuck statement cannot hold a request forever).
    assert.equal((await store.pool.query<{ statement_timeout: string }>('SHOW statement_timeout')).rows[0]!.statement_timeout, '30s');
    assert.equal(resyncs, 1, 'the first connect resyncs too');

    /** Runs a write and waits for exactly the events it must send (in any order). */
    const expect = async (what: string, w: () => Promise<unknown>, events: CatalogEvent[]) => {
      received.length = 0;
      await w();
      const got = await waitFor(what, async () => (received.length >= events.length ? [...received] : undefined));
      assert.deepEqual(new Set(got.value.map((e) => JSON.stringify(e))), new Set(events.map((e) => JSON.stringify(e))), what);
      t.diagnostic(`${what}: ${got.ms.toFixed(1)} ms`);
    };

    const { tenant, key } = await store.tenants.create('acme');
    const id = tenant.id;
    const task: CatalogEvent = { entity: 'task', tenantId: id, task: 'sentiment' };
    await expect('task created', () => store.tasks.create(id, TASK), [task]);
    const prompt = (name: string): CatalogEvent => ({ entity: 'prompt', tenantId: id, task: 'sentiment', prompt: name });
    await expect('prompt version put', () => store.prompts.put(id, 'sentiment', 'p', write()), [prompt('p')]);
    await expect('second version put', () => store.prompts.put(id, 'sentiment', 'p', write()), [prompt('p')]);
    await expect('ensemble created', () => store.ensembles.create(id, 'sentiment', 'e', [{ prompt: 'p' }], null), [task]);
    await expect('ensemble deleted', () => store.ensembles.delete(id, 'sentiment', 'e'), [task]);
    await expect('version deleted', () => store.prompts.deleteVersion(id, 'sentiment', 'p', 1), [prompt('p')]);
    await expect('key revoked', () => store.keys.revoke(id, key.id), [{ entity: 'key', tenantId: id }]);
    await expect('quota set', () => store.quotas.put(id, { weight: 2, limits: {} }), [{ entity: 'quota', tenantId: id }]);

    // A trainer process publishing a job: another store, its own connections.
    const trainer = await PostgresStore.open({ url, maxConnections: 2 });
    try {
      const job = async () => {
        const j = { id: newJobId(), tenant_id: id, task_name: 'sentiment', task_created_at: new Date().toISOString(), prompt_name: 'q', ensemble_name: null,
          state: 'queued' as const, options: '{}', examples: '[]', validation: null, num_examples: 0, created_at: new Date().toISOString() };
        await trainer.jobs.insert(j);
        await trainer.jobs.transition(j.id, ['queued'], { state: 'running', attempts: 1 });
        return j.id;
      };
      const finish = () => ({ fields: { result: '[]', train_ms: 1 }, event: {} });
      const published = await job();
      await expect('trained prompt published by another process', () => trainer.jobs.publish(published, { members: [{ name: 'q', write: write({ source: 'training' }) }], ensemble: null, finish }), [prompt('q')]);

      // Versions written, then the transaction rolls back: the notifications go with it. Then a
      // committed marker write: notifications arrive in commit order, so once it is here, nothing else is coming.
      const failing = await job();
      received.length = 0;
      await assert.rejects(trainer.jobs.publish(failing, {
        members: [{ name: 'r', write: write({ source: 'training' }) }], ensemble: null, finish: () => { throw new Error('fails after the version was written'); },
      }), /fails after/);
      await store.quotas.put(id, { weight: 3, limits: {} });
      await waitFor('the marker write arrives', async () => (received.length > 0 ? true : undefined));
      assert.deepEqual(received, [{ entity: 'quota', tenantId: id }], 'nothing from the rolled-back publish');
    } finally {
      await trainer.close();
    }

    await expect('prompt deleted', () => store.prompts.delete(id, 'sentiment', 'q'), [prompt('q')]);
    await expect('task deleted (its prompts, by cascade, send nothing more)', () => store.tasks.delete(id, 'sentiment'), [task]);
    await expect('task re-created', () => store.tasks.create(id, TASK), [task]);
    await expect('a prompt in it', () => store.prompts.put(id, 'sentiment', 'p', write()), [prompt('p')]);
    // The tenant's keys, quota and task go by cascade, and say so.
    await expect('tenant deleted', () => store.tenants.delete(id), [
      { entity: 'tenant', tenantId: id }, { entity: 'key', tenantId: id }, { entity: 'quota', tenantId: id }, task,
    ]);

    // The listener's connection killed from the server side: it reconnects and asks for a resync.
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [LISTENER_APPLICATION_NAME]);
    } finally {
      await admin.end();
    }
    const again = await waitFor('the listener reconnects and resyncs', async () => (resyncs === 2 && listener.connected ? true : undefined));
    t.diagnostic(`reconnect after the connection was killed: ${again.ms.toFixed(1)} ms`);
    const { tenant: other } = await store.tenants.create('beta');
    await expect('events flow again', () => store.quotas.put(other.id, { weight: 2, limits: {} }), [{ entity: 'quota', tenantId: other.id }]);
  } finally {
    await listener.close();
    await store.close();
  }
});

test('a pooled connection lost while checked out (mid-transaction) fails its caller, not the process', { timeout: 60_000 }, async () => {
  if (!cluster) throw new Error('PostgreSQL did not start');
  const url = await cluster.createDatabase();
  const store = await PostgresStore.open({ url, maxConnections: 1 });
  try {
    const client = await store.pool.connect();
    const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await client.query('BEGIN');
    const ended = new Promise<void>((resolve) => client.once('end', () => resolve()));
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    } finally {
      await admin.end();
    }
    // pg has emitted 'error' on the client by the time it emits 'end': this process is still here.
    await ended;
    await assert.rejects(client.query('SELECT 1'));
    client.release();
    // The dead client left the pool (of one): the next call gets a fresh connection.
    assert.deepEqual(await store.tenants.list(), []);
  } finally {
    await store.close();
  }
});
