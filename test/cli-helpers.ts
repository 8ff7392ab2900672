// The real `softserve` CLI as a child process (bin/softserve.mjs, exactly what
// package.json's bin runs), and the real server started through it
// (`softserve serve --port 0`), for the CLI tests.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../bin/softserve.mjs', import.meta.url));
export const REPO = fileURLToPath(new URL('..', import.meta.url));

/** The environment without any SOFTSERVE_* variable of the caller's, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SOFTSERVE_')) env[k] = v;
  return { ...env, ...extra };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `softserve ARGS` to its end. */
export async function runCli(args: string[], opts: { env?: Record<string, string>; stdin?: string; cwd?: string } = {}): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN, ...args], { env: cleanEnv(opts.env), cwd: opts.cwd ?? REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString('utf8'); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString('utf8'); });
  child.stdin.end(opts.stdin ?? '');
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

/** A CLI child that the test talks to while it runs (train --follow, Ctrl-C). */
export class LiveCli {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  private readonly waiters: Array<{ re: RegExp; resolve: (m: RegExpMatchArray) => void }> = [];
  readonly exited: Promise<number | null>;

  constructor(args: string[], env: Record<string, string>) {
    this.child = spawn(process.execPath, [BIN, ...args], { env: cleanEnv(env), cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (d: Buffer) => { this.stdout += d.toString('utf8'); this.check(); });
    this.child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString('utf8'); this.check(); });
    this.exited = once(this.child, 'close').then(([code]) => code as number | null);
  }

  private check(): void {
    for (const w of [...this.waiters]) {
      const m = this.stderr.match(w.re);
      if (m) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  }

  /** Resolves when stderr matches `re` (the CLI's own output is the state to wait for). */
  waitStderr(re: RegExp): Promise<RegExpMatchArray> {
    const m = this.stderr.match(re);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      this.waiters.push({ re, resolve });
      void this.exited.then(() => {
        const late = this.stderr.match(re);
        if (late) resolve(late);
        else reject(new Error(`exited before stderr matched ${re}:\n${this.stderr}`));
      });
    });
  }
}

export interface CliServer {
  url: string;
  /** JSON log lines from stdout. */
  logs: Array<Record<string, unknown>>;
  stdout(): string;
  stderr(): string;
  /** Resolves once the log lines satisfy `pred` (checked on every new line). */
  waitLogs(pred: (logs: Array<Record<string, unknown>>) => boolean): Promise<void>;
  /** SIGTERM, then wait for the exit (a drain). */
  stop(): Promise<void>;
}

/** `softserve serve --port 0 --data-dir DIR`, resolved once it logs "listening" and has said what it says about the admin key. */
export async function startCliServer(dataDir: string, env: Record<string, string> = {}): Promise<CliServer> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data-dir', dataDir], { env: cleanEnv(env), cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const logs: Array<Record<string, unknown>> = [];
  let pending = '';
  const logWaiters: Array<{ pred: (l: Array<Record<string, unknown>>) => boolean; resolve: () => void }> = [];
  const listening = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      pending += d.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (!line.trim()) continue;
        const rec = JSON.parse(line) as Record<string, unknown>;
        logs.push(rec);
        if (rec.msg === 'listening') resolve(rec.url as string);
      }
      for (const w of [...logWaiters]) if (w.pred(logs)) { logWaiters.splice(logWaiters.indexOf(w), 1); w.resolve(); }
    });
    child.once('close', (code) => reject(new Error(`server exited (${code}) before listening:\n${err}`)));
  });
  child.stderr.on('data', (d: Buffer) => { err += d.toString('utf8'); });
  const url = await listening;
  const closed = once(child, 'close');
  // The admin-key notice is written right after "listening": wait for its last line.
  const noticeDone = () => /rotate-key/.test(err) || env.SOFTSERVE_ADMIN_KEY !== undefined;
  while (!noticeDone()) await once(child.stderr, 'data');
  return {
    url, logs,
    stdout: () => out,
    stderr: () => err,
    waitLogs(pred) {
      if (pred(logs)) return Promise.resolve();
      return new Promise<void>((resolve) => { logWaiters.push({ pred, resolve }); });
    },
    async stop() {
      child.kill('SIGTERM');
      await closed;
    },
  };
}
