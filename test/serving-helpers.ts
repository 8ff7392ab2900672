// A whole softserve (inference worker, store, scheduler, HTTP) on 127.0.0.1
// for integration tests, with its log lines captured, plus helpers to make
// tenants, tasks and prompts through the public API.

import { Writable } from 'node:stream';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { DEFAULT_CONFIG, loadServingConfig, loadTrainingConfig, type ServerConfig, type ServingConfig, type TrainingConfig } from '../server/config.ts';
import { DEFAULT_SCHEDULER_CONFIG, type SchedulerConfig } from '../server/scheduler.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { ADMIN_KEY, api, tempDir } from './store-helpers.ts';

export const STORIES_DIR = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));

export interface ServingTestServer {
  url: string;
  server: RunningServer;
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function startServingServer(
  opts: { scheduler?: Partial<SchedulerConfig>; serving?: Partial<ServingConfig>; config?: Partial<ServerConfig>; training?: Partial<TrainingConfig> } = {},
): Promise<ServingTestServer> {
  const dataDir = tempDir('serving');
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const base = loadServingConfig({});
  const serving: ServingConfig = {
    ...base, modelDir: STORIES_DIR, ...opts.serving,
    scheduler: { ...DEFAULT_SCHEDULER_CONFIG, ...opts.scheduler },
  };
  const config: ServerConfig = { ...DEFAULT_CONFIG, adminKey: ADMIN_KEY, dataDir, port: 0, ...opts.config };
  const server = await startServer({
    config, serving, logger: pino({ level: 'debug' }, sink),
    ...(opts.training ? { training: { ...loadTrainingConfig({}), ...opts.training } } : {}),
  });
  return {
    url: server.url,
    server,
    logs,
    async close() {
      await server.shutdown();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function createTenant(url: string, name: string): Promise<string> {
  const r = await api(url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name } });
  if (r.status !== 201) throw new Error(`tenant: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.api_key as string;
}

export async function createTask(url: string, key: string, task: Record<string, unknown>): Promise<void> {
  const r = await api(url, 'POST', '/v1/tasks', { key, json: task });
  if (r.status !== 201) throw new Error(`task: ${r.status} ${JSON.stringify(r.json)}`);
}

/** Deterministic nested arrays for the JSON prompt form. */
export function nested(shape: number[], seed: number, scale = 0.5): unknown {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 4294967296 - 0.5) * 2 * scale;
  };
  const build = (depth: number): unknown =>
    depth === shape.length ? Math.fround(next()) : Array.from({ length: shape[depth]! }, () => build(depth + 1));
  return build(0);
}

export async function uploadPrompt(url: string, key: string, task: string, body: Record<string, unknown>): Promise<number> {
  const r = await api(url, 'POST', `/v1/tasks/${task}/prompts`, { key, json: body });
  if (r.status !== 201) throw new Error(`prompt: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.version as number;
}

export function classify(url: string, key: string, task: string, body: Record<string, unknown>) {
  return api(url, 'POST', `/v1/tasks/${task}/classify`, { key, json: body });
}

export { ADMIN_KEY, api };
