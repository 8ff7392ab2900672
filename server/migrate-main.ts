// npm run migrate: the "migrate" role. Applies the store's schema migrations to
// SOFTSERVE_DATABASE_URL (or to the SQLite database in SOFTSERVE_DATA_DIR),
// prints the schema version on stdout and exits 0; exits 1 with the reason on
// stderr. An upgrade runs it once (a Kubernetes Job, deploy/kubernetes/) before
// the new build's replicas start; replicas would apply the same migrations
// themselves, under the same advisory lock, but a failing migration is better
// seen once, here, than by every replica in a crash loop.

import { migrateBackend } from '../prompts/store/open.ts';
import { loadConfig } from './config.ts';

try {
  const config = loadConfig();
  const state = await migrateBackend(config);
  // Never the database URL: it may hold a password.
  const where = state.backend === 'postgresql' ? 'PostgreSQL (SOFTSERVE_DATABASE_URL)' : `SQLite in ${config.dataDir}`;
  process.stdout.write(`softserve: migrate: ${where} is at schema version ${state.version} (this build's latest: ${state.latest})\n`);
} catch (err) {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`softserve: migrate failed: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
  process.exit(1);
}
