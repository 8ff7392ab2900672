// npm run fuzz [-- --runs N] [--seed S] [--only name]: every client-bytes
// parser, N cases each (default 10,000), in-process parsers directly and the
// HTTP ones against one real server each on 127.0.0.1. Prints a summary per
// parser (cases, accepted, refused, failures, non-4xx answers, crashes,
// seconds) and exits 1 on any failure, with fast-check's shrunk
// counterexample and the seed to replay it.

import fc from 'fast-check';

import { IN_PROCESS, OVER_HTTP, type FuzzTarget } from './properties.ts';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const runs = Number(arg('runs') ?? 10_000);
const seed = Number(arg('seed') ?? (Date.now() % 2 ** 31));
const only = arg('only');

const rows: Array<Record<string, unknown>> = [];
let failed = false;
const started = performance.now();
for (const make of [...IN_PROCESS, ...OVER_HTTP]) {
  const target: FuzzTarget = await make();
  if (only && !target.name.includes(only)) { await target.close?.(); continue; }
  const t0 = performance.now();
  const result = await fc.check(target.property(), { numRuns: runs, seed, endOnFailure: false });
  await target.close?.();
  const seconds = (performance.now() - t0) / 1000;
  rows.push({ parser: target.name, ...target.tally, seconds: Math.round(seconds * 10) / 10 });
  if (result.failed) {
    failed = true;
    console.error(`\n${target.name}: FAILED after ${result.numRuns} cases (seed ${result.seed}, path ${result.counterexamplePath})`);
    console.error(String('errorInstance' in result ? result.errorInstance : 'interrupted or too many skips').slice(0, 4000));
    console.error('counterexample:', JSON.stringify(result.counterexample, (_k, v) => (v instanceof Uint8Array ? `<${v.length} bytes: ${Buffer.from(v.subarray(0, 200)).toString('latin1')}>` : v)).slice(0, 2000));
  }
}
console.log(`\nfuzz: ${runs} cases per parser, seed ${seed}, ${Math.round((performance.now() - started) / 100) / 10} s in all`);
console.table(rows);
process.exit(failed ? 1 : 0);
