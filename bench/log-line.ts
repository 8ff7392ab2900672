// What a request's log line costs the server: a child process logs lines
// shaped like the classify request line in bursts, to a pipe its parent
// reads (as the bench's server logs to its parent), and reports its CPU per
// line; the modes run interleaved, three rounds each, so the machine's drift
// touches them alike. By default the bursts are the server's: a batch's
// answers finish together, 34 lines every 55 ms (BURST and EVERY change it).
//   none     no logger call (the loop's own cost, to subtract)
//   each     the server's logger (server/log.ts): an asynchronous
//            destination that writes whatever is buffered whenever no write
//            is in flight, so a burst goes out in about two writes; lines
//            reach it as bytes (its buffer mode)
//   batched  an asynchronous destination in string mode with sonic-boom's
//            minLength 4096 and a 100 ms flush: writes of at least 4 KiB
//            (tried, not kept: docs/BENCHMARKS.md)
//
// npm run bench:log-line     BURST=6 EVERY=10 npm run bench:log-line

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';

import { serverLogger } from '../server/log.ts';
import { threadCpuMs } from '../server/thread-cpu.ts';

const MODES = ['none', 'each', 'batched'] as const;
type Mode = (typeof MODES)[number];
const ROUNDS = 3;
/** Lines per burst and ms between bursts. */
const BURST = Number(process.env.BURST ?? 34);
const EVERY = Number(process.env.EVERY ?? 55);
const SECONDS = 6;
const LINE = {
  request_id: 'a6a7f0e2-5d0b-4b57-9d2e-6a2f3b1c0d9e', method: 'POST', path: '/v1/tasks/t17/classify', status: 200, ms: 120.5,
  tenant: 'ten_abcdef123456', rows: 1, tokens: 70, batches: [1234], queueMs: 100.2, inferenceMs: 55.1, tokenizeMs: 0.02,
};

interface Result { mode: Mode; lines: number; mainUs: number; processUs: number }

async function child(mode: Mode): Promise<void> {
  const logger: Logger | null = mode === 'none' ? null
    : mode === 'each' ? serverLogger('info')
    : pino({ level: 'info', base: { service: 'softserve' } }, pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 100 }));
  const cpu0 = process.cpuUsage();
  const main0 = threadCpuMs();
  let lines = 0;
  const end = Date.now() + SECONDS * 1000;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      for (let i = 0; i < BURST; i++, lines++) logger?.info(LINE, 'request');
      if (Date.now() >= end) {
        clearInterval(tick);
        resolve();
      }
    }, EVERY);
  });
  const cpu = process.cpuUsage(cpu0);
  const main = threadCpuMs();
  const result: Result = { mode, lines, mainUs: main === undefined || main0 === undefined ? NaN : (main - main0) * 1000 / lines, processUs: (cpu.user + cpu.system) / lines };
  process.stderr.write(`${JSON.stringify(result)}\n`);
  if (logger) await new Promise<void>((r) => logger.flush(() => r()));
}

function runChild(mode: Mode): Promise<Result> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', mode], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BURST: String(BURST), EVERY: String(EVERY) } });
    p.stdout.resume(); // read and drop the lines, as a log collector would
    let err = '';
    p.stderr.on('data', (c: Buffer) => { err += String(c); });
    p.on('error', reject);
    p.on('close', (code) => {
      const line = err.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !line) reject(new Error(`child ${mode} exited ${code}: ${err}`));
      else resolve(JSON.parse(line) as Result);
    });
  });
}

async function main(): Promise<void> {
  const results: Result[] = [];
  for (let round = 0; round < ROUNDS; round++) for (const mode of MODES) results.push(await runChild(mode));
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const none = results.filter((r) => r.mode === 'none');
  const base = { main: median(none.map((r) => r.mainUs)), process: median(none.map((r) => r.processUs)) };
  console.log(`${ROUNDS} rounds of ${SECONDS} s per mode, ${BURST} lines every ${EVERY} ms; CPU per line, medians (all rounds: main / process µs)`);
  console.log('| mode | main thread µs/line | process µs/line | over `none`: main / process | rounds |');
  console.log('|---|---:|---:|---:|---|');
  for (const mode of MODES) {
    const rs = results.filter((r) => r.mode === mode);
    const m = median(rs.map((r) => r.mainUs));
    const p = median(rs.map((r) => r.processUs));
    console.log(`| ${mode} | ${m.toFixed(1)} | ${p.toFixed(1)} | ${(m - base.main).toFixed(1)} / ${(p - base.process).toFixed(1)} | ${rs.map((r) => `${r.mainUs.toFixed(0)}/${r.processUs.toFixed(0)}`).join(', ')} |`);
  }
}

const at = process.argv.indexOf('--child');
if (at >= 0) await child(process.argv[at + 1] as Mode);
else await main();
