// The server's logger (server/log.ts) writes through an asynchronous
// destination in buffer mode: every line comes out whole and in order,
// multi-byte characters included; and lines still queued when the process
// exits are written by pino's exit hook (synchronously).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const LOG_MODULE = fileURLToPath(new URL('../server/log.ts', import.meta.url));
const LINES = 200;
const text = (i: number) => 'naïve ☃ 😀 '.repeat(1 + (i % 7));

/**
 * A child that logs `bursts` bursts of LINES lines (each burst's first line starts a write; the
 * rest queue behind it), yielding between bursts; then either lets the process end by itself
 * or calls process.exit in the same tick as its last line.
 */
const child = (bursts: number, exitAtOnce: boolean) => `
import { serverLogger } from ${JSON.stringify(LOG_MODULE)};
const logger = serverLogger('info');
for (let b = 0; b < ${bursts}; b++) {
  if (b > 0) await new Promise((r) => setImmediate(r));
  for (let i = 0; i < ${LINES}; i++) logger.info({ b, i, text: 'naïve ☃ 😀 '.repeat(1 + (i % 7)) }, 'line');
}
${exitAtOnce ? 'process.exit(0);' : ''}
`;

async function linesOf(script: string): Promise<Array<{ b: number; i: number; text: string; msg: string; service: string }>> {
  const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  proc.stdout.on('data', (c: Buffer) => out.push(c));
  proc.stderr.on('data', (c: Buffer) => { err += String(c); });
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  assert.equal(code, 0, err);
  return Buffer.concat(out).toString('utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

test('every line is written whole and in order, multi-byte text included', async () => {
  const lines = await linesOf(child(3, false));
  assert.equal(lines.length, 3 * LINES);
  lines.forEach((line, n) => {
    assert.deepEqual([line.b, line.i], [Math.floor(n / LINES), n % LINES], `line ${n} in order`);
    assert.equal(line.text, text(line.i));
    assert.equal(line.msg, 'line');
    assert.equal(line.service, 'softserve');
  });
});

test('lines queued when the process exits are written by the exit hook', async () => {
  // The burst's first line may still be in an asynchronous write when the process exits (that
  // write is the operating system's to finish); every line queued behind it is written at exit.
  const lines = await linesOf(child(1, true));
  const seen = new Set(lines.map((l) => l.i));
  for (let i = 1; i < LINES; i++) assert.ok(seen.has(i), `line ${i} written at exit`);
  for (const line of lines) assert.equal(line.text, text(line.i));
});
