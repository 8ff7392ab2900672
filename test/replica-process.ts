// Serve replicas for tests: `server/main.ts` (what `npm start` runs) as a
// child process on a PostgreSQL database, its URL read from the "listening"
// log line, its JSON log lines kept; and `waitFor`, which polls a condition
// until it holds (a state, never a fixed sleep) and says how long it took.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { ADMIN_KEY, STORIES_DIR } from './serving-helpers.ts';
import { tempDir } from './store-helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface Replica {
  url: string;
  child: ChildProcess;
  /** Parsed JSON log lines so far. */
  logs: Array<Record<string, unknown>>;
  stderr(): string;
  /** The value of one unlabelled sample in /metrics (NaN when absent). */
  metric(name: string): Promise<number>;
  /** SIGTERM and wait for exit 0. */
  stop(): Promise<void>;
}

export async function startReplica(databaseUrl: string, env: Record<string, string> = {}): Promise<Replica> {
  const dataDir = tempDir('replica');
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env, SOFTSERVE_PORT: '0', SOFTSERVE_HOST: '127.0.0.1', SOFTSERVE_DATA_DIR: dataDir, SOFTSERVE_ADMIN_KEY: ADMIN_KEY,
      SOFTSERVE_MODEL_DIR: STORIES_DIR, SOFTSERVE_INTRA_OP_THREADS: '1', SOFTSERVE_DATABASE_URL: databaseUrl, ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    rmSync(dataDir, { recursive: true, force: true });
    resolve(code);
  }));
  const logs: Array<Record<string, unknown>> = [];
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try { entry = JSON.parse(line) as Record<string, unknown>; } catch { return; }
      logs.push(entry);
      if (entry.msg === 'listening') resolve(entry.url as string);
    });
    void exited.then((code) => reject(new Error(`server exited early with ${code}: ${stderr}`)));
  });
  return {
    url,
    child,
    logs,
    stderr: () => stderr,
    async metric(name: string) {
      const text = await (await fetch(`${url}/metrics`)).text();
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : NaN;
    },
    async stop() {
      if (child.exitCode !== null) throw new Error(`replica had already exited with ${child.exitCode}: ${stderr}`);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    },
  };
}

/**
 * Polls `probe` (as fast as it answers, at most every `everyMs`) until it
 * returns something other than undefined; throws after `deadlineMs` with
 * `what` and the last value seen. Returns the value and the time it took.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, opts: { deadlineMs?: number; everyMs?: number } = {}): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const deadline = start + (opts.deadlineMs ?? 10_000);
  let last: unknown;
  for (;;) {
    const t = performance.now();
    try {
      const v = await probe();
      if (v !== undefined) return { value: v, ms: performance.now() - start };
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) throw new Error(`${what}: not reached within ${opts.deadlineMs ?? 10_000} ms (last: ${last instanceof Error ? last.message : String(last)})`);
    const rest = (opts.everyMs ?? 5) - (performance.now() - t);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest));
  }
}
