// npm run bench:http-floor
// What Node's HTTP server costs per classify-sized request on this machine,
// before softserve does anything: bench/http-floor-server.mjs (bare
// node:http, then the same behind express) under the bench's own load (128
// closed-loop clients on 127.0.0.1, single-input SST-2-sized bodies, answers
// in bursts of 34 every 55 ms like the stories260k server's batches). Prints
// the server's CPU per request: its main thread, and all its threads. Set
// against softserve's "CPU outside session.run" row, it says how much of
// that is the HTTP stack itself.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { HttpClient } from '../loadtest/client.ts';
import { runLoad } from '../loadtest/generator.ts';
import { f } from '../loadtest/report.ts';

const SERVER = fileURLToPath(new URL('./http-floor-server.mjs', import.meta.url));
const DURATION_MS = 10_000;
const WARMUP_MS = 5_000;
const CLIENTS = 128;
const TEXT = 'a stirring , funny and finally transporting re-imagining of beauty and the beast and 1930s horror films';

interface Cpu { processMs: number; mainMs: number }

async function measure(mode: 'node' | 'express'): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', SERVER], { env: { ...process.env, MODE: mode }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout! });
      rl.on('line', (line) => { const m = /^listening (\d+)$/.exec(line); if (m) resolve(m[1]!); });
      child.once('exit', (code) => reject(new Error(`floor server exited with ${code}`)));
    });
    const client = new HttpClient(`http://127.0.0.1:${port}`);
    const body = JSON.stringify({ inputs: [TEXT] });
    const next = () => ({ path: '/classify', key: 'sk_floor_0123456789abcdef0123456789abcdef', body, rows: 1 });
    await runLoad(client, { label: `${mode} warm-up`, mode: { kind: 'closed', concurrency: CLIENTS }, durationMs: WARMUP_MS, maxRequests: 1e7, next, progress: false });
    const before = (await client.json('GET', '/cpu')) as Cpu;
    const run = await runLoad(client, { label: mode, mode: { kind: 'closed', concurrency: CLIENTS }, durationMs: DURATION_MS, maxRequests: 1e7, next });
    const after = (await client.json('GET', '/cpu')) as Cpu;
    client.close();
    const per = (ms: number) => f(ms / run.successes, 3);
    return [mode === 'node' ? 'node:http' : 'node:http + express, express.json(), res.json()', f(run.requestsPerSec), per(after.mainMs - before.mainMs), per(after.processMs - before.processMs - (after.mainMs - before.mainMs)), per(after.processMs - before.processMs)];
  } finally {
    child.kill('SIGTERM');
  }
}

const rows = [await measure('node'), await measure('express')];
console.log(`\`npm run bench:http-floor\` (${new Date().toISOString().slice(0, 10)}): ${CLIENTS} closed-loop clients, ${DURATION_MS / 1000} s after ${WARMUP_MS / 1000} s of warm-up, answers in bursts of 34 every 55 ms.\n`);
console.log('| server | req/s | main thread CPU ms/request | other threads ms/request | all threads ms/request |');
console.log('|---|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
