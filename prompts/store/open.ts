// Which backend the configuration asks for: PostgreSQL when a database URL is
// set (SOFTSERVE_DATABASE_URL), otherwise SQLite in the data directory (the
// default: `npm start` needs nothing else). Composition only; the backends
// live in ./sqlite/ and ./postgres/.

import type { Store } from './index.ts';
import type { StoreLogger } from './sqlite/context.ts';
import { SqliteStore } from './sqlite/index.ts';

export interface BackendConfig {
  dataDir: string;
  databaseUrl: string | null;
  logger?: StoreLogger;
}

export async function openBackend(c: BackendConfig): Promise<Store> {
  const logger = c.logger ? { logger: c.logger } : {};
  if (c.databaseUrl) {
    // Loaded only when asked for: a SQLite deployment never loads the PostgreSQL client.
    const { PostgresStore } = await import('./postgres/index.ts');
    return PostgresStore.open({ url: c.databaseUrl, ...logger });
  }
  return SqliteStore.open({ dataDir: c.dataDir, ...logger });
}
