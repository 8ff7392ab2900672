// Shared by the prompt-store tests: the PEFT builders (peft-builders.ts) and
// a real server on 127.0.0.1 over a temp data directory.

import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';

import { PromptStore } from '../prompts/store.ts';
import type { SqliteStore } from '../prompts/store/sqlite/index.ts';
import { createApp } from '../server/app.ts';
import { DEFAULT_CONFIG, promptLimits, type ServerConfig } from '../server/config.ts';
import { SPEC } from './peft-builders.ts';

export * from './peft-builders.ts';

export function tempDir(tag: string): string {
  return mkdtempSync(join(tmpdir(), `softserve-${tag}-`));
}

export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';

export interface TestServer {
  url: string;
  store: PromptStore<SqliteStore>;
  dataDir: string;
  config: ServerConfig;
  close(opts?: { keepData?: boolean }): Promise<void>;
}

export async function startServer(overrides: Partial<ServerConfig> = {}, dataDir = tempDir('api')): Promise<TestServer> {
  const config: ServerConfig = { ...DEFAULT_CONFIG, adminKey: ADMIN_KEY, dataDir, port: 0, ...overrides };
  const store = PromptStore.open({ dataDir, spec: SPEC, limits: promptLimits(config), maxEnsembleSize: config.maxEnsembleSize, cacheBytes: config.promptCacheBytes });
  const app = createApp({ store, spec: SPEC, config });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    store,
    dataDir,
    config,
    async close(opts = {}) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
      if (!opts.keepData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  bytes: Uint8Array;
}

export async function api(base: string, method: string, path: string, opts: { key?: string; json?: unknown; body?: BodyInit; headers?: Record<string, string> } = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.key !== undefined) headers.authorization = `Bearer ${opts.key}`;
  let body: BodyInit | undefined = opts.body;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(base + path, { method, headers, ...(body !== undefined ? { body } : {}) });
  const bytes = new Uint8Array(await res.arrayBuffer());
  let json: unknown = null;
  if ((res.headers.get('content-type') ?? '').includes('json') && bytes.length > 0) json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  return { status: res.status, headers: res.headers, json, bytes };
}

/** A multipart body with PEFT's two files (and the prompt name). */
export function peftForm(name: string | null, files: { config: Uint8Array; model: Uint8Array }): FormData {
  const form = new FormData();
  if (name !== null) form.append('name', name);
  form.append('adapter_config', new Blob([new Uint8Array(files.config)], { type: 'application/json' }), 'adapter_config.json');
  form.append('adapter_model', new Blob([new Uint8Array(files.model)], { type: 'application/octet-stream' }), 'adapter_model.safetensors');
  return form;
}
