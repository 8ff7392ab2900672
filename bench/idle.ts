// What an idle server costs: starts `server/main.ts` on the embedded default
// model, leaves it alone until its start-up work (JIT, the memory reducer's
// collections) is over, then reads every thread's CPU time and voluntary
// context switches (its wake-ups) from /proc over a window, and stops it.
// On a virtual machine a wake-up from idle costs tens of microseconds of
// CPU, so a timer that fires every few milliseconds is a visible tax on a
// fleet of mostly idle replicas (docs/BENCHMARKS.md). A thread that ends
// within the window is left out (an idle server starts and ends none).
//
// npm run bench:idle            SETTLE=20 WINDOW=10 (seconds) by default

import { readdirSync, readFileSync } from 'node:fs';

import { startServerProcess } from '../loadtest/server-process.ts';

const SETTLE_S = Number(process.env.SETTLE ?? 20);
const WINDOW_S = Number(process.env.WINDOW ?? 10);

interface ThreadSample { name: string; cpuMs: number; wakeups: number }

/** Every thread of process `pid`: its name, CPU ms (schedstat) and voluntary context switches. */
function sampleThreads(pid: number): Map<string, ThreadSample> {
  const out = new Map<string, ThreadSample>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const dir = `/proc/${pid}/task/${tid}`;
      const status = readFileSync(`${dir}/status`, 'utf8');
      out.set(tid, {
        name: readFileSync(`${dir}/comm`, 'utf8').trim(),
        cpuMs: Number(readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[0]) / 1e6,
        wakeups: Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? NaN),
      });
    } catch {
      // a thread that ended between the listing and the read
    }
  }
  return out;
}

async function main(): Promise<void> {
  if (process.platform !== 'linux') throw new Error('bench:idle reads /proc: Linux only');
  const srv = await startServerProcess();
  try {
    console.log(`server ready (pid ${srv.pid}); settling ${SETTLE_S} s, then measuring ${WINDOW_S} s`);
    await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
    const before = sampleThreads(srv.pid);
    await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
    const after = sampleThreads(srv.pid);
    console.log('| thread | wake-ups/s | CPU ms/s |');
    console.log('|---|---:|---:|');
    let wakeups = 0, cpuMs = 0;
    for (const [tid, b] of after) {
      const a = before.get(tid) ?? { cpuMs: 0, wakeups: 0 };
      const w = (b.wakeups - a.wakeups) / WINDOW_S, c = (b.cpuMs - a.cpuMs) / WINDOW_S;
      wakeups += w;
      cpuMs += c;
      if (w >= 0.1 || c >= 0.1) console.log(`| ${b.name} ${tid}${tid === String(srv.pid) ? ' (main)' : ''} | ${w.toFixed(1)} | ${c.toFixed(2)} |`);
    }
    console.log(`| all threads | ${wakeups.toFixed(1)} | ${cpuMs.toFixed(2)} |`);
  } finally {
    await srv.stop();
  }
}

await main();
