// SIGTERM drains: `npm start`'s entry point, run as a child process, finishes
// the work it has accepted, refuses new work with 503, then exits 0.
//
// No clocks: the test signals only once the server itself reports a deep
// queue of accepted, unfinished rows (softserve_queue_rows in /metrics), and
// the server's own 'draining' log line says how much was still queued when the
// signal arrived. The model is a random llama checkpoint big enough that the
// queued rows take seconds of forward passes (one row per pass), so the work
// cannot all finish in the moment between the scrape and the signal. Run
// twice: one process, and a primary with two front workers (its /metrics is
// gathered from every process; its fronts drain first, then the primary).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FIXTURE_WORDS, writeRandomCheckpoint } from './fixtures/random-checkpoint.ts';
import { ADMIN_KEY, api, tempDir } from './store-helpers.ts';
import { classify, createTask, createTenant } from './serving-helpers.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REQUESTS = 12;
const INPUTS_PER_REQUEST = 16;

/** What the server reports: classify requests admitted so far, and rows still queued. */
async function serverState(url: string): Promise<{ admitted: number; queuedRows: number }> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text());
  let admitted = 0;
  for (const m of text.matchAll(/^softserve_tenant_requests_total\{[^}]*\} (\d+)/gm)) admitted += Number(m[1]);
  const queued = /^softserve_queue_rows (\d+)/m.exec(text);
  return { admitted, queuedRows: queued ? Number(queued[1]) : 0 };
}

/** `fronts` > 0: a clustered server (server/cluster/), whose primary drains its fronts, then itself. */
async function drainCase(fronts: number): Promise<void> {
  const dataDir = tempDir('drain');
  // ~1M parameters and ~90-token rows: each single-row forward pass takes a
  // few milliseconds on a quiet machine, so the queue holds about a second of
  // work at the signal; the drain timeout is generous so that a busy machine
  // only makes the test slower, never wrong.
  const ckpt = writeRandomCheckpoint({ family: 'llama', seed: 7, hidden: 128, layers: 4, heads: 4, kvHeads: 4, intermediate: 512, maxPositions: 256 });
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env, SOFTSERVE_PORT: '0', SOFTSERVE_DATA_DIR: dataDir, SOFTSERVE_ADMIN_KEY: ADMIN_KEY,
      SOFTSERVE_MODEL_DIR: ckpt.dir, SOFTSERVE_BATCH_MAX_ROWS: '1', SOFTSERVE_INTRA_OP_THREADS: '1',
      SOFTSERVE_DRAIN_TIMEOUT_MS: '150000', SOFTSERVE_DEADLINE_MS: '150000', SOFTSERVE_FRONT_WORKERS: String(fronts),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: Array<Record<string, unknown>> = [];
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      lines.push(entry);
      if (entry.msg === 'listening') resolve(entry.url as string);
    });
    child.once('exit', (code) => reject(new Error(`server exited early with ${code}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const key = await createTenant(url, 'drainer');
    await createTask(url, key, { name: 't', labels: ['a', 'b'], template: '{text} it was', scoring: { type: 'verbalizer', label_words: ['good', 'bad'] } });
    const words = FIXTURE_WORDS.filter((w) => /^[a-z]+$/.test(w));
    const text = Array.from({ length: 80 }, (_, i) => words[(i * 7) % words.length]).join(' ');
    const inFlight = Array.from({ length: REQUESTS }, () => classify(url, key, 't', { inputs: Array(INPUTS_PER_REQUEST).fill(text) }));

    // Wait for the state, not a clock: every request admitted (counted just
    // before it is queued), and most of their rows still queued.
    const threshold = (REQUESTS * INPUTS_PER_REQUEST) / 2;
    for (;;) {
      const state = await serverState(url);
      if (state.admitted === REQUESTS) {
        assert.ok(state.queuedRows >= threshold, `only ${state.queuedRows} rows still queued once all ${REQUESTS} requests were admitted`);
        break;
      }
      await new Promise((r) => setImmediate(r));
    }
    child.kill('SIGTERM');

    // Drain has begun once the server says so (every front, in a cluster); a request after that is refused.
    const drainingLines = () => lines.filter((l) => l.msg === 'draining');
    while (drainingLines().length < 1 + fronts) await new Promise((r) => setTimeout(r, 5));
    const late = await classify(url, key, 't', { inputs: ['too late'] }).then((r) => r.status, (err: Error) => err.message);
    const results = await Promise.all(inFlight);
    for (const r of results) assert.equal(r.status, 200, JSON.stringify(r.json));
    // The process holding the scheduler says how much was queued (a front's line has no rows).
    const draining = lines.find((l) => l.msg === 'draining' && l.front === undefined)!;
    const queuedAtSignal = (draining.queued as { rows: number }).rows;
    assert.ok(queuedAtSignal > 0, `the server reported no queued rows at SIGTERM (${JSON.stringify(draining.queued)}): the test proves nothing`);
    assert.ok(late === 503 || /fetch failed|ECONNREFUSED|socket/i.test(String(late)), `a request after SIGTERM got ${late}`);
    assert.equal(await exited, 0);
    assert.ok(lines.some((l) => l.msg === 'stopped'));
    // The log goes through an asynchronous destination: every answered request's line still reached stdout before exit.
    const answered = lines.filter((l) => l.msg === 'request' && l.path === '/v1/tasks/t/classify' && l.status === 200);
    assert.equal(answered.length, REQUESTS, 'request log lines lost at shutdown');
    const readyAfter = await api(url, 'GET', '/readyz').then((r) => r.status, () => 'closed');
    assert.equal(readyAfter, 'closed');
  } finally {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    ckpt.cleanup();
  }
}

test('SIGTERM finishes accepted work, refuses new work with 503, and exits 0', { timeout: 240_000 }, () => drainCase(0));

test('the same with two front workers: the primary drains its fronts, then itself', { timeout: 240_000 }, () => drainCase(2));
