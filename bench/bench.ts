// npm run bench [-- options]
//
// Load tests against the real server (`server/main.ts` as a child process on
// 127.0.0.1), on stories260k and on a random BERT-base-sized checkpoint:
//
//   tax        100 tenants' distinct prompts mixed, against the same load with
//              one shared tensor per prompt shape (goal: >= 0.97 of it); the
//              distinct load runs before and after the shared one (A-B-A)
//   batching   the server as built (cross-tenant batches) against per-tenant
//              batching and batch size 1: the server's gain (base rows/s over
//              the policy's) and the raw engine's gain between the same
//              batch-size distributions (the batches each run formed,
//              replayed in process after the runs; the two policies' replays
//              are capped at 10 s of engine time each, 1.5 s with --quick,
//              taking the run's first batches). Goal: the server's gain
//              >= 0.9 of the engine's, for each policy (bench/gains.ts)
//   overhead   end-to-end rows/s against the raw engine running the very
//              batches the server formed (all of them), in process
//              (goal: >= 0.85)
//   ensembles  rows/s of 5-prompt ensemble calls against single-prompt calls
//              (goal: >= 0.95)
//   latency    open-loop Poisson load at fractions of the maximum throughput:
//              p99 against the time of one batch
//   scale      10 .. 10,000 registered prompts with a residency cache smaller
//              than the working set: throughput, p99, cache misses
//   mixed      the realistic mix: Zipf tenants, soft prompts and prefixes,
//              10% ensemble calls
//   isolation  a polite tenant (5 req/s) alone, then while one tenant and then
//              five flood with 200 concurrent 64-input requests each
//              (stories260k only; loadtest/isolation.ts)
//
// Options:
//   --scenario a,b   run only these (default: all); --model stories|bert|all
//   --quick          short runs and small counts (a tooling check, not a result)
//   --write          write docs/BENCHMARKS.md (between the bench:load markers)
//                    and docs/bench/*.svg; the default for a full run of
//                    everything. Otherwise results go to tmp/bench/.
//   --popularity uniform|zipf   tenant popularity (default zipf, s = 1)
//   --scale-max N    largest prompt count of the scale scenario
//   --server-env K=V more SOFTSERVE_* settings for every server started (repeatable),
//                    e.g. SOFTSERVE_INTRA_OP_THREADS=1 or SOFTSERVE_BATCH_MAX_ROWS=16
//   --profile-server write a V8 CPU profile of each server's HTTP thread to tmp/bench/prof/
//   --server-logs    keep each server's log lines in tmp/bench/logs/<run>.jsonl

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpClient, type HttpResult } from '../loadtest/client.ts';
import { runLoad, type LoadMode, type RunResult } from '../loadtest/generator.ts';
import { scrape, serverSide } from '../loadtest/metrics-scrape.ts';
import { BERT_BASE, writeRandomBert } from './random-model.ts';
import { replayBatches, type ReplayBatch, type ReplayResult } from './replay.ts';
import { GAIN_RATIO_GOAL, batchingGain } from './gains.ts';
import {
  f, n0, distributionTable, replaceSection, runsTable, summarise, svgPlot, table, type Measurement, type Series,
} from '../loadtest/report.ts';
import {
  STYLE_CAUSAL, addTenants, emptyWorkload, growPrompts, loadTexts, makeTraffic, readModelDims, setupWorkload,
  type Popularity, type PromptShape, type TaskStyle, type Traffic, type TrafficSpec, type Workload, type WorkloadSpec,
} from '../loadtest/scenarios.ts';
import { startServerProcess, type ServerProcess } from '../loadtest/server-process.ts';
import { benchIsolation, renderIsolation, type IsolationResult } from '../loadtest/isolation.ts';

export const SCENARIOS = ['tax', 'batching', 'overhead', 'ensembles', 'latency', 'scale', 'mixed', 'isolation'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

interface Args {
  scenarios: Set<ScenarioName>;
  models: Array<'stories' | 'bert'>;
  quick: boolean;
  write: boolean;
  popularity: Popularity;
  scaleMax: number | null;
  profileServer: boolean;
  serverLogs: boolean;
  serverEnv: Record<string, string>;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    if (i >= 0) return argv[i + 1];
    const eq = argv.find((a) => a.startsWith(`${name}=`));
    return eq?.slice(name.length + 1);
  };
  const known = new Set(['--scenario', '--model', '--quick', '--write', '--no-write', '--popularity', '--scale-max', '--profile-server', '--server-logs', '--server-env', '--help']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const name = a.split('=')[0]!;
    if (!known.has(name)) throw new Error(`unknown option ${a}; see the top of bench/bench.ts`);
  }
  if (argv.includes('--help')) {
    process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n') + '\n');
    process.exit(0);
  }
  const scenarioArg = get('--scenario');
  const scenarios = new Set<ScenarioName>();
  for (const s of (scenarioArg ?? SCENARIOS.join(',')).split(',')) {
    if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s}; one of ${SCENARIOS.join(', ')}`);
    scenarios.add(s as ScenarioName);
  }
  const model = get('--model') ?? 'all';
  if (!['stories', 'bert', 'all'].includes(model)) throw new Error('--model is stories, bert or all');
  const quick = argv.includes('--quick');
  const everything = scenarioArg === undefined && model === 'all' && !quick && get('--popularity') === undefined && get('--scale-max') === undefined &&
    !argv.some((a) => a.startsWith('--server-env'));
  const pop = get('--popularity') ?? 'zipf';
  if (pop !== 'uniform' && pop !== 'zipf') throw new Error('--popularity is uniform or zipf');
  const scaleMax = get('--scale-max');
  return {
    scenarios,
    models: model === 'all' ? ['stories', 'bert'] : [model as 'stories' | 'bert'],
    quick,
    write: argv.includes('--write') || (everything && !argv.includes('--no-write')),
    popularity: pop === 'uniform' ? { kind: 'uniform' } : { kind: 'zipf', s: 1 },
    scaleMax: scaleMax === undefined ? null : Number(scaleMax),
    profileServer: argv.includes('--profile-server'),
    serverLogs: argv.includes('--server-logs'),
    serverEnv: Object.fromEntries(argv.flatMap((a, i) => (a === '--server-env' ? [argv[i + 1] ?? ''] : a.startsWith('--server-env=') ? [a.slice(13)] : [])).map((kv) => {
      const [k, v] = kv.split(/=(.*)/s, 2);
      if (!k || !k.startsWith('SOFTSERVE_') || v === undefined) throw new Error(`--server-env ${kv}: expected SOFTSERVE_NAME=VALUE`);
      return [k, v];
    })),
  };
}

// --- model profiles ------------------------------------------------------------

interface Profile {
  id: 'stories' | 'bert';
  title: string;
  style: TaskStyle;
  /** Texts are cut to this many words (BERT-base on 2 cores is slow). */
  textWords?: number;
  /** Texts mapped onto a random checkpoint's word-level vocabulary. */
  vocabWords?: boolean;
  mix: PromptShape[];
  tenants: number;
  ensembleTenants: number;
  /** Closed-loop clients for the maximum-throughput runs (single-row requests). */
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  /**
   * The warm-up of the first run on a fresh server (base, each batching
   * policy's, the first scale level), longer than `warmupMs`: with a 2 s
   * warm-up, stories260k's base run still spent 13% more time per row in its
   * forward passes than the same load later on the same server (4.08 against
   * 3.59 ms/row, 2026-12-01), and ran 231.6 against 268.1 rows/s. With a
   * 10 s warm-up V8 was still compiling 10-15 functions a second through the
   * measured run (`--trace-opt`), on its helper threads, which the CPU
   * outside session.run counts; after 30 s, 2-5 a second (2026-12-02).
   */
  firstWarmupMs: number;
  latencyFractions: number[];
  scale: { levels: number[]; shape: PromptShape; cachePrompts: number; durationMs: number };
}

function profiles(quick: boolean): Record<'stories' | 'bert', Profile> {
  return {
    stories: {
      id: 'stories',
      title: 'stories260k',
      style: STYLE_CAUSAL,
      mix: [{ kind: 'soft', length: 10 }, { kind: 'prefix', length: 10 }, { kind: 'soft', length: 20 }, { kind: 'prefix', length: 20 }],
      tenants: 100,
      ensembleTenants: quick ? 20 : 100,
      concurrency: 128,
      durationMs: quick ? 3000 : 10_000,
      warmupMs: quick ? 700 : 2000,
      firstWarmupMs: quick ? 700 : 30_000,
      latencyFractions: quick ? [0.5, 0.8] : [0.2, 0.5, 0.8, 0.95],
      scale: { levels: quick ? [10, 100, 1000] : [10, 100, 1000, 10_000], shape: { kind: 'soft', length: 16 }, cachePrompts: 256, durationMs: quick ? 2500 : 8000 },
    },
    bert: {
      id: 'bert',
      title: 'BERT-base (random weights)',
      // The random checkpoint's word-level vocabulary is w5..w30521: the template's words, the
      // label words and the texts must be in it (SST-2 words are mapped onto it, lengths kept).
      style: { template: '{text} w100 w200 {mask}', labels: ['negative', 'positive'], labelWords: ['w1000', 'w2000'] },
      textWords: 12,
      vocabWords: true,
      mix: [{ kind: 'soft', length: 4 }, { kind: 'prefix', length: 4 }, { kind: 'soft', length: 8 }, { kind: 'prefix', length: 8 }],
      tenants: 100,
      ensembleTenants: 20,
      concurrency: 32,
      durationMs: quick ? 8000 : 25_000,
      warmupMs: quick ? 3000 : 5000,
      firstWarmupMs: quick ? 3000 : 20_000,
      latencyFractions: quick ? [0.5, 0.8] : [0.2, 0.5, 0.8, 0.95],
      scale: { levels: quick ? [10, 100] : [10, 100, 1000, 10_000], shape: { kind: 'soft', length: 4 }, cachePrompts: 256, durationMs: quick ? 6000 : 20_000 },
    },
  };
}

// --- running -------------------------------------------------------------------

const live = new Set<ServerProcess>();
const log = (s: string) => process.stderr.write(`${s}\n`);

function setupProgress(what: string): (done: number, total: number) => void {
  let last = 0;
  return (done, total) => {
    const now = performance.now();
    if (done === total || now - last > 1000) {
      last = now;
      if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${what}: ${done}/${total}${done === total ? '\n' : ''}`);
      else if (done === total) log(`${what}: ${done}/${total}`);
    }
  };
}

async function startServer(args: Args, modelDir: string, env: Record<string, string>, tag: string): Promise<ServerProcess> {
  const nodeArgs: string[] = [];
  if (args.profileServer) {
    const dir = join(BENCH_TMP, 'prof', tag);
    mkdirSync(dir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  log(`starting server (${tag}) ...`);
  const started = performance.now();
  let logFile: string | undefined;
  if (args.serverLogs) {
    mkdirSync(join(BENCH_TMP, 'logs'), { recursive: true });
    logFile = join(BENCH_TMP, 'logs', `${tag}.jsonl`);
  }
  const srv = await startServerProcess({ env: { SOFTSERVE_MODEL_DIR: modelDir, ...args.serverEnv, ...env }, nodeArgs, ...(logFile ? { logFile } : {}) });
  live.add(srv);
  log(`server (${tag}) ready in ${f((performance.now() - started) / 1000)} s`);
  return srv;
}

async function stopServer(srv: ServerProcess): Promise<void> {
  await srv.stop();
  live.delete(srv);
}

interface Recorded { batches: ReplayBatch[]; tokens: Map<number, number> }

type BatchingPolicy = 'per-tenant' | 'single';
const BATCHING_POLICIES: readonly BatchingPolicy[] = ['per-tenant', 'single'];

/** Engine-time cap on replaying a batching policy's run (a batch-size-1 run forms thousands of batches). */
const policyReplayMs = (quick: boolean) => (quick ? 1500 : 10_000);

/** A measured run: a short unrecorded warm-up (with one /metrics scrape halfway), then the run between two /metrics scrapes. */
async function measure(client: HttpClient, opts: {
  id: string; model: string; label: string; policy: string; mode: LoadMode; durationMs: number; warmupMs: number;
  traffic: Traffic; record?: Recorded;
}): Promise<Measurement> {
  if (opts.warmupMs > 0) {
    const warmMode: LoadMode = opts.mode.kind === 'closed' ? opts.mode : { kind: 'closed', concurrency: 16 };
    const warm = runLoad(client, { label: `${opts.id} warm-up`, mode: warmMode, durationMs: opts.warmupMs, maxRequests: 1_000_000, next: opts.traffic.next, progress: false });
    // A scrape halfway through the warm-up, as a server in service is scraped: the first scrape
    // after classify-only traffic (a GET with no body, a large answer, prom-client's rendering)
    // deoptimises about twenty functions of Node's HTTP code and prom-client, which V8
    // recompiles over the next seconds; later scrapes, five to ten (`--trace-deopt`).
    const midScrape = new Promise((resolve) => setTimeout(resolve, opts.warmupMs / 2)).then(() => scrape(client));
    // Both settle before anything fails: the server is not stopped under a load still running.
    const settled = await Promise.allSettled([warm, midScrape]);
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
  }
  const before = await scrape(client);
  const byBatch = new Map<number, number[]>();
  const onResult = opts.record
    ? (spec: { tag?: number }, r: HttpResult) => {
      const body = r.json as { batch_ids?: number[]; usage?: { tokens?: number } } | null;
      if (r.status !== 200 || !body?.batch_ids || spec.tag === undefined) return;
      const id = body.batch_ids[0]!;
      byBatch.set(id, [...(byBatch.get(id) ?? []), spec.tag]);
      if (body.usage?.tokens !== undefined) opts.record!.tokens.set(spec.tag, body.usage.tokens);
    }
    : undefined;
  const run = await runLoad(client, {
    label: `${opts.model} ${opts.id}`, mode: opts.mode, durationMs: opts.durationMs, maxRequests: 10_000_000, next: opts.traffic.next,
    ...(onResult ? { onResult } : {}), seed: 7,
  });
  const after = await scrape(client);
  if (run.successes === 0) throw new Error(`${opts.model} ${opts.id}: no request succeeded; first error ${run.firstError}`);
  if (opts.record) for (const [id, tags] of [...byBatch.entries()].sort((a, b) => a[0] - b[0])) opts.record.batches.push({ id, tags });
  const m: Measurement = { id: opts.id, model: opts.model, label: opts.label, policy: opts.policy, run, server: summarise(serverSide(before, after)) };
  // Server CPU per row (all its threads) and, of it, the forward passes' time: what is left is the work around session.run.
  const cpuMs = m.server.serverCpuSeconds * 1000;
  const cpu = cpuOutsideRun(m);
  const threads = cpu ? ` (main thread ${f(cpu.main, 3)}, inference thread outside forward passes ${f(cpu.inference, 3)}, other threads ${f(cpu.other, 3)})` : '';
  log(`${opts.model} ${opts.id}: ${f(run.rowsPerSec)} rows/s; server CPU ${f(cpuMs / run.rows, 3)} ms/row${threads}, forward passes ${f(m.server.forwardPassMs / run.rows, 3)} ms/row`);
  return m;
}

interface ModelResult {
  profile: Profile;
  measurements: Measurement[];
  /** The raw engine on the base run's batches (the overhead row and the base of the batching gains). */
  replay: ReplayResult | null;
  /** The raw engine on the batches each batching policy's run formed. */
  policyReplays: Partial<Record<BatchingPolicy, ReplayResult>>;
  scale: Array<{ prompts: number; tenants: number; cacheBytes: number; registeredBytes: number; setupMs: number; m: Measurement }>;
  setupMs: Record<string, number>;
}

async function benchModel(args: Args, p: Profile, modelDir: string): Promise<ModelResult> {
  const S = args.scenarios;
  const dims = readModelDims(modelDir);
  const texts = loadTexts({
    ...(p.textWords !== undefined ? { maxWords: p.textWords } : {}),
    ...(p.vocabWords ? { vocabWords: dims.vocab } : {}),
  });
  const result: ModelResult = { profile: p, measurements: [], replay: null, policyReplays: {}, scale: [], setupMs: {} };
  const model = p.title;
  const closed: LoadMode = { kind: 'closed', concurrency: p.concurrency };
  const distinctSpec = (withEnsembles: boolean): WorkloadSpec => ({
    name: 'd', tenants: p.tenants, promptsPerTenant: 1, ensembleTenants: withEnsembles ? p.ensembleTenants : 0, ensembleSize: 5,
    mix: p.mix, shared: false, style: p.style, seedBase: 1,
  });
  const trafficSpec = (extra: Partial<TrafficSpec> = {}): TrafficSpec => ({
    popularity: args.popularity, ensembleFraction: 0, inputsPerRequest: 1, texts, seed: 11, targets: 'own', ...extra,
  });
  const base = { model, durationMs: p.durationMs, warmupMs: p.warmupMs };
  const recorded: Recorded = { batches: [], tokens: new Map() };
  let baseRun: Measurement | null = null;
  let distinct: Workload | null = null;
  let baseTraffic: Traffic | null = null;

  const needMain = ['tax', 'batching', 'overhead', 'ensembles', 'latency', 'mixed'].some((s) => S.has(s as ScenarioName));
  if (needMain) {
    const srv = await startServer(args, modelDir, {}, `${p.id}-cross-tenant`);
    const client = new HttpClient(srv.url);
    try {
      distinct = await setupWorkload(client, srv.adminKey, dims, distinctSpec(S.has('ensembles') || S.has('mixed')), { progress: setupProgress(`${model}: ${p.tenants} tenants, distinct prompts`) });
      result.setupMs.distinct = distinct.setupMs;
      baseTraffic = makeTraffic(distinct, trafficSpec());
      baseRun = await measure(client, {
        ...base, warmupMs: p.firstWarmupMs, id: 'base', label: `${p.tenants} tenants, distinct prompts, 1 input per request`, policy: 'cross-tenant', mode: closed,
        traffic: baseTraffic, record: recorded,
      });
      result.measurements.push(baseRun);
      if (S.has('tax')) {
        const shared = await setupWorkload(client, srv.adminKey, dims, { ...distinctSpec(false), name: 's', shared: true, seedBase: 500 },
          { progress: setupProgress(`${model}: ${p.tenants} tenants, shared prompts`) });
        result.setupMs.shared = shared.setupMs;
        result.measurements.push(await measure(client, {
          ...base, id: 'tax.shared', label: `${p.tenants} tenants, one shared tensor per prompt shape (${p.mix.length} shapes)`, policy: 'cross-tenant', mode: closed,
          traffic: makeTraffic(shared, trafficSpec()),
        }));
        // Distinct prompts again, after the shared run: the tax compares the shared run with the mean of
        // the two distinct runs around it (A-B-A), so that whatever the first run of a server pays
        // (warm-up, caches) or a drift of the machine does not count as a cost of distinct prompts.
        result.measurements.push(await measure(client, {
          ...base, id: 'tax.distinct', label: `${p.tenants} tenants, distinct prompts again (after tax.shared)`, policy: 'cross-tenant', mode: closed,
          traffic: makeTraffic(distinct, trafficSpec()),
        }));
      }
      if (S.has('ensembles')) {
        const E = p.ensembleTenants;
        result.measurements.push(await measure(client, {
          ...base, id: 'ens.single', label: `${E} tenants, single-prompt calls`, policy: 'cross-tenant', mode: closed,
          traffic: makeTraffic(distinct, trafficSpec({ tenantLimit: E })),
        }));
        // The same rows in flight: each ensemble call is 5 rows.
        result.measurements.push(await measure(client, {
          ...base, id: 'ens.ensemble', label: `${E} tenants, 5-prompt ensemble calls`, policy: 'cross-tenant',
          mode: { kind: 'closed', concurrency: Math.max(1, Math.round(p.concurrency / 5)) },
          traffic: makeTraffic(distinct, trafficSpec({ tenantLimit: E, ensembleFraction: 1, seed: 12 })),
        }));
      }
      if (S.has('mixed')) {
        result.measurements.push(await measure(client, {
          ...base, id: 'mixed', label: `${p.tenants} tenants, Zipf, soft + prefix, 10% 5-prompt ensembles`, policy: 'cross-tenant', mode: closed,
          traffic: makeTraffic(distinct, trafficSpec({ popularity: { kind: 'zipf', s: 1 }, ensembleFraction: 0.1, seed: 13 })),
        }));
      }
      if (S.has('latency')) {
        const max = baseRun.run.requestsPerSec;
        for (const frac of p.latencyFractions) {
          result.measurements.push(await measure(client, {
            ...base, warmupMs: 0, id: `load.${Math.round(frac * 100)}`, label: `open loop at ${Math.round(frac * 100)}% of base throughput`,
            policy: 'cross-tenant', mode: { kind: 'open', rate: frac * max }, traffic: makeTraffic(distinct, trafficSpec({ seed: 20 + Math.round(frac * 100) })),
          }));
        }
      }
    } finally {
      client.close();
      await stopServer(srv);
    }
  }

  // What each batching policy's run sent and the batches it formed, replayed below (after every server has stopped).
  const policyRuns: Array<{ policy: BatchingPolicy; workload: Workload; traffic: Traffic; recorded: Recorded }> = [];
  if (S.has('batching')) {
    for (const policy of BATCHING_POLICIES) {
      const srv = await startServer(args, modelDir, { SOFTSERVE_BATCH_POLICY: policy }, `${p.id}-${policy}`);
      const client = new HttpClient(srv.url);
      try {
        // The same spec and seeds as the base workload: the same prompt tensors, so the replays differ only in how rows were batched.
        const w = await setupWorkload(client, srv.adminKey, dims, distinctSpec(false), { progress: setupProgress(`${model}: ${p.tenants} tenants (${policy})`) });
        const traffic = makeTraffic(w, trafficSpec());
        const rec: Recorded = { batches: [], tokens: new Map() };
        result.measurements.push(await measure(client, {
          ...base, warmupMs: p.firstWarmupMs, id: `batching.${policy}`, label: `as base, batches of ${policy === 'single' ? 'one row' : 'one tenant'}`, policy, mode: closed,
          traffic, record: rec,
        }));
        policyRuns.push({ policy, workload: w, traffic, recorded: rec });
      } finally {
        client.close();
        await stopServer(srv);
      }
    }
  }

  if ((S.has('overhead') || S.has('batching')) && baseRun && distinct && baseTraffic) {
    log(`${model}: replaying the base run's ${recorded.batches.length} batches on the raw engine in process ...`);
    // issued[tag] is what the measured run sent (it overwrote the warm-up's entries of the same index).
    result.replay = await replayBatches(modelDir, distinct, baseTraffic.issued, texts, recorded.batches, recorded.tokens);
    log(`${model}: raw engine ${f(result.replay.rowsPerSec)} rows/s over ${result.replay.batches} batches (${result.replay.tokenMismatches} token mismatches)`);
  }
  for (const run of policyRuns) {
    const cap = policyReplayMs(args.quick);
    log(`${model}: replaying the ${run.policy} run's batches on the raw engine in process (${run.recorded.batches.length} recorded, at most ${f(cap / 1000)} s of engine time) ...`);
    const r = await replayBatches(modelDir, run.workload, run.traffic.issued, texts, run.recorded.batches, run.recorded.tokens, { maxEngineMs: cap });
    result.policyReplays[run.policy] = r;
    log(`${model}: raw engine on ${run.policy} batches ${f(r.rowsPerSec)} rows/s over ${r.batches} of ${r.recordedBatches} batches (${r.tokenMismatches} token mismatches)`);
  }

  if (S.has('scale')) {
    const levels = p.scale.levels.filter((n) => args.scaleMax === null || n <= args.scaleMax);
    const promptBytes = (p.scale.shape.kind === 'prefix' ? dims.layers * 2 * dims.kvHeads * dims.headDim : dims.hidden) * p.scale.shape.length * 4;
    const cacheBytes = promptBytes * p.scale.cachePrompts;
    const srv = await startServer(args, modelDir, { SOFTSERVE_PROMPT_CACHE_BYTES: String(cacheBytes) }, `${p.id}-scale`);
    const client = new HttpClient(srv.url);
    try {
      const spec: WorkloadSpec = {
        name: 'scale', tenants: 1000, promptsPerTenant: 1, ensembleTenants: 0, ensembleSize: 5, mix: [p.scale.shape], shared: false, style: p.style, seedBase: 9000,
      };
      const w = emptyWorkload(dims, spec);
      for (const n of levels) {
        const before = w.setupMs;
        const tenantsNeeded = Math.min(n, 1000);
        if (w.tenants.length < tenantsNeeded) {
          await addTenants(client, srv.adminKey, w, w.tenants.length, tenantsNeeded, { progress: setupProgress(`${model}: scale, tenants to ${tenantsNeeded}`) });
        }
        const per = Math.ceil(n / tenantsNeeded);
        if (per > 1) await growPrompts(client, w, per, { progress: setupProgress(`${model}: scale, prompts to ${n}`) });
        const m = await measure(client, {
          ...base, warmupMs: n === levels[0] ? p.firstWarmupMs : p.warmupMs, durationMs: p.scale.durationMs, id: `scale.${n}`, label: `${n} prompts registered, uniform over all, cache ${p.scale.cachePrompts} prompts`,
          policy: 'cross-tenant', mode: closed,
          traffic: makeTraffic(w, { popularity: { kind: 'uniform' }, ensembleFraction: 0, inputsPerRequest: 1, texts, seed: 30, targets: 'all', promptLimit: n }),
        });
        result.scale.push({ prompts: n, tenants: tenantsNeeded, cacheBytes, registeredBytes: w.promptBytes, setupMs: w.setupMs - before, m });
        result.measurements.push(m);
      }
    } finally {
      client.close();
      await stopServer(srv);
    }
  }
  return result;
}

// --- report --------------------------------------------------------------------

const BENCH_TMP = fileURLToPath(new URL('../tmp/bench', import.meta.url));
const DOCS = fileURLToPath(new URL('../docs', import.meta.url));
const START = '<!-- bench:load:start -->';
const END = '<!-- bench:load:end -->';

const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : NaN);
const verdict = (x: number, goal: number) => (Number.isFinite(x) ? (x >= goal ? 'met' : '**missed**') : '–');
const atMost = (x: number, goal: number) => (Number.isFinite(x) ? (x <= goal ? 'met' : '**missed**') : '–');

/** Goal for the server's CPU outside session.run, per single-input request (issue 12). */
const OUTSIDE_RUN_CPU_GOAL_MS = 0.3;

/**
 * A run's server CPU per row outside session.run, by thread: the main thread
 * (HTTP, scheduling; softserve_thread_cpu_seconds_total), the inference
 * thread's work around forward passes (unpacking, assembly, replies:
 * softserve_inference_outside_run_seconds_total, wall time of code that never
 * blocks), and the other threads (the process less those two threads: V8's
 * garbage collector and compiler, libuv, and onnxruntime's pool threads,
 * which work inside session.run but cannot be told apart; so `outside` is an
 * upper bound). Null where the server cannot tell (not Linux).
 */
function cpuOutsideRun(m: Measurement): { main: number; inference: number; other: number; outside: number } | null {
  const s = m.server;
  if (s.inferenceThreadCpuSeconds <= 0 || m.run.rows <= 0) return null;
  const perRow = (seconds: number) => (1000 * seconds) / m.run.rows;
  const main = perRow(s.mainThreadCpuSeconds);
  const inference = perRow(s.inferenceOutsideRunSeconds);
  const other = perRow(s.serverCpuSeconds - s.mainThreadCpuSeconds - s.inferenceThreadCpuSeconds);
  return { main, inference, other, outside: main + inference + other };
}

function modelSection(r: ModelResult, plotPath: string | null): string {
  const byId = new Map(r.measurements.map((m) => [m.id, m]));
  const get = (id: string) => byId.get(id);
  const rows = (id: string) => get(id)?.run.rowsPerSec;
  const base = get('base');
  const out: string[] = [`### ${r.profile.title}`, ''];

  const goals: string[][] = [];
  if (get('tax.shared') && get('tax.distinct')) {
    const distinctMean = (rows('base')! + rows('tax.distinct')!) / 2;
    const x = ratio(distinctMean, rows('tax.shared'));
    goals.push(['1. multi-tenant tax: distinct / shared prompts (A-B-A)', `mean(${f(rows('base'))}, ${f(rows('tax.distinct'))}) / ${f(rows('tax.shared'))} rows/s = ${f(x, 2)}`, '≥ 0.97', verdict(x, 0.97)]);
  }
  for (const [n, policy, what] of [['2a', 'per-tenant', 'per-tenant batches'], ['2b', 'single', 'batch size 1']] as const) {
    if (!get(`batching.${policy}`)) continue;
    const engine = r.policyReplays[policy];
    const g = batchingGain({ serverBase: rows('base'), serverPolicy: rows(`batching.${policy}`), engineBase: r.replay?.rowsPerSec, enginePolicy: engine?.rowsPerSec });
    const engineText = engine && r.replay ? `; raw engine ${f(r.replay.rowsPerSec)} / ${f(engine.rowsPerSec)} rows/s = ${f(g.engine, 2)}×` : '';
    goals.push([`${n}. batching gain over ${what}`, `server ${f(rows('base'))} / ${f(rows(`batching.${policy}`))} rows/s = ${f(g.server, 2)}×${engineText}`, 'report', '–']);
    if (engine && r.replay) {
      goals.push([`${n}. … server's gain / raw engine's gain, same batch-size distributions`, `${f(g.server, 2)} / ${f(g.engine, 2)} = ${f(g.ratio, 2)}`, `≥ ${GAIN_RATIO_GOAL}`, verdict(g.ratio, GAIN_RATIO_GOAL)]);
    }
  }
  if (r.replay && base) {
    const x = ratio(rows('base'), r.replay.rowsPerSec);
    goals.push(['3. server overhead: end-to-end / raw engine, same batches', `${f(rows('base'))} / ${f(r.replay.rowsPerSec)} rows/s = ${f(x, 2)}`, '≥ 0.85', verdict(x, 0.85)]);
  }
  const cpu = base ? cpuOutsideRun(base) : null;
  if (cpu) {
    goals.push([
      '3b. server CPU outside session.run per single-input request (base run)',
      `${f(cpu.main, 3)} main thread + ${f(cpu.inference, 3)} inference thread outside forward passes + ${f(cpu.other, 3)} other threads (GC, compiler, onnxruntime's pool) = ${f(cpu.outside, 3)} ms`,
      `≤ ${OUTSIDE_RUN_CPU_GOAL_MS} ms`, atMost(cpu.outside, OUTSIDE_RUN_CPU_GOAL_MS),
    ]);
  }
  if (get('ens.ensemble') && get('ens.single')) {
    const x = ratio(rows('ens.ensemble'), rows('ens.single'));
    goals.push(['4. ensembles: rows/s of 5-prompt calls / single calls', `${f(rows('ens.ensemble'))} / ${f(rows('ens.single'))} rows/s = ${f(x, 2)}`, '≥ 0.95', verdict(x, 0.95)]);
  }
  for (const frac of [50, 80]) {
    const m = get(`load.${frac}`);
    if (m && base) {
      goals.push([`5. p99 at ${frac}% of max throughput`, `${f(m.run.latency.p99)} ms = ${f(m.run.latency.p99 / base.server.batchMsMean, 1)} × a full batch (${f(base.server.batchMsMean)} ms)`, 'report', '–']);
    }
  }
  if (r.scale.length > 0) {
    const first = r.scale[0]!;
    const last = r.scale[r.scale.length - 1]!;
    goals.push(['6. prompt scale', `${first.prompts} → ${last.prompts} prompts: ${f(first.m.run.rowsPerSec)} → ${f(last.m.run.rowsPerSec)} rows/s, p99 ${f(first.m.run.latency.p99)} → ${f(last.m.run.latency.p99)} ms`, 'report', '–']);
  }
  if (goals.length > 0) out.push(table(['measurement', 'result', 'goal', ''], goals, ['---', '---', '---', '---']), '');

  out.push('All runs (closed-loop rows are maximum-throughput runs; latency is from send, or from the scheduled arrival for open loop, to the last byte):', '');
  out.push(runsTable(r.measurements), '');

  const dist = ['base', 'tax.shared', 'batching.per-tenant', 'batching.single', 'ens.ensemble', 'mixed'].map(get).filter((m): m is Measurement => m !== undefined);
  if (dist.length > 0) {
    out.push('Batch sizes (forward passes by rows, from `softserve_batch_rows`):', '', distributionTable(dist, 'rows'), '');
    out.push('Padding (fraction of each batch\'s positions that are padding, `softserve_batch_padding_fraction`):', '', distributionTable(dist, 'padding'), '');
  }

  const loads = r.measurements.filter((m) => m.id.startsWith('load.'));
  if (loads.length > 0 && base) {
    out.push('Latency under load (open loop, Poisson arrivals; the base run is the closed-loop maximum):', '');
    out.push(table(['load', 'offered req/s', 'achieved rows/s', 'p50 ms', 'p99 ms', 'max ms', 'rows/batch', 'ms/batch', 'p99 / full batch'], [
      ...loads.map((m) => [m.id, f(m.run.mode.kind === 'open' ? m.run.mode.rate : NaN), f(m.run.rowsPerSec), f(m.run.latency.p50), f(m.run.latency.p99), f(m.run.latency.max), f(m.server.batchRowsMean), f(m.server.batchMsMean), f(m.run.latency.p99 / base.server.batchMsMean, 1)]),
      ['base (max)', '–', f(base.run.rowsPerSec), f(base.run.latency.p50), f(base.run.latency.p99), f(base.run.latency.max), f(base.server.batchRowsMean), f(base.server.batchMsMean), f(base.run.latency.p99 / base.server.batchMsMean, 1)],
    ]), '');
  }
  if (plotPath) out.push(`![latency against throughput, ${r.profile.title}](${plotPath})`, '');

  if (r.replay) {
    out.push(`Raw engine: the base run's ${r.replay.batches} batches (${r.replay.rows} rows) rebuilt in process from what was sent and run back to back: ` +
      `${f(r.replay.engineMs)} ms of assemble + run (${f(r.replay.runMs)} ms in session.run), ${f(r.replay.rowsPerSec)} rows/s; ` +
      `${r.replay.tokenMismatches} rows differ in length from the server's count.`, '');
  }
  const policyLines = BATCHING_POLICIES.flatMap((policy) => {
    const e = r.policyReplays[policy];
    if (!e) return [];
    const cut = e.batches < e.recordedBatches ? `the first ${e.batches} of its ${e.recordedBatches} batches (${e.rows} of ${e.recordedRows} rows; the replay stops after ${f((e.maxEngineMs ?? 0) / 1000)} s of engine time)` : `all ${e.batches} of its batches (${e.rows} rows)`;
    return [`- ${policy}: ${cut}, ${f(e.rows / Math.max(1, e.batches), 2)} rows/batch, ${f(e.engineMs)} ms of assemble + run (${f(e.runMs)} ms in session.run), ${f(e.rowsPerSec)} rows/s; ${e.tokenMismatches} rows differ in length from the server's count.`];
  });
  if (policyLines.length > 0 && r.replay) {
    out.push('Batching gains, server and raw engine side by side: each policy\'s run (a server of its own, the same tenants, prompt tensors and traffic seed as base) recorded the batches it formed; ' +
      'after all runs, they were rebuilt and replayed through the raw engine in process, as for the overhead row. The engine\'s gain is the base replay\'s rows/s over the policy replay\'s ' +
      `(base: ${f(r.replay.rowsPerSec)} rows/s, ${f(r.replay.rows / Math.max(1, r.replay.batches), 2)} rows/batch over all ${r.replay.batches} batches); the server's is the same ratio through HTTP. ` +
      'The policy replays take the run\'s batches in order up to an engine-time cap, a slice of a steady closed-loop run:', '', ...policyLines, '');
  }
  if (r.scale.length > 0) {
    out.push(`Prompt scale (uniform over all registered prompts; residency cache ${n0(r.scale[0]!.cacheBytes)} bytes = ${r.profile.scale.cachePrompts} prompts of ${r.profile.scale.shape.kind} ${r.profile.scale.shape.length}):`, '');
    out.push(table(['prompts', 'tenants', 'registered bytes', 'setup s', 'rows/s', 'p50 ms', 'p99 ms', 'cache hits', 'misses', 'hit rate', 'evictions'], r.scale.map((s) => {
      const h = s.m.server.cacheHits;
      const miss = s.m.server.cacheMisses;
      return [String(s.prompts), String(s.tenants), n0(s.registeredBytes), f(s.setupMs / 1000), f(s.m.run.rowsPerSec), f(s.m.run.latency.p50), f(s.m.run.latency.p99), n0(h), n0(miss), `${f((100 * h) / Math.max(1, h + miss), 0)}%`, n0(s.m.server.cacheEvictions)];
    })), '');
  }
  return out.join('\n');
}

function plot(r: ModelResult): string | null {
  const loads = r.measurements.filter((m) => m.id.startsWith('load.') || m.id === 'base');
  if (loads.length < 2) return null;
  const base = r.measurements.find((m) => m.id === 'base')!;
  const pt = (m: Measurement, q: 'p50' | 'p99') => ({ x: m.run.rowsPerSec, y: m.run.latency[q] });
  const series: Series[] = [
    { name: 'cross-tenant p50', color: '#1f77b4', points: loads.map((m) => pt(m, 'p50')) },
    { name: 'cross-tenant p99', color: '#d62728', points: loads.map((m) => pt(m, 'p99')) },
  ];
  for (const [id, color] of [['batching.per-tenant', '#2ca02c'], ['batching.single', '#9467bd']] as const) {
    const m = r.measurements.find((x) => x.id === id);
    if (m) series.push({ name: `${id.slice(9)} p99 (closed loop, max)`, color, markersOnly: true, points: [pt(m, 'p99')] });
  }
  return svgPlot({
    title: `${r.profile.title}: latency against throughput`, xLabel: 'rows/s', yLabel: 'latency (ms)', series,
    hlines: [{ y: base.server.batchMsMean, label: `one full batch: ${f(base.server.batchMsMean)} ms` }],
  });
}

function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

function render(args: Args, results: ModelResult[], plotDir: string, plotRel: string): string {
  const extra = [args.quick ? '--quick' : '', ...Object.entries(args.serverEnv).map(([k, v]) => `--server-env ${k}=${v}`)].filter(Boolean).join(' ');
  const cmd = `npm run bench${extra ? ` -- ${extra}` : ''}`;
  const parts = [
    `Command: \`${cmd}\` (${new Date().toISOString().slice(0, 10)}${args.quick ? '; quick: short runs, not a result' : ''}). Machine: ${machine()}; server, load generator and (for the overhead and batching-gain rows) the in-process engine share these cores.`,
    '',
    'Every run is against `server/main.ts` as a child process on 127.0.0.1 (HTTP/1.1 keep-alive, JSON), set up through the API only: 100 tenants, one task each (verbalizer, two labels), each tenant its own prompt, cycling over soft prompts and prefixes of two lengths; tenant popularity ' +
    `${args.popularity.kind === 'zipf' ? 'Zipf (s = 1)' : 'uniform'}; one SST-2 sentence per request. ` +
    '"base" is the server as built (cross-tenant batching) at its maximum throughput: a closed loop with enough clients to keep batches full (128 for stories260k, 32 for BERT-base, whose batches take seconds). ' +
    '"tax.shared" is the same load where every tenant of a prompt shape holds the same tensor (the server dedupes by content, so a batch carries at most one prompt per shape); "tax.distinct" is base\'s load again right after it, and the tax compares tax.shared with the mean of base and tax.distinct (A-B-A: whatever the first run on a server still pays for its warm-up does not count). ' +
    `Each closed-loop run follows an unrecorded warm-up of the same load, with one /metrics scrape halfway through, and the first run on each server a longer one (${results.map((r) => `${r.profile.title}: ${r.profile.warmupMs / 1000} s, first ${r.profile.firstWarmupMs / 1000} s`).join('; ')}). ` +
    'Rows are engine rows (inputs × prompts). Batch statistics are read from `/metrics` before and after each run.',
    '',
  ];
  for (const r of results) {
    const svg = plot(r);
    let rel: string | null = null;
    if (svg) {
      const name = `load-latency-${r.profile.id}.svg`;
      writeFileSync(join(plotDir, name), svg);
      rel = `${plotRel}/${name}`;
    }
    parts.push(modelSection(r, rel));
  }
  return parts.join('\n');
}

const ISO_START = '<!-- bench:isolation:start -->';
const ISO_END = '<!-- bench:isolation:end -->';

function writeIsolation(args: Args, r: IsolationResult): void {
  const extra = process.argv.slice(2).join(' ');
  const header = `Command: \`npm run bench${extra ? ` -- ${extra}` : ''}\` (${new Date().toISOString().slice(0, 10)}${args.quick ? '; quick: short runs, not a result' : ''}). ` +
    `Machine: ${machine()}; server and load generator share these cores. Server: \`server/main.ts\` on stories260k, default settings` +
    `${Object.keys(r.serverEnv).length ? ` plus ${Object.entries(r.serverEnv).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}. Phases of ${r.durationMs / 1000} s; ` +
    `the polite tenant sends ${r.politeRate} single-input requests/s (open loop, Poisson) from a client process of its own; a flooder keeps ${r.floodConcurrency} 64-input requests in flight and resends at once whatever the answer. ` +
    'Latency is per successful request; rows/s counts successful rows only ("useful"), answered within the phase\'s ' +
    `${r.durationMs / 1000} s (a flood's requests still queued or refused when it stops are answered after that, and do not count).`;
  const body = renderIsolation(r, header);
  mkdirSync(BENCH_TMP, { recursive: true });
  writeFileSync(join(BENCH_TMP, 'isolation-results.json'), JSON.stringify(r, null, 1));
  if (args.write) {
    const path = join(DOCS, 'BENCHMARKS.md');
    let doc = '# Benchmarks\n';
    try { doc = readFileSync(path, 'utf8'); } catch { /* a new file */ }
    writeFileSync(path, replaceSection(doc, ISO_START, ISO_END, body, '## Isolation: a polite tenant under floods'));
    log(`wrote ${path}`);
  } else {
    writeFileSync(join(BENCH_TMP, 'BENCHMARKS-isolation.md'), `${body}\n`);
    log(`results in ${BENCH_TMP} (docs/BENCHMARKS.md untouched; --write to update it)`);
  }
  process.stdout.write(`${body}\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const P = profiles(args.quick);
  const results: ModelResult[] = [];
  let bertDir: string | null = null;
  const stopAll = async () => {
    for (const s of [...live]) await s.stop(5000).catch(() => undefined);
    if (bertDir) rmSync(bertDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => { void stopAll().then(() => process.exit(130)); });
  process.once('SIGTERM', () => { void stopAll().then(() => process.exit(143)); });
  const started = performance.now();
  let isolation: IsolationResult | null = null;
  const loadScenarios = [...args.scenarios].some((s) => s !== 'isolation');
  try {
    if (args.scenarios.has('isolation')) {
      const dir = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));
      const srv = await startServer(args, dir, {}, 'isolation');
      try {
        isolation = await benchIsolation({ modelDir: dir, quick: args.quick, url: srv.url, adminKey: srv.adminKey, pid: srv.pid, serverEnv: args.serverEnv, log });
      } finally {
        await stopServer(srv);
      }
    }
    for (const id of loadScenarios ? args.models : []) {
      let dir = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));
      if (id === 'bert') {
        bertDir = mkdtempSync(join(tmpdir(), 'softserve-bench-bert-'));
        log('writing a random BERT-base checkpoint ...');
        writeRandomBert(bertDir, BERT_BASE);
        dir = bertDir;
      }
      results.push(await benchModel(args, P[id], dir));
    }
  } finally {
    await stopAll();
  }
  log(`bench finished in ${f((performance.now() - started) / 60000)} min`);
  if (isolation) writeIsolation(args, isolation);
  if (!loadScenarios) return;

  const plotDir = args.write ? join(DOCS, 'bench') : BENCH_TMP;
  mkdirSync(plotDir, { recursive: true });
  const body = render(args, results, plotDir, args.write ? 'bench' : '.');
  writeFileSync(join(plotDir, 'load-results.json'), JSON.stringify(results.map((r) => ({ ...r, profile: r.profile.id })), null, 1));
  if (args.write) {
    const path = join(DOCS, 'BENCHMARKS.md');
    let doc = '# Benchmarks\n';
    try { doc = readFileSync(path, 'utf8'); } catch { /* a new file */ }
    writeFileSync(path, replaceSection(doc, START, END, body, '## Load test: multi-tenant serving over HTTP'));
    log(`wrote ${path} and ${plotDir}`);
  } else {
    writeFileSync(join(plotDir, 'BENCHMARKS-load.md'), `${body}\n`);
    log(`results in ${plotDir} (docs/BENCHMARKS.md untouched; --write to update it)`);
  }
  process.stdout.write(`${body}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  });
}
