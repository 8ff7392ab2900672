// Starts the real server (`node --import tsx server/main.ts`, what `npm start`
// runs) as a child process on 127.0.0.1 and a free port, with environment
// overrides and a temporary data directory, and stops it with SIGTERM (then
// SIGKILL if it does not exit). The URL comes from its "listening" log line.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ServerProcess {
  url: string;
  adminKey: string;
  pid: number;
  /** The environment overrides it was started with. */
  env: Record<string, string>;
  /** The last lines of stderr and non-JSON stdout (for error messages). */
  tail(): string;
  /** SIGTERM, wait for exit (SIGKILL after `graceMs`), remove the data directory. */
  stop(graceMs?: number): Promise<number | null>;
}

export interface StartProcessOptions {
  /**
   * SOFTSERVE_* overrides (port, host, data dir and admin key are set here;
   * the log level stays info or debug: the URL is read from the "listening" line).
   */
  env?: Record<string, string>;
  /** Longest wait for "listening" (default 180 s: a BERT-base load and warm-up is slow on 2 cores). */
  startTimeoutMs?: number;
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=...'] to profile the server. */
  nodeArgs?: string[];
  /** Keep the server's log lines (after "listening") in this file instead of throwing them away. */
  logFile?: string;
}

/**
 * The URL of a starting server's "listening" log line. Warnings, errors,
 * non-JSON lines and the lines `alsoKeep` picks go to `keep`; once listening,
 * stdout is read and thrown away (cheaply) so the pipe never fills and stalls
 * the server.
 */
export function waitForListening(
  child: ChildProcess, exited: Promise<number | null>, keep: (line: string) => void, timeoutMs: number,
  alsoKeep: (entry: Record<string, unknown>) => boolean = () => false, logFile?: string,
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within ${timeoutMs} ms`)), timeoutMs);
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      let entry: Record<string, unknown> | null = null;
      try { entry = JSON.parse(line) as Record<string, unknown>; } catch { keep(line); }
      if (entry && ((entry.level as number) >= 40 || alsoKeep(entry))) keep(line);
      if (entry?.msg === 'listening' && typeof entry.url === 'string') {
        clearTimeout(timer);
        rl.close();
        if (logFile) child.stdout!.pipe(createWriteStream(logFile));
        else child.stdout!.on('data', () => {});
        child.stdout!.resume();
        resolve(entry.url);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening`));
    });
  });
}

export async function startServerProcess(opts: StartProcessOptions = {}): Promise<ServerProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'softserve-load-'));
  const adminKey = `loadtest-admin-${Math.random().toString(36).slice(2)}-${Date.now().toString(36)}`;
  const level = opts.env?.SOFTSERVE_LOG_LEVEL;
  const env: Record<string, string> = {
    ...opts.env,
    SOFTSERVE_LOG_LEVEL: level === 'debug' || level === 'trace' ? level : 'info',
    SOFTSERVE_HOST: '127.0.0.1',
    SOFTSERVE_PORT: '0',
    SOFTSERVE_DATA_DIR: dataDir,
    SOFTSERVE_ADMIN_KEY: adminKey,
  };
  const child: ChildProcess = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--import', 'tsx', 'server/main.ts'], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tail: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
  };
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => { for (const l of chunk.split('\n')) if (l.trim()) keep(l); });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => {
    exitCode = code ?? (signal ? 128 : null);
    resolve(exitCode);
  }));
  const cleanup = () => rmSync(dataDir, { recursive: true, force: true });

  let url: string;
  try {
    url = await waitForListening(child, exited, keep, opts.startTimeoutMs ?? 180_000, undefined, opts.logFile).catch((err: Error) => {
      throw new Error(`${err.message}:\n${tail.join('\n')}`);
    });
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    cleanup();
    throw err;
  }

  let stopping: Promise<number | null> | null = null;
  return {
    url,
    adminKey,
    pid: child.pid!,
    env,
    tail: () => tail.join('\n'),
    stop(graceMs = 60_000) {
      stopping ??= (async () => {
        if (exitCode === undefined) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          await exited;
          clearTimeout(timer);
        }
        cleanup();
        return exitCode ?? null;
      })();
      return stopping;
    },
  };
}
