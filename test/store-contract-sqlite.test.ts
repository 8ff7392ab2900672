// The store contract (store-contract.ts) on the SQLite store, each test in a
// fresh temporary data directory.

import { rmSync } from 'node:fs';
import { after } from 'node:test';

import { SqliteStore } from '../prompts/store/sqlite/index.ts';
import { storeContract } from './store-contract.ts';
import { tempDir } from './store-helpers.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

storeContract('sqlite', async () => {
  const dir = tempDir('store-contract');
  dirs.push(dir);
  return SqliteStore.open({ dataDir: dir });
});
