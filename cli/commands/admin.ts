// softserve admin rotate-key: replaces the admin key the server made on first
// run. Works on the data directory itself (no key needed, so a lost key can be
// replaced), also while the server runs: it reads the stored key's hash on
// every admin request.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';

import { RuntimeError } from '../client.ts';
import { out, printJson, wantsJson } from '../context.ts';

export function registerAdmin(program: Command): void {
  const admin = program.command('admin').description('server administration on this machine');

  admin.command('rotate-key').description('replace the stored admin key (the old one stops working at once); prints the new one once')
    .option('--data-dir <dir>', 'the server\'s data directory (SOFTSERVE_DATA_DIR, default ./data)')
    .option('-q, --quiet', 'print only the key')
    .action(async (opts: { dataDir?: string; quiet?: boolean }, cmd: Command) => {
      const dir = opts.dataDir ?? process.env.SOFTSERVE_DATA_DIR ?? './data';
      const file = join(dir, 'softserve.db');
      if (!existsSync(file)) throw new RuntimeError(`no softserve database in ${dir} (has the server run with this data directory?)`);
      // Loaded here, not at start: the native SQLite binding costs every other command time.
      const { SqliteStore } = await import('../../prompts/store/sqlite/index.ts');
      const store = SqliteStore.openKeysOnly(dir);
      try {
        const { apiKey, key } = await store.keys.rotateAdminKey();
        if (wantsJson(cmd)) return printJson({ api_key: apiKey, key: { id: key.id, prefix: key.prefix, created_at: key.createdAt } });
        if (opts.quiet) return out(apiKey);
        out('new admin key (shown this once; the old one no longer works):');
        out('');
        out(`  export SOFTSERVE_ADMIN_KEY=${apiKey}`);
      } finally {
        store.close();
      }
    });
}
