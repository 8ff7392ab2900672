// First run: with no SOFTSERVE_ADMIN_KEY and no admin key in the store, make
// one, keep only its hash (KeyStore, prompts/store/) and say it once, with the
// next command to run. Later starts say where the key lives and how to replace
// it. The notice goes to stderr only (never through the logger: logs are
// shipped and kept, and the key must not be in them).

import type { KeyStore } from '../prompts/store/index.ts';
import type { ServerConfig } from './config.ts';

/** The lines to print on stderr at start, or null when there is nothing to say. */
export async function adminKeyNotice(keys: KeyStore, config: ServerConfig): Promise<string | null> {
  // Never the database URL itself: it may hold a password, and stderr may be kept.
  const rotate = config.databaseUrl ? 'npx softserve admin rotate-key (with SOFTSERVE_DATABASE_URL set)' : `npx softserve admin rotate-key --data-dir ${config.dataDir}`;
  if (config.adminKey !== null) {
    const stored = await keys.activeAdminKey();
    return stored ? `softserve: admin keys: SOFTSERVE_ADMIN_KEY, and the stored one made on first run (${stored.prefix}…); replace the stored one with: ${rotate}\n` : null;
  }
  const created = await keys.ensureAdminKey();
  if (created) {
    return [
      '',
      'softserve: first run: made an admin key. It is shown this once; the store keeps only its hash.',
      '',
      `  export SOFTSERVE_ADMIN_KEY=${created.apiKey}`,
      '',
      'Next, in another shell in this directory: run the line above, then make a tenant:',
      '',
      '  npx softserve tenants create acme',
      '',
      `Lost it? ${rotate}`,
      '',
    ].join('\n');
  }
  const stored = (await keys.activeAdminKey())!;
  return `softserve: admin key: the one made on first run (${stored.prefix}…, ${stored.createdAt}), kept hashed in ${config.databaseUrl ? 'the PostgreSQL database' : config.dataDir}; to replace it: ${rotate}\n`;
}
