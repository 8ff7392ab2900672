// The server's logger (server/log.ts) writes through an asynchronous
// destination in buffer mode: every line comes out whole and in order,
// multi-byte characters included, also the lines still buffered when the
// process exits (pino's exit hook writes them synchronously).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const LOG_MODULE = fileURLToPath(new URL('../server/log.ts', import.meta.url));
const BURSTS = 3;
const LINES = 200;

/** A child that logs bursts of lines (most of each burst queues behind the write in flight), then exits at once. */
const CHILD = `
import { serverLogger } from ${JSON.stringify(LOG_MODULE)};
const logger = serverLogger('info');
for (let b = 0; b < ${BURSTS}; b++) {
  for (let i = 0; i < ${LINES}; i++) logger.info({ b, i, text: 'naïve ☃ 😀 '.repeat(1 + (i % 7)) }, 'line');
  await new Promise((r) => setImmediate(r));
}
process.exit(0);
`;

test('every line is written whole and in order, multi-byte text included, and none is lost at exit', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.on('data', (c: Buffer) => { err += String(c); });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 0, err);
  const lines = Buffer.concat(out).toString('utf8').split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, BURSTS * LINES);
  lines.forEach((l, n) => {
    const line = JSON.parse(l) as { b: number; i: number; text: string; msg: string; service: string };
    assert.deepEqual([line.b, line.i], [Math.floor(n / LINES), n % LINES], `line ${n} in order`);
    assert.equal(line.text, 'naïve ☃ 😀 '.repeat(1 + (line.i % 7)));
    assert.equal(line.msg, 'line');
    assert.equal(line.service, 'softserve');
  });
});
