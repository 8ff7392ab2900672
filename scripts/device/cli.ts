// The device bundle's scripts, one ES module with subcommands (bundled by
// scripts/device/bundle.ts as device.mjs; run by scripts/device/run.sh):
//
//   checkpoint --dir D [--quick]          a random BERT-base-sized checkpoint (quick: a small one)
//   probe --model D --ep E                can E run here? (backends, session, one row)
//   parity --model D --name N --ep E      E against cpu on a mixed batch, max |Δp|
//   bench --model D --name N --ep E [--batches 1,2,..] [--tokens 64] [--budget-ms 1500] [--deadline-s 150] [--threads T]
//   serve --server main.mjs --loadtest loadtest.mjs --model D --ep E [--k 1] [--k-var NAME]
//         [--load-seconds 20] [--concurrency 64] [--tenants 100]
//   summary --steps steps.jsonl --json summary.json --md results.md
//
// Every step subcommand appends its result as one JSON line to --append FILE
// (run.sh's steps.jsonl) and prints it; a failure inside a step is recorded
// in that line (`error`), not thrown.

import { appendFileSync, writeFileSync } from 'node:fs';
import { parseExecutionProvider } from '../../kernels/session.ts';
import { BERT_BASE, writeRandomBert } from '../../bench/random-model.ts';
import { Args } from './args.ts';
import { bench } from './bench.ts';
import { parity } from './parity.ts';
import { probe } from './probe.ts';
import { serveCheck } from './serve.ts';
import { markdown, readSteps, summarise } from './summary.ts';

/** A checkpoint of BERT-base's shapes for the device, and a small one for rehearsals on two cores. */
const QUICK_BERT = { hidden: 128, layers: 2, heads: 2, intermediate: 512, vocab: 2000, maxPositions: 512, seed: 1 };

const [command, ...rest] = process.argv.slice(2);
const a = new Args(rest, ['quick']);

function record(step: string, result: object): void {
  const line = JSON.stringify({ step, ...result });
  if (a.has('append')) appendFileSync(a.str('append'), `${line}\n`);
  process.stdout.write(`${line}\n`);
}

switch (command) {
  case 'checkpoint': {
    const o = a.has('quick') ? QUICK_BERT : BERT_BASE;
    const t0 = performance.now();
    writeRandomBert(a.str('dir'), o);
    record('checkpoint', { dir: a.str('dir'), shape: o, ms: Math.round(performance.now() - t0) });
    break;
  }
  case 'probe':
    record('probe', await probe(a.str('model'), parseExecutionProvider(a.str('ep'))));
    break;
  case 'parity':
    record('parity', await parity(a.str('name'), a.str('model'), parseExecutionProvider(a.str('ep'))));
    break;
  case 'bench': {
    const options = {
      model: a.str('name'), dir: a.str('model'), ep: parseExecutionProvider(a.str('ep')),
      batches: a.list('batches', [1, 2, 4, 8, 16, 32, 64, 128, 256]), tokens: a.num('tokens', 64),
      budgetMs: a.num('budget-ms', 1500), deadlineMs: a.num('deadline-s', 150) * 1000,
      ...(a.has('append') ? { linesFile: a.str('append') } : {}),
      ...(a.has('threads') ? { threads: a.num('threads') } : {}),
    };
    // Points also go to the step log one by one (step "bench-point"), so a run cut by its timeout still leaves them.
    record('bench', await bench(options));
    break;
  }
  case 'serve':
    record('serve', await serveCheck({
      serverEntry: a.str('server'), loadtestEntry: a.str('loadtest'), modelDir: a.str('model'), ep: a.str('ep'),
      k: a.num('k', 1), kVar: a.str('k-var', 'SOFTSERVE_FRONT_WORKERS'), loadSeconds: a.num('load-seconds', 20),
      concurrency: a.num('concurrency', 64), tenants: a.num('tenants', 100), startTimeoutMs: a.num('start-timeout-s', 120) * 1000,
    }));
    break;
  case 'summary': {
    const s = summarise(readSteps(a.str('steps')));
    writeFileSync(a.str('json'), `${JSON.stringify(s, null, 1)}\n`);
    writeFileSync(a.str('md'), markdown(s));
    process.stdout.write(`${JSON.stringify(s.verdict)}\n`);
    break;
  }
  default:
    process.stderr.write('usage: device.mjs checkpoint|probe|parity|bench|serve|summary [--options] (see scripts/device/cli.ts)\n');
    process.exit(2);
}
