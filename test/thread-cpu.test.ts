// threadCpuMs reads the calling thread's CPU (Linux /proc/thread-self): it
// follows process.cpuUsage() while only this thread works, and does not
// count another thread's work, which process.cpuUsage() does. Given a
// thread's id (currentThreadId, said by that thread), it reads that thread's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';

import { currentThreadId, threadCpuMs } from '../server/thread-cpu.ts';

const processCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

test('on this thread it tracks the process CPU of a busy loop', () => {
  const t0 = threadCpuMs();
  assert.ok(t0 !== undefined, 'CI runs on Linux: /proc/thread-self/schedstat is there');
  const p0 = processCpuMs();
  let x = 0;
  while (threadCpuMs()! - t0 < 150) for (let i = 0; i < 100_000; i++) x += i % 7;
  const thread = threadCpuMs()! - t0;
  const proc = processCpuMs() - p0;
  assert.ok(x > 0);
  // The loop allocates nothing, so the process's other threads (GC, compiler) barely run: the
  // process figure is at least this thread's (which lags by up to a scheduler tick), and not much more.
  assert.ok(thread >= 150);
  assert.ok(proc >= thread * 0.9 - 10, `process ${proc} ms, thread ${thread} ms`);
  assert.ok(proc <= thread * 1.25 + 20, `process ${proc} ms, thread ${thread} ms`);
});

test('another thread\'s work is not this thread\'s', async () => {
  const t0 = threadCpuMs()!;
  const p0 = processCpuMs();
  // The worker spins until its own /proc/thread-self says 300 ms, then reports that figure.
  const code = `
    const { readFileSync } = require('node:fs');
    const { parentPort } = require('node:worker_threads');
    const ms = () => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1e6;
    const start = ms(); let x = 0;
    while (ms() - start < 300) for (let i = 0; i < 100000; i++) x += i % 7;
    parentPort.postMessage(ms() - start + (x < 0 ? 1 : 0));`;
  const worked = await new Promise<number>((resolve, reject) => {
    const w = new Worker(code, { eval: true });
    w.once('message', (m: number) => { resolve(m); void w.terminate(); });
    w.once('error', reject);
  });
  const thread = threadCpuMs()! - t0;
  const proc = processCpuMs() - p0;
  assert.ok(worked >= 300);
  assert.ok(proc >= worked * 0.9, `process ${proc} ms counts the worker's ${worked} ms`);
  // This thread only started the worker and waited.
  assert.ok(thread < worked / 2, `this thread ${thread} ms, the worker ${worked} ms`);
});

test('another thread\'s CPU, read by the id it gives', async () => {
  // The worker spins, says its id and its CPU so far (by its own /proc/thread-self), and waits to be ended.
  const code = `
    const { readFileSync, readlinkSync } = require('node:fs');
    const { parentPort } = require('node:worker_threads');
    const ms = () => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]) / 1e6;
    let x = 0;
    while (ms() < 100) for (let i = 0; i < 100000; i++) x += i % 7;
    parentPort.postMessage({ id: Number(readlinkSync('/proc/thread-self').split('/').pop()), ms: ms() + (x < 0 ? 1 : 0) });
    parentPort.on('message', () => {});`;
  const w = new Worker(code, { eval: true });
  try {
    const said = await new Promise<{ id: number; ms: number }>((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    assert.notEqual(said.id, currentThreadId(), 'two threads, two ids');
    const read = threadCpuMs(said.id);
    assert.ok(read !== undefined && read >= said.ms, `read ${read} ms from outside, the thread said ${said.ms} ms`);
  } finally {
    await w.terminate();
  }
  assert.equal(threadCpuMs(999_999_999), undefined, 'no such thread');
  assert.ok(threadCpuMs() !== undefined, 'a missing thread does not turn the counter off');
});
