// softserve admin rotate-key: replaces the admin key the server made on first
// run. Works on the data directory itself (no key needed, so a lost key can be
// replaced), also while the server runs: it reads the stored key's hash on
// every admin request. With SOFTSERVE_DATABASE_URL set, on that PostgreSQL
// database instead.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';

import type { KeyStore } from '../../prompts/store/index.ts';
import { RuntimeError } from '../client.ts';
import { out, printJson, wantsJson } from '../context.ts';

export function registerAdmin(program: Command): void {
  const admin = program.command('admin').description('server administration on this machine');

  admin.command('rotate-key').description('replace the stored admin key (the old one stops working at once); prints the new one once')
    .option('--data-dir <dir>', 'the server\'s data directory (SOFTSERVE_DATA_DIR, default ./data)')
    .option('-q, --quiet', 'print only the key')
    .action(async (opts: { dataDir?: string; quiet?: boolean }, cmd: Command) => {
      const databaseUrl = process.env.SOFTSERVE_DATABASE_URL;
      const store = databaseUrl ? await openPostgresKeys(databaseUrl) : await openSqliteKeys(opts.dataDir);
      try {
        const { apiKey, key } = await store.keys.rotateAdminKey();
        if (wantsJson(cmd)) return printJson({ api_key: apiKey, key: { id: key.id, prefix: key.prefix, created_at: key.createdAt } });
        if (opts.quiet) return out(apiKey);
        out('new admin key (shown this once; the old one no longer works):');
        out('');
        out(`  export SOFTSERVE_ADMIN_KEY=${apiKey}`);
      } finally {
        await store.close();
      }
    });
}

interface KeysHandle { keys: KeyStore; close(): unknown }

async function openPostgresKeys(url: string): Promise<KeysHandle> {
  const { PostgresStore } = await import('../../prompts/store/postgres/index.ts');
  return PostgresStore.open({ url, maxConnections: 1 });
}

async function openSqliteKeys(dataDir: string | undefined): Promise<KeysHandle> {
  const dir = dataDir ?? process.env.SOFTSERVE_DATA_DIR ?? './data';
  const file = join(dir, 'softserve.db');
  if (!existsSync(file)) throw new RuntimeError(`no softserve database in ${dir} (has the server run with this data directory?)`);
  // Loaded here, not at start: the native SQLite binding costs every other command time.
  const { SqliteStore } = await import('../../prompts/store/sqlite/index.ts');
  return SqliteStore.openKeysOnly(dir);
}
