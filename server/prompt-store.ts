// The prompt service a process opens on the configured database: a serve
// process (server.ts) and a trainer process (trainer.ts) open it the same
// way, with the same limits and resident prompt cache size
// (SOFTSERVE_PROMPT_CACHE_BYTES).

import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

import type { ModelSpec } from '../models/spec.ts';
import type { TextTokenizer } from '../models/tokenizer.ts';
import { PromptStore } from '../prompts/store.ts';
import { openBackend } from '../prompts/store/open.ts';
import { promptLimits, type ServerConfig } from './config.ts';

/** The prompt service on the configured database (the SQLite file, or PostgreSQL with SOFTSERVE_DATABASE_URL), migrated. */
export async function openPromptStore(config: ServerConfig, spec: ModelSpec, tokenizer: TextTokenizer, registry: Registry, logger: Logger): Promise<PromptStore> {
  const backend = await openBackend({ dataDir: config.dataDir, databaseUrl: config.databaseUrl, logger });
  return new PromptStore(backend, {
    spec, limits: promptLimits(config), maxEnsembleSize: config.maxEnsembleSize, cacheBytes: config.promptCacheBytes, registry, tokenizer,
  });
}
