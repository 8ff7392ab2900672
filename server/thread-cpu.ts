// CPU time of the calling thread, for the per-thread CPU metrics
// (softserve_thread_cpu_seconds_total): Linux's /proc/thread-self/schedstat
// gives the nanoseconds this thread has run, exact to the scheduler, and it
// must be read synchronously, on the thread being measured (an async read
// would run on libuv's pool). Node 20 has no per-thread CPU call of its own.
// Elsewhere, or where the file is missing, it answers undefined and the
// metrics stay absent.

import { readFileSync } from 'node:fs';

let available = process.platform === 'linux';

/** Milliseconds of CPU this thread has used since it started, or undefined where unknown. */
export function threadCpuMs(): number | undefined {
  if (!available) return undefined;
  try {
    const text = readFileSync('/proc/thread-self/schedstat', 'latin1');
    const ns = Number(text.slice(0, text.indexOf(' ')));
    if (Number.isFinite(ns)) return ns / 1e6;
  } catch {
    // no schedstat (kernel without CONFIG_SCHED_INFO, or no /proc): stop asking
  }
  available = false;
  return undefined;
}
