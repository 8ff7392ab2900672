// npm run loadtest -- [options]: one load run, with a progress line, then a
// summary (throughput, latency percentiles, errors by status, and the batch
// size and padding distributions read from /metrics).
//
// Server: by default a fresh one is started (server/main.ts, child process,
// 127.0.0.1, temporary data directory) and stopped at the end; or point at a
// running one with --url http://127.0.0.1:PORT --admin-key KEY (or
// SOFTSERVE_ADMIN_KEY), and --model-dir for its checkpoint (prompt shapes are
// read from its config.json).
//
// Options (defaults in brackets):
//   --model-dir DIR        checkpoint [../shared/models/stories260k]
//   --policy P             cross-tenant | per-tenant | single (fresh server only) [cross-tenant]
//   --env K=V              more SOFTSERVE_* settings for a fresh server (repeatable)
//   --tenants N            [100]            --shared   one tensor per prompt shape
//   --mix soft:10,prefix:20   prompt kinds and lengths, cycled over tenants [soft:10,prefix:10,soft:20,prefix:20]
//   --popularity zipf|uniform [zipf]     --ensemble-fraction F [0] (5-prompt ensembles)
//   --inputs N             inputs per request [1]     --text-words N   cut texts to N words
//   --concurrency N        closed loop with N clients [64]
//   --rate R               open loop, Poisson arrivals at R requests/s (instead of --concurrency)
//   --duration S           seconds of sending [10]    --requests N   at most N requests [1000000]
//   --warmup S             unmeasured seconds first [2]
//   --json                 print the result as JSON

import { fileURLToPath } from 'node:url';
import { HttpClient } from './client.ts';
import { runLoad, type LoadMode } from './generator.ts';
import { buckets, quantile, scrape, serverSide } from './metrics-scrape.ts';
import { errorsText, f, loadText, summarise, table } from './report.ts';
import { STYLE_CAUSAL, loadTexts, makeTraffic, readModelDims, setupWorkload, type PromptKind, type PromptShape } from './scenarios.ts';
import { startServerProcess, type ServerProcess } from './server-process.ts';

function parse(argv: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, inline] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const flag = ['shared', 'json', 'help'].includes(k);
    const v = flag ? 'true' : inline ?? argv[++i];
    if (v === undefined) throw new Error(`--${k} needs a value`);
    out.set(k, [...(out.get(k) ?? []), v]);
  }
  return out;
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  if (o.has('help')) {
    const src = (await import('node:fs')).readFileSync(fileURLToPath(import.meta.url), 'utf8');
    process.stdout.write(src.split('\n').filter((l) => l.startsWith('//')).map((l) => l.slice(3)).join('\n') + '\n');
    return;
  }
  const one = (k: string, d?: string) => o.get(k)?.at(-1) ?? d;
  const num = (k: string, d: number) => {
    const v = Number(one(k, String(d)));
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${k} must be a non-negative number`);
    return v;
  };
  const known = ['model-dir', 'policy', 'env', 'tenants', 'shared', 'mix', 'popularity', 'ensemble-fraction', 'inputs', 'text-words', 'concurrency', 'rate', 'duration', 'requests', 'warmup', 'json', 'url', 'admin-key', 'help'];
  for (const k of o.keys()) if (!known.includes(k)) throw new Error(`unknown option --${k} (see --help)`);

  const modelDir = one('model-dir', fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url)))!;
  const dims = readModelDims(modelDir);
  const mix: PromptShape[] = one('mix', 'soft:10,prefix:10,soft:20,prefix:20')!.split(',').map((s) => {
    const [kind, len] = s.split(':');
    if (!['soft', 'ptuning', 'prefix'].includes(kind!) || !(Number(len) >= 1)) throw new Error(`--mix entry ${s}: kind:length, kind soft|ptuning|prefix`);
    return { kind: kind as PromptKind, length: Number(len) };
  });
  const style = dims.family === 'bert' || dims.family === 'roberta'
    ? { template: '{text} It was {mask}', labels: ['negative', 'positive'], labelWords: ['bad', 'good'] }
    : STYLE_CAUSAL;

  let srv: ServerProcess | null = null;
  let url = one('url');
  let adminKey = one('admin-key', process.env.SOFTSERVE_ADMIN_KEY);
  if (url === undefined) {
    const env: Record<string, string> = { SOFTSERVE_MODEL_DIR: modelDir, SOFTSERVE_BATCH_POLICY: one('policy', 'cross-tenant')! };
    for (const kv of o.get('env') ?? []) {
      const [k, v] = kv.split(/=(.*)/s, 2);
      if (!k || v === undefined) throw new Error(`--env ${kv}: expected KEY=VALUE`);
      env[k] = v;
    }
    process.stderr.write('starting a server ...\n');
    srv = await startServerProcess({ env });
    url = srv.url;
    adminKey = srv.adminKey;
  } else if (!adminKey) {
    throw new Error('--url needs --admin-key (or SOFTSERVE_ADMIN_KEY) to create the tenants');
  }
  const stop = async () => { if (srv) await srv.stop(5000); };
  process.once('SIGINT', () => { void stop().then(() => process.exit(130)); });

  const client = new HttpClient(url);
  try {
    const tenants = num('tenants', 100);
    const fraction = num('ensemble-fraction', 0);
    const workload = await setupWorkload(client, adminKey!, dims, {
      name: `lt${Date.now().toString(36)}`, tenants, promptsPerTenant: 1, ensembleTenants: fraction > 0 ? tenants : 0, ensembleSize: 5,
      mix, shared: o.has('shared'), style, seedBase: 1,
    });
    process.stderr.write(`set up ${tenants} tenants in ${f(workload.setupMs / 1000)} s\n`);
    const words = o.has('text-words') ? num('text-words', 0) : undefined;
    const traffic = makeTraffic(workload, {
      popularity: one('popularity', 'zipf') === 'uniform' ? { kind: 'uniform' } : { kind: 'zipf', s: 1 },
      ensembleFraction: fraction, inputsPerRequest: Math.max(1, num('inputs', 1)),
      texts: loadTexts(words !== undefined ? { maxWords: words } : {}), seed: 11, targets: 'own',
    });
    const mode: LoadMode = o.has('rate') ? { kind: 'open', rate: num('rate', 100) } : { kind: 'closed', concurrency: Math.max(1, num('concurrency', 64)) };
    const warmup = num('warmup', 2) * 1000;
    if (warmup > 0) {
      await runLoad(client, { label: 'warm-up', mode: mode.kind === 'closed' ? mode : { kind: 'closed', concurrency: 16 }, durationMs: warmup, maxRequests: 1e9, next: traffic.next });
    }
    const before = await scrape(client);
    const run = await runLoad(client, { label: 'load', mode, durationMs: num('duration', 10) * 1000, maxRequests: num('requests', 1_000_000), next: traffic.next });
    const s = serverSide(before, await scrape(client));
    const server = summarise(s);
    if (o.has('json')) {
      process.stdout.write(`${JSON.stringify({ run, server }, null, 1)}\n`);
      return;
    }
    const r = run;
    const lines = [
      `load: ${loadText(r)}, ${tenants} tenants, ${r.requests} requests in ${f(r.elapsedMs / 1000)} s`,
      `throughput: ${f(r.requestsPerSec)} req/s, ${f(r.rowsPerSec)} rows/s, ${f(r.tokensPerSec, 0)} tokens/s`,
      `latency ms: p50 ${f(r.latency.p50)}  p95 ${f(r.latency.p95)}  p99 ${f(r.latency.p99)}  max ${f(r.latency.max)}`,
      `requests: ${r.successes} ok, errors by status: ${errorsText(r)}`,
      `batches: ${server.batches}, rows/batch mean ${f(server.batchRowsMean)} (p50 ${f(quantile(s.batchRows, 0.5))}, p90 ${f(quantile(s.batchRows, 0.9))}), ` +
        `padding mean ${f(server.paddingMean, 2)}, prompts/batch ${f(server.uniquePromptsMean)}, ${f(server.batchMsMean)} ms/batch`,
      `prompt cache: ${server.cacheHits} hits, ${server.cacheMisses} misses; server CPU ${f(server.serverCpuSeconds)} s, load generator CPU ${f(r.clientCpuMs / 1000)} s`,
      '',
      table(['rows per batch (≤)', 'batches'], buckets(s.batchRows).filter((b) => b.count > 0).map((b) => [String(b.le), String(b.count)])),
      '',
      table(['padding fraction (≤)', 'batches'], buckets(s.batchPadding).filter((b) => b.count > 0).map((b) => [String(b.le), String(b.count)])),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    client.close();
    await stop();
  }
}

main().catch((err) => {
  process.stderr.write(`loadtest failed: ${(err as Error).message}\n`);
  process.exit(1);
});
