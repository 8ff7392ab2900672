// The device bundle, packed and run here on the CPU provider: pack.sh in its
// reduced mode (this machine's node and onnxruntime, no Debian packages: no
// network needed), then run.sh from the tarball with the CPU provider in place
// of the GPU one. It checks that the bundled application starts its workers,
// answers a classify through the bundled server, that the bundled device
// scripts agree with themselves (cpu vs cpu parity on a mixed batch) and that a
// bounded load through the bundled load generator gets answers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findWorkerRefs } from '../scripts/device/bundle.ts';
import type { Summary } from '../scripts/device/summary.ts';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('..', import.meta.url));

test('every worker the product starts gets its own file in the bundle', () => {
  const refs = findWorkerRefs();
  const names = refs.map((r) => r.outName).sort();
  assert.ok(names.includes('inference-worker-entry.mjs'), names.join(', '));
  assert.ok(names.includes('training-worker-entry.mjs'), names.join(', '));
  assert.equal(new Set(names).size, names.length);
});

test('the packed bundle answers a classify on the CPU provider', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'softserve-device-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const packDir = join(dir, 'pack');
  const out = join(dir, 'out');

  await run('bash', ['scripts/device/pack.sh', '--no-node', '--no-ort', '--no-apt', '--out', packDir], { cwd: REPO });
  assert.deepEqual(readdirSync(packDir).sort(), ['MANIFEST.txt', 'softserve-device.tar.xz']);
  assert.ok(statSync(join(packDir, 'softserve-device.tar.xz')).size > 100_000);

  const env = {
    ...process.env, OUT: out,
    SOFTSERVE_DEVICE_BUNDLE: join(packDir, 'softserve-device.tar.xz'),
    SOFTSERVE_DEVICE_EP: 'cpu', SOFTSERVE_DEVICE_QUICK: '1',
    SOFTSERVE_DEVICE_STEPS: 'info,probe,checkpoint,parity,serve', SOFTSERVE_DEVICE_LOAD_SECONDS: '1',
    // Two front workers: the bundled entry forks itself (node:cluster) as it will on the device.
    SOFTSERVE_DEVICE_K: '2',
  };
  let stdout: string;
  try {
    ({ stdout } = await run('bash', ['scripts/device/run.sh'], { cwd: REPO, env, maxBuffer: 16 * 2 ** 20 }));
  } catch (err) {
    let log = '';
    try { log = readFileSync(join(out, 'run.log'), 'utf8').slice(-4000); } catch { /* no log yet */ }
    throw new Error(`run.sh failed: ${(err as Error).message}\n${log}`);
  }
  assert.match(stdout, /### Parity against the CPU provider/);
  assert.deepEqual(readdirSync(out).sort(), ['device-info.txt', 'results.md', 'run.log', 'steps.jsonl', 'summary.json']);

  const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
  assert.deepEqual(s.verdict.failedSteps, [], readFileSync(join(out, 'run.log'), 'utf8').slice(-4000));
  assert.deepEqual(s.status.map((x) => x.name),
    ['unpack', 'info', 'probe-cpu', 'checkpoint', 'parity-stories260k', 'parity-bert-small-random', 'serve-cpu-k2']);

  assert.equal(s.probe.length, 1);
  assert.equal(s.probe[0]!.ok, true);
  assert.ok(s.probe[0]!.backends.some((b) => b.name === 'cpu'));

  assert.deepEqual(s.parity.map((p) => p.model), ['stories260k', 'bert-small-random']);
  for (const p of s.parity) {
    assert.equal(p.error, undefined);
    assert.equal(p.rows, 16);
    assert.ok(p.ok && p.maxAbsDeltaP! <= 1e-3, JSON.stringify(p));
  }

  assert.equal(s.serve.length, 1);
  const serve = s.serve[0]!;
  assert.equal(serve.ok, true, JSON.stringify(serve));
  const answer = serve.classify as { results: Array<{ label: string; scores: Record<string, number> }> };
  assert.equal(answer.results.length, 2);
  for (const r of answer.results) {
    assert.ok(['negative', 'positive'].includes(r.label));
    const sum = Object.values(r.scores).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-6, `probabilities sum to ${sum}`);
  }
  assert.deepEqual(serve.pages, { '/info': 200, '/console/': 200, '/console/vendor/uPlot.esm.js': 200 });
  const load = serve.load as { run: { successes: number } } | undefined;
  assert.ok(load && load.run.successes > 0, serve.loadError ?? JSON.stringify(serve.load));
});
