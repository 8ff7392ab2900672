// The product's roles as real child processes for tests: serve replicas
// (`npm start`'s entry), trainers (`npm run trainer`'s) or any package.json
// script, started from the command package.json declares (so a renamed entry
// point breaks the tests rather than passing silently). Each process logs
// JSON lines (pino); they are kept, and tests wait for states by reading
// them. `waitFor` polls a condition until it holds (a state, never a fixed
// sleep) and says how long it took.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { ADMIN_KEY, STORIES_DIR } from './serving-helpers.ts';
import { tempDir } from './store-helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** `node --import tsx FILE` from a package.json script, as argv for process.execPath. */
export function scriptArgv(script: string): string[] {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
  const cmd = pkg.scripts[script];
  assert.ok(cmd, `package.json has no "${script}" script`);
  const words = cmd.trim().split(/\s+/);
  assert.equal(words[0], 'node', `the "${script}" script starts node directly (${cmd})`);
  return words.slice(1);
}

export interface RoleProcess {
  name: string;
  child: ChildProcess;
  /** Every JSON log line so far. */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the first log line (past or future) matching `pred`. */
  waitForLog(pred: (line: Record<string, unknown>) => boolean, what: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string | null>;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | string | null>;
  kill(): Promise<void>;
  stderr(): string;
}

export interface RoleOptions {
  name: string;
  script: string;
  env: Record<string, string>;
}

/** Starts a role process from a package.json script with the given environment. */
export function startRole(opts: RoleOptions): RoleProcess {
  const child = spawn(process.execPath, scriptArgv(opts.script), {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      entry = { msg: line };
    }
    logs.push(entry);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.pred(entry)) {
        waiters[i]!.resolve(entry);
        waiters.splice(i, 1);
      }
    }
  });
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const role: RoleProcess = {
    name: opts.name,
    child,
    logs,
    exited,
    stderr: () => err,
    waitForLog(pred, what, timeoutMs = 60_000) {
      const seen = logs.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${opts.name}: no log line "${what}" within ${timeoutMs} ms\nstderr: ${err.slice(-4000)}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => { clearTimeout(timer); resolve(l); } });
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${opts.name} exited (${code}) before "${what}"\nstderr: ${err.slice(-4000)}`));
        });
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
  return role;
}

/** What every role needs on a shared database: the embedded model, one intra-op thread (2-core CI), a private data directory. */
function roleEnv(databaseUrl: string, dataDir: string, env: Record<string, string>): Record<string, string> {
  return {
    SOFTSERVE_DATABASE_URL: databaseUrl, SOFTSERVE_DATA_DIR: dataDir, SOFTSERVE_ADMIN_KEY: ADMIN_KEY, SOFTSERVE_MODEL_DIR: STORIES_DIR,
    SOFTSERVE_INTRA_OP_THREADS: '1', SOFTSERVE_TRAINING_THREADS: '1', SOFTSERVE_HOST: '127.0.0.1', SOFTSERVE_PORT: '0', SOFTSERVE_TRAINER_PORT: '0', ...env,
  };
}

export interface Replica extends RoleProcess {
  url: string;
  /** The value of one unlabelled sample in /metrics (NaN when absent). */
  metric(name: string): Promise<number>;
  /** SIGTERM and wait for exit 0. */
  stop(): Promise<number | string | null>;
}

/** A serve replica (`npm start`) on the database; resolves once it logs 'listening'. */
export async function startReplica(databaseUrl: string, env: Record<string, string> = {}, name = 'replica'): Promise<Replica> {
  const dataDir = tempDir('replica');
  const role = startRole({ name, script: 'start', env: roleEnv(databaseUrl, dataDir, env) });
  void role.exited.then(() => rmSync(dataDir, { recursive: true, force: true }));
  const url = (await role.waitForLog((l) => l.msg === 'listening', 'listening', 120_000)).url as string;
  const stop = role.stop;
  return Object.assign(role, {
    url,
    async metric(metricName: string) {
      const text = await (await fetch(`${url}/metrics`)).text();
      const m = new RegExp(`^${metricName} (\\S+)$`, 'm').exec(text);
      return m ? Number(m[1]) : NaN;
    },
    async stop() {
      if (role.child.exitCode !== null) throw new Error(`${name} had already exited with ${role.child.exitCode}: ${role.stderr()}`);
      const code = await stop();
      assert.equal(code, 0, role.stderr());
      return code;
    },
  });
}

/** A trainer process (`npm run trainer`) on the database; resolves once it logs 'trainer started'. */
export async function startTrainerProcess(databaseUrl: string, env: Record<string, string> = {}, name = 'trainer'): Promise<RoleProcess> {
  const dataDir = tempDir('trainer');
  const role = startRole({ name, script: 'trainer', env: roleEnv(databaseUrl, dataDir, env) });
  void role.exited.then(() => rmSync(dataDir, { recursive: true, force: true }));
  await role.waitForLog((l) => l.msg === 'trainer started', 'trainer started', 120_000);
  return role;
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
