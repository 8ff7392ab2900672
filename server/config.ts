// Server configuration, read from the environment once at start. Every limit a
// client can run into is here, with its default. Model and engine settings are
// added beside these by the engine.

export interface ServerConfig {
  /** SOFTSERVE_HOST (default 127.0.0.1). */
  host: string;
  /** SOFTSERVE_PORT (default 8080; 0 picks a free port). */
  port: number;
  /** SOFTSERVE_ADMIN_KEY: manages tenants. Unset: the admin API answers 403. */
  adminKey: string | null;
  /** SOFTSERVE_DATA_DIR: the database file and tensor files (default ./data). */
  dataDir: string;
  /** SOFTSERVE_MAX_JSON_BYTES: largest JSON request body (default 8 MiB). */
  maxJsonBytes: number;
  /** SOFTSERVE_MAX_UPLOAD_BYTES: largest file in a multipart upload (default 64 MiB). */
  maxUploadBytes: number;
  /** SOFTSERVE_MAX_VIRTUAL_TOKENS: longest prompt accepted (default 256). */
  maxVirtualTokens: number;
  /** SOFTSERVE_MAX_SAFETENSORS_HEADER_BYTES: largest safetensors JSON header in an upload (default 64 KiB). */
  maxSafetensorsHeaderBytes: number;
  /** SOFTSERVE_MAX_ADAPTER_CONFIG_BYTES: largest adapter_config.json (default 64 KiB). */
  maxAdapterConfigBytes: number;
  /** SOFTSERVE_MAX_LABELS: most labels a task may have (default 256). */
  maxLabels: number;
  /** SOFTSERVE_MAX_ENSEMBLE_SIZE: most prompts in an ensemble (default 16). */
  maxEnsembleSize: number;
  /** SOFTSERVE_PROMPT_CACHE_BYTES: byte bound of resident prompt tensors (default 256 MiB). */
  promptCacheBytes: number;
  /** SOFTSERVE_METRICS_TOKEN: when set, GET /metrics needs `Authorization: Bearer <it>`. */
  metricsToken: string | null;
  /** SOFTSERVE_METRICS_TENANT_LABEL: how tenants appear in metric labels: hash (default), id, none. */
  metricsTenantLabel: TenantLabelMode;
}

export type TenantLabelMode = 'hash' | 'id' | 'none';

export const DEFAULT_CONFIG: ServerConfig = {
  host: '127.0.0.1',
  port: 8080,
  adminKey: null,
  dataDir: './data',
  maxJsonBytes: 8 * 1024 * 1024,
  maxUploadBytes: 64 * 1024 * 1024,
  maxVirtualTokens: 256,
  maxSafetensorsHeaderBytes: 64 * 1024,
  maxAdapterConfigBytes: 64 * 1024,
  maxLabels: 256,
  maxEnsembleSize: 16,
  promptCacheBytes: 256 * 1024 * 1024,
  metricsToken: null,
  metricsTenantLabel: 'hash',
};

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < min) throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  return v;
}

function metricsToken(raw: string | undefined): string | null {
  if (raw === undefined || raw === '') return null;
  if (raw.length < 16) throw new Error('SOFTSERVE_METRICS_TOKEN must be at least 16 characters');
  return raw;
}

function tenantLabelMode(raw: string | undefined): TenantLabelMode {
  if (raw === undefined || raw === '') return DEFAULT_CONFIG.metricsTenantLabel;
  if (raw !== 'hash' && raw !== 'id' && raw !== 'none') throw new Error(`SOFTSERVE_METRICS_TENANT_LABEL must be hash, id or none, got ${JSON.stringify(raw)}`);
  return raw;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const adminKey = env.SOFTSERVE_ADMIN_KEY && env.SOFTSERVE_ADMIN_KEY.length > 0 ? env.SOFTSERVE_ADMIN_KEY : null;
  if (adminKey !== null && adminKey.length < 16) throw new Error('SOFTSERVE_ADMIN_KEY must be at least 16 characters');
  return {
    host: env.SOFTSERVE_HOST || DEFAULT_CONFIG.host,
    port: int(env, 'SOFTSERVE_PORT', DEFAULT_CONFIG.port, 0),
    adminKey,
    dataDir: env.SOFTSERVE_DATA_DIR || DEFAULT_CONFIG.dataDir,
    maxJsonBytes: int(env, 'SOFTSERVE_MAX_JSON_BYTES', DEFAULT_CONFIG.maxJsonBytes, 1024),
    maxUploadBytes: int(env, 'SOFTSERVE_MAX_UPLOAD_BYTES', DEFAULT_CONFIG.maxUploadBytes, 1024),
    maxVirtualTokens: int(env, 'SOFTSERVE_MAX_VIRTUAL_TOKENS', DEFAULT_CONFIG.maxVirtualTokens, 1),
    maxSafetensorsHeaderBytes: int(env, 'SOFTSERVE_MAX_SAFETENSORS_HEADER_BYTES', DEFAULT_CONFIG.maxSafetensorsHeaderBytes, 1024),
    maxAdapterConfigBytes: int(env, 'SOFTSERVE_MAX_ADAPTER_CONFIG_BYTES', DEFAULT_CONFIG.maxAdapterConfigBytes, 1024),
    maxLabels: int(env, 'SOFTSERVE_MAX_LABELS', DEFAULT_CONFIG.maxLabels, 2),
    maxEnsembleSize: int(env, 'SOFTSERVE_MAX_ENSEMBLE_SIZE', DEFAULT_CONFIG.maxEnsembleSize, 1),
    promptCacheBytes: int(env, 'SOFTSERVE_PROMPT_CACHE_BYTES', DEFAULT_CONFIG.promptCacheBytes, 1),
    metricsToken: metricsToken(env.SOFTSERVE_METRICS_TOKEN),
    metricsTenantLabel: tenantLabelMode(env.SOFTSERVE_METRICS_TENANT_LABEL),
  };
}

/** The prompt limits the store enforces, from the server config. */
export function promptLimits(c: ServerConfig): { maxVirtualTokens: number; maxSafetensorsHeaderBytes: number; maxAdapterConfigBytes: number; maxLabels: number } {
  return {
    maxVirtualTokens: c.maxVirtualTokens,
    maxSafetensorsHeaderBytes: c.maxSafetensorsHeaderBytes,
    maxAdapterConfigBytes: c.maxAdapterConfigBytes,
    maxLabels: c.maxLabels,
  };
}
