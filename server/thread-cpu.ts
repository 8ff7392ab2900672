// CPU time of the calling thread, for the per-thread CPU metrics
// (softserve_thread_cpu_seconds_total): Linux's /proc/thread-self/schedstat
// gives the nanoseconds this thread has run. It must be read synchronously,
// on the thread being measured (an async read would run on libuv's pool);
// Node 20 has no per-thread CPU call of its own. The kernel brings the figure
// up to date at each scheduler tick and context switch, so a read lags by up
// to one tick: a 0.3 ms busy loop between two reads shows 0 in the median.
// Differences over many ticks are exact; a split of short intervals is not
// (time those instead). Where the first read fails (not Linux, no
// schedstat) it answers undefined from then on and the metrics stay absent;
// a later failure (say, out of file descriptors) skips that one reading.

import { readFileSync } from 'node:fs';

let available: boolean | undefined = process.platform === 'linux' ? undefined : false;

/** Milliseconds of CPU this thread has used since it started, or undefined where unknown. */
export function threadCpuMs(): number | undefined {
  if (available === false) return undefined;
  try {
    const text = readFileSync('/proc/thread-self/schedstat', 'latin1');
    const ns = Number(text.slice(0, text.indexOf(' ')));
    if (Number.isFinite(ns)) {
      available = true;
      return ns / 1e6;
    }
  } catch {
    // below: the same as an unreadable figure
  }
  if (available === undefined) available = false;
  return undefined;
}
