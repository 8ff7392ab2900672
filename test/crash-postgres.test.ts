// Crash consistency of the prompt store on PostgreSQL: the run of 200
// SIGKILLs in crash-harness.ts against a real PostgreSQL (test/postgres-
// cluster.ts), each lane on its own database. The client dies, the database
// does not: what must hold is that a killed replica leaves no half-written
// prompt version (one transaction per put: tensor and rows together) and that
// every version it acknowledged is there, whole (tensors verified by hash and
// bit for bit against the upload).
//
// After a kill the database may still be finishing the dead client's session
// (a COMMIT already sent is applied; an open transaction is rolled back when
// the server sees the socket close). settle() waits for that state: no session
// of the child's application_name left in pg_stat_activity.

import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import pg from 'pg';

import type { PromptKind } from '../prompts/kinds.ts';
import { PromptStore } from '../prompts/store.ts';
import { PostgresStore } from '../prompts/store/postgres/index.ts';
import { ITERATIONS, crashTest, type CrashBackend, type LeftState } from './crash-harness.ts';
import { SPEC } from './peft-builders.ts';
import { startCluster, type PgCluster } from './postgres-cluster.ts';

interface Row {
  name: string; version: number; kind: PromptKind; num_virtual_tokens: number; has_head: boolean;
  tensor_hash: string; peft_config: string; model_dims: string; bytes: Buffer | null;
}

let cluster: PgCluster | undefined;
/** One pool per lane database, for the parent's reads (application_name crash-check). */
const pools = new Map<string, pg.Pool>();
/** The child's target URL -> the lane's plain URL. */
const plain = new Map<string, string>();

before(async () => {
  cluster = await startCluster();
}, { timeout: 180_000 });
after(async () => {
  for (const p of pools.values()) await p.end();
  await cluster?.stop();
});

function poolFor(target: string): pg.Pool {
  const p = pools.get(target);
  if (!p) throw new Error(`no lane for ${target}`);
  return p;
}

const postgres: CrashBackend = {
  async lane(index) {
    if (!cluster) throw new Error('PostgreSQL did not start');
    const url = await cluster.createDatabase();
    const target = `${url}?application_name=crash-child-${index}`;
    const pool = new pg.Pool({ connectionString: `${url}?application_name=crash-check`, max: 1 });
    pool.on('error', () => {});
    pools.set(target, pool);
    plain.set(target, url);
    return target;
  },
  async settle(target) {
    const app = new URL(target).searchParams.get('application_name');
    // A state, not a delay: the server has ended every session of the dead child.
    for (;;) {
      const r = await poolFor(target).query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [app]);
      if (r.rows[0]!.n === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  },
  async asLeft(target): Promise<LeftState> {
    const db = poolFor(target);
    const migrated = (await db.query(`SELECT to_regclass('prompt_versions') AS t`)).rows[0]?.t;
    if (!migrated) return { rows: [], temps: 0, orphans: 0 };
    const rows = (await db.query<Row>(`SELECT p.name, v.version, v.kind, v.num_virtual_tokens, v.has_head, v.tensor_hash, v.peft_config, v.model_dims, t.bytes
      FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id LEFT JOIN tensors t ON t.hash = v.tensor_hash`)).rows;
    const orphans = (await db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM tensors t WHERE NOT EXISTS (SELECT 1 FROM prompt_versions v WHERE v.tensor_hash = t.hash)')).rows[0]!.n;
    return {
      temps: 0,
      orphans,
      rows: rows.map((r) => ({
        name: r.name, version: r.version, kind: r.kind, numVirtualTokens: r.num_virtual_tokens, hasHead: r.has_head,
        tensorHash: r.tensor_hash, peftConfig: r.peft_config, modelDims: r.model_dims,
        bytes: r.bytes === null ? null : new Uint8Array(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength),
      })),
    };
  },
  async checkAfterReopen(target) {
    const store = new PromptStore(await PostgresStore.open({ url: plain.get(target)!, maxConnections: 2 }), { spec: SPEC });
    try {
      assert.deepEqual(store.backend.openSweep.missing, []);
      const report = await store.fsck();
      assert.deepEqual({ missing: report.missing, orphans: report.orphans, temps: report.temps, corrupt: report.corrupt }, { missing: [], orphans: [], temps: [], corrupt: [] });
      // Every prompt has a version (a put makes both in one transaction; a delete removes both).
      const empty = await store.backend.pool.query('SELECT p.name FROM prompts p WHERE NOT EXISTS (SELECT 1 FROM prompt_versions v WHERE v.prompt_id = p.id)');
      assert.deepEqual(empty.rows, [], 'a prompt row without versions');
    } finally {
      await store.close();
    }
  },
};

it(`PostgreSQL: SIGKILL at random instants, ${ITERATIONS} times: every acknowledged version present and whole, none half-written`, { timeout: 480_000 }, async () => {
  await crashTest('PostgreSQL', postgres);
});
