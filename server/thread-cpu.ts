// CPU time of a thread of this process, for the per-thread CPU metrics
// (softserve_thread_cpu_seconds_total): Linux's schedstat gives the
// nanoseconds a thread has run. A thread reads its own through
// /proc/thread-self (synchronously: an async read would run on libuv's
// pool), or any thread's through /proc/self/task/<id> once that thread has
// said its id (`currentThreadId`), so the metrics read the inference
// thread's at scrape time and nothing is read per batch. Node 20 has no
// per-thread CPU call of its own. The kernel brings the figure
// up to date at each scheduler tick and context switch, so a read lags by up
// to one tick: a 0.3 ms busy loop between two reads shows 0 in the median.
// Differences over many ticks are exact; a split of short intervals is not
// (time those instead). Where a thread's first read of its own figure fails
// (not Linux, no schedstat) it answers undefined from then on and the
// metrics stay absent; a later failure (say, out of file descriptors, or a
// thread that has ended) skips that one reading.

import { readFileSync, readlinkSync } from 'node:fs';

let available: boolean | undefined = process.platform === 'linux' ? undefined : false;

/**
 * Milliseconds of CPU a thread has used since it started: the calling
 * thread's, or that of thread `threadId` of this process; undefined where
 * unknown (or where that thread has ended).
 */
export function threadCpuMs(threadId?: number): number | undefined {
  if (available === false) return undefined;
  try {
    const text = readFileSync(threadId === undefined ? '/proc/thread-self/schedstat' : `/proc/self/task/${threadId}/schedstat`, 'latin1');
    const ns = Number(text.slice(0, text.indexOf(' ')));
    if (Number.isFinite(ns)) {
      available = true;
      return ns / 1e6;
    }
  } catch {
    // below: the same as an unreadable figure
  }
  // Only this thread's own figure tells whether there are any: another thread may simply have ended.
  if (available === undefined && threadId === undefined) available = false;
  return undefined;
}

/** The calling thread's id (Linux's tid), for another thread's `threadCpuMs`; undefined where unknown. */
export function currentThreadId(): number | undefined {
  if (available === false) return undefined;
  try {
    // The link reads "<pid>/task/<tid>".
    const id = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(id) && id > 0 ? id : undefined;
  } catch {
    return undefined;
  }
}
