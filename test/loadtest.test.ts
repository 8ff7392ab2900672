// The load generator against a real server (server/main.ts as a child process
// on 127.0.0.1) for a second or two with a tiny scenario: the counts add up,
// the percentiles are ordered, and the batch histograms read from /metrics
// account for every row served. Plus the pure parts: metrics parsing and
// diffing, the report writer, and the batching-gain ratio of bench/gains.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpClient, assertLoopback } from '../loadtest/client.ts';
import { runLoad, type RequestSpec } from '../loadtest/generator.ts';
import { diffHistogram, histogram, parseMetrics, quantile, scrape, serverSide } from '../loadtest/metrics-scrape.ts';
import { replaceSection, svgPlot } from '../loadtest/report.ts';
import { STYLE_CAUSAL, loadTexts, makeTraffic, readModelDims, setupWorkload } from '../loadtest/scenarios.ts';
import { startServerProcess } from '../loadtest/server-process.ts';
import { STORIES_DIR } from './serving-helpers.ts';
import { GAIN_RATIO_GOAL, batchingGain } from '../bench/gains.ts';

test('a closed-loop and an open-loop run against a real server: counts add up, percentiles ordered, /metrics accounts for every row', { timeout: 60_000 }, async () => {
  const srv = await startServerProcess({ env: { SOFTSERVE_MODEL_DIR: STORIES_DIR } });
  const client = new HttpClient(srv.url);
  try {
    const workload = await setupWorkload(client, srv.adminKey, readModelDims(STORIES_DIR), {
      name: 'lt', tenants: 3, promptsPerTenant: 1, ensembleTenants: 1, ensembleSize: 5,
      mix: [{ kind: 'soft', length: 4 }, { kind: 'prefix', length: 3 }], shared: false, style: STYLE_CAUSAL, seedBase: 1,
    });
    assert.equal(workload.tenants.length, 3);
    assert.equal(workload.tenants[0]!.prompts.length, 5);
    assert.equal(workload.tenants[0]!.ensemble, 'e5');
    const traffic = makeTraffic(workload, {
      popularity: { kind: 'zipf', s: 1 }, ensembleFraction: 0.3, inputsPerRequest: 2, texts: loadTexts({ maxWords: 8, limit: 50 }), seed: 5, targets: 'own',
    });
    // Every seventh request names a prompt that does not exist: a 404 to count.
    const next = (i: number): RequestSpec => {
      const spec = traffic.next(i);
      if (i % 7 === 6) return { ...spec, body: JSON.stringify({ inputs: ['x'], prompt: 'nope' }), rows: 1 };
      return spec;
    };

    const before = await scrape(client);
    const closed = await runLoad(client, { label: 'test closed', mode: { kind: 'closed', concurrency: 6 }, durationMs: 1500, maxRequests: 400, next, progress: false });
    const mid = await scrape(client);
    const open = await runLoad(client, { label: 'test open', mode: { kind: 'open', rate: 60 }, durationMs: 1000, maxRequests: 100, next, progress: false, seed: 3 });
    const after = await scrape(client);

    for (const [run, a, b] of [[closed, before, mid], [open, mid, after]] as const) {
      assert.ok(run.requests > 5, `${run.label}: only ${run.requests} requests`);
      const errors = Object.values(run.errors).reduce((x, y) => x + y, 0);
      assert.equal(run.requests, run.successes + errors, `${run.label}: requests = successes + errors`);
      assert.ok((run.errors['404'] ?? 0) > 0, `${run.label}: the unknown prompt should have given 404s: ${JSON.stringify(run.errors)}`);
      assert.deepEqual(Object.keys(run.errors), ['404'], `${run.label}: unexpected errors ${JSON.stringify(run.errors)}`);
      const l = run.latency;
      assert.equal(l.count, run.successes);
      assert.ok(l.p50 > 0 && l.p50 <= l.p95 && l.p95 <= l.p99 && l.p99 <= l.max, `${run.label}: percentiles out of order ${JSON.stringify(l)}`);
      assert.ok(run.rowsPerSec > 0 && run.requestsPerSec > 0);

      const s = serverSide(a, b);
      // The server saw exactly these requests, with the same statuses.
      assert.equal(s.classifyByStatus['200'], run.successes);
      assert.equal(s.classifyByStatus['404'], run.errors['404']);
      // Every row answered was in one batch of this run, and the batch histograms agree with each other.
      assert.ok(s.batches > 0);
      assert.equal(s.batchRows.sum, run.rows, `${run.label}: rows in batches = rows answered`);
      assert.equal(s.batchTokens.count, s.batches);
      assert.equal(s.batchPadding.count, s.batches);
      assert.equal(s.batchRows.cumulative[s.batchRows.cumulative.length - 1], s.batches);
      assert.ok(s.batchRows.cumulative.every((c, i, all) => i === 0 || c >= all[i - 1]!), 'cumulative buckets are monotone');
    }
    // Open loop at 60 req/s for 1 s: about 60 arrivals, bounded by maxRequests.
    assert.ok(open.requests <= 100 && open.requests >= 20, `open loop sent ${open.requests}`);
  } finally {
    client.close();
    assert.equal(await srv.stop(), 0);
  }
});

test('metrics parsing: histograms diff and quantiles; labels filter', () => {
  const text = (n: number) => [
    '# HELP softserve_batch_rows Rows per forward pass',
    '# TYPE softserve_batch_rows histogram',
    `softserve_batch_rows_bucket{le="1"} ${n}`,
    `softserve_batch_rows_bucket{le="4"} ${2 * n}`,
    `softserve_batch_rows_bucket{le="+Inf"} ${3 * n}`,
    `softserve_batch_rows_sum ${10 * n}`,
    `softserve_batch_rows_count ${3 * n}`,
    `softserve_http_requests_total{route="/v1/tasks/:id/classify",method="POST",status="200"} ${5 * n}`,
  ].join('\n');
  const a = parseMetrics(text(1));
  const b = parseMetrics(text(3));
  const d = diffHistogram(histogram(b, 'softserve_batch_rows'), histogram(a, 'softserve_batch_rows'));
  assert.deepEqual(d.le, [1, 4, Infinity]);
  assert.deepEqual(d.cumulative, [2, 4, 6]);
  assert.equal(d.count, 6);
  assert.equal(d.sum, 20);
  assert.equal(quantile(d, 0.25), 0.75); // inside the first bucket, linear from 0
  assert.equal(quantile(d, 0.5), 2.5);
  assert.equal(quantile(d, 0.99), 4); // the +Inf bucket reports the last finite bound
  assert.equal(serverSide(a, b).classifyByStatus['200'], 10);
});

test('report: the SVG plot is well formed; a section replaces only its own markers', () => {
  const svg = svgPlot({ title: 'a < b', xLabel: 'rows/s', yLabel: 'ms', series: [{ name: 'p99', color: '#d62728', points: [{ x: 10, y: 5 }, { x: 20, y: 9 }] }], hlines: [{ y: 4, label: 'batch' }] });
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<polyline /);
  assert.match(svg, /a &lt; b/);
  assert.match(svg, /<\/svg>\n$/);
  const doc = '# Benchmarks\n\n<!-- bench:engine:start -->\nengine table\n<!-- bench:engine:end -->\n';
  const once = replaceSection(doc, '<!-- bench:load:start -->', '<!-- bench:load:end -->', 'first', '## Load');
  assert.match(once, /engine table/);
  assert.match(once, /## Load\n\n<!-- bench:load:start -->\nfirst\n<!-- bench:load:end -->/);
  const twice = replaceSection(once, '<!-- bench:load:start -->', '<!-- bench:load:end -->', 'second', '## Load');
  assert.match(twice, /engine table/);
  assert.doesNotMatch(twice, /first/);
  assert.equal(twice.split('## Load').length, 2);
});

test('the client refuses anything but the loopback interface', () => {
  assert.throws(() => assertLoopback('http://example.com:8080'), /127\.0\.0\.1 only/);
  assert.throws(() => assertLoopback('https://127.0.0.1:1'), /only http/);
  assert.equal(assertLoopback('http://127.0.0.1:8080').port, '8080');
});

test('batching gains: the server\'s gain is judged against the raw engine\'s between the same batch-size distributions', () => {
  // Server 999 → 750 rows/s (1.332×), engine 1800 → 1200 rows/s (1.5×): the server keeps 0.888 of the engine's gain.
  const g = batchingGain({ serverBase: 999, serverPolicy: 750, engineBase: 1800, enginePolicy: 1200 });
  assert.equal(g.server, 999 / 750);
  assert.equal(g.engine, 1.5);
  assert.equal(g.ratio, 999 / 750 / 1.5);
  assert.ok(g.ratio < GAIN_RATIO_GOAL);
  // Gaining as much as the engine meets the goal; gaining nothing when the engine gains 2× is half of it.
  assert.equal(batchingGain({ serverBase: 200, serverPolicy: 100, engineBase: 400, enginePolicy: 200 }).ratio, 1);
  assert.equal(batchingGain({ serverBase: 100, serverPolicy: 100, engineBase: 400, enginePolicy: 200 }).ratio, 0.5);
  // A missing or empty replay leaves the ratio unknown, never a made-up number; the server's gain still stands.
  const noEngine = batchingGain({ serverBase: 300, serverPolicy: 150 });
  assert.equal(noEngine.server, 2);
  assert.ok(Number.isNaN(noEngine.engine) && Number.isNaN(noEngine.ratio));
  assert.ok(Number.isNaN(batchingGain({ serverBase: 300, serverPolicy: 150, engineBase: 400, enginePolicy: 0 }).ratio));
});
