// The bundled server, end to end: start it as a child process (127.0.0.1, a
// free port, a temporary data directory), create a tenant with a task and a
// soft prompt through the API, classify two inputs, fetch the pages that read
// files beside the code (/info, the console), then optionally drive a
// bounded load with the bundled load generator (loadtest.mjs --url ...), and
// stop it with SIGTERM. Front workers: the count K is passed to the server in
// the environment variable named by --k-var, for the server that reads it.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpClient } from '../../loadtest/client.ts';
import { waitForListening } from '../../loadtest/server-process.ts';
import { readModelDims, setupWorkload, STYLE_CAUSAL } from '../../loadtest/scenarios.ts';
import { errorText } from './args.ts';

export interface ServeOptions {
  /** The server's entry file (the bundle's main.mjs) and the load generator's (loadtest.mjs). */
  serverEntry: string;
  loadtestEntry: string;
  modelDir: string;
  ep: string;
  k: number;
  kVar: string;
  /** Seconds of measured load; 0 skips the load. */
  loadSeconds: number;
  concurrency: number;
  tenants: number;
  startTimeoutMs: number;
}

export interface ServeResult {
  ep: string; k: number; kVar: string; startMs?: number; ok: boolean;
  /** HTTP status of pages that read files beside the bundled code (the console, its chart library, /info). */
  pages?: Record<string, number>;
  classify?: unknown; load?: unknown; loadError?: string; error?: string; serverTail?: string[];
}

interface Child { url: string; stop(): Promise<number | null>; tail: string[] }

async function startServer(o: ServeOptions, adminKey: string, dataDir: string): Promise<Child> {
  const env = {
    ...process.env,
    SOFTSERVE_HOST: '127.0.0.1', SOFTSERVE_PORT: '0', SOFTSERVE_DATA_DIR: dataDir, SOFTSERVE_ADMIN_KEY: adminKey,
    SOFTSERVE_MODEL_DIR: o.modelDir, SOFTSERVE_EXECUTION_PROVIDER: o.ep, SOFTSERVE_LOG_LEVEL: 'info', [o.kVar]: String(o.k),
  };
  const child: ChildProcess = spawn(process.execPath, [o.serverEntry], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const keep = (l: string) => { tail.push(l.slice(0, 2000)); if (tail.length > 30) tail.shift(); };
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => { for (const l of c.split('\n')) if (l.trim()) keep(l); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : null))));
  let done = false;
  void exited.then(() => { done = true; });
  const url = await waitForListening(child, exited, keep, o.startTimeoutMs, (entry) => entry.msg === 'model loaded')
    .catch((err: unknown) => { child.kill('SIGKILL'); throw err; });
  return {
    url, tail,
    async stop() {
      if (!done) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
        const code = await exited;
        clearTimeout(t);
        return code;
      }
      return exited;
    },
  };
}

function runLoadtest(o: ServeOptions, url: string, adminKey: string): Promise<unknown> {
  const args = [o.loadtestEntry, '--url', url, '--admin-key', adminKey, '--model-dir', o.modelDir, '--duration', String(o.loadSeconds),
    '--warmup', '2', '--concurrency', String(o.concurrency), '--tenants', String(o.tenants), '--json'];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { err += c; process.stderr.write(c); });
    child.once('exit', (code) => {
      if (code !== 0) { reject(new Error(`loadtest exited with ${code}: ${err.trim().split('\n').slice(-5).join(' | ')}`)); return; }
      try { resolve(JSON.parse(out)); } catch { reject(new Error(`loadtest printed no JSON: ${out.slice(0, 500)}`)); }
    });
  });
}

export async function serveCheck(o: ServeOptions): Promise<ServeResult> {
  const result: ServeResult = { ep: o.ep, k: o.k, kVar: o.kVar, ok: false };
  const dataDir = mkdtempSync(join(tmpdir(), 'softserve-device-serve-'));
  const adminKey = `device-admin-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
  let server: Child | null = null;
  try {
    const t0 = performance.now();
    server = await startServer(o, adminKey, dataDir);
    result.startMs = Math.round(performance.now() - t0);
    const client = new HttpClient(server.url);
    try {
      const dims = readModelDims(o.modelDir);
      const style = dims.family === 'bert' || dims.family === 'roberta'
        ? { template: '{text} It was {mask}', labels: ['negative', 'positive'], labelWords: ['bad', 'good'] }
        : STYLE_CAUSAL;
      const w = await setupWorkload(client, adminKey, dims, {
        name: 'device', tenants: 1, promptsPerTenant: 1, ensembleTenants: 0, ensembleSize: 1,
        mix: [{ kind: 'soft', length: 10 }], shared: false, style, seedBase: 1,
      });
      const t = w.tenants[0]!;
      result.classify = await client.json('POST', `/v1/tasks/${t.task}/classify`, {
        key: t.key, body: { inputs: ['a gripping story told with warmth', 'a dull and lifeless film'], prompt: t.prompts[0]!.name },
      });
      result.pages = {};
      for (const path of ['/info', '/console/', '/console/vendor/uPlot.esm.js']) result.pages[path] = (await client.request('GET', path)).status;
      result.ok = true;
    } finally {
      client.close();
    }
    if (o.loadSeconds > 0) {
      try {
        result.load = await runLoadtest(o, server.url, adminKey);
      } catch (err) {
        result.loadError = errorText(err);
      }
    }
  } catch (err) {
    result.error = errorText(err);
  } finally {
    if (server) {
      await server.stop();
      result.serverTail = server.tail;
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
  return result;
}
