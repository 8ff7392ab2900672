// Crash consistency of the prompt store on SQLite (the embedded default): the
// run of 200 SIGKILLs in crash-harness.ts, each lane on its own data
// directory. "As left" reads the database file and the tensor directory
// directly; after the reopen, SQLite's integrity and foreign-key checks must
// pass as well. crash-postgres.test.ts runs the same on PostgreSQL.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import Database from 'better-sqlite3';

import type { PromptKind } from '../prompts/kinds.ts';
import { PromptStore } from '../prompts/store.ts';
import { ITERATIONS, crashTest, type CrashBackend, type LeftState } from './crash-harness.ts';
import { SPEC } from './peft-builders.ts';
import { tempDir } from './store-helpers.ts';

interface Row {
  name: string; version: number; kind: PromptKind; num_virtual_tokens: number; has_head: number;
  tensor_hash: string; peft_config: string; model_dims: string;
}

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sqlite: CrashBackend = {
  async lane(index) {
    const dir = tempDir(`crash${index}`);
    dirs.push(dir);
    return dir;
  },
  // A killed process holds nothing: SQLite's locks are the file's.
  async settle() {},
  async asLeft(dir): Promise<LeftState> {
    const dbFile = join(dir, 'softserve.db');
    if (!existsSync(dbFile)) return { rows: [], temps: 0, orphans: 0 };
    const db = new Database(dbFile);
    let rows: Row[] = [];
    try {
      const hasTable = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'prompt_versions'").get();
      if (hasTable) {
        rows = db.prepare(`SELECT p.name, v.version, v.kind, v.num_virtual_tokens, v.has_head, v.tensor_hash, v.peft_config, v.model_dims
          FROM prompt_versions v JOIN prompts p ON p.id = v.prompt_id`).all() as Row[];
      }
    } finally {
      db.close();
    }
    const tdir = join(dir, 'tensors');
    const names = existsSync(tdir) ? readdirSync(tdir) : [];
    const referenced = new Set(rows.map((r) => r.tensor_hash));
    return {
      temps: names.filter((n) => n.startsWith('.tmp-')).length,
      orphans: names.filter((n) => n.endsWith('.safetensors') && !referenced.has(n.slice(0, 64))).length,
      rows: rows.map((r) => {
        const path = join(tdir, `${r.tensor_hash}.safetensors`);
        return {
          name: r.name, version: r.version, kind: r.kind, numVirtualTokens: r.num_virtual_tokens, hasHead: r.has_head === 1,
          tensorHash: r.tensor_hash, peftConfig: r.peft_config, modelDims: r.model_dims,
          bytes: existsSync(path) ? new Uint8Array(readFileSync(path)) : null,
        };
      }),
    };
  },
  async checkAfterReopen(dir) {
    const store = PromptStore.open({ dataDir: dir, spec: SPEC });
    try {
      assert.deepEqual(store.backend.openSweep.missing, []);
      const report = await store.fsck();
      assert.deepEqual({ missing: report.missing, orphans: report.orphans, temps: report.temps, corrupt: report.corrupt }, { missing: [], orphans: [], temps: [], corrupt: [] });
      assert.equal(store.backend.db.pragma('integrity_check', { simple: true }), 'ok');
      assert.deepEqual(store.backend.db.pragma('foreign_key_check'), []);
    } finally {
      await store.close();
    }
  },
};

it(`SQLite: SIGKILL at random instants, ${ITERATIONS} times: every prompt whole or absent, database and files agree`, { timeout: 240_000 }, async () => {
  await crashTest('SQLite', sqlite);
});
