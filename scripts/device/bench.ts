// The raw engine on one checkpoint and one execution provider: rows/s and
// tokens/s for each batch size, every row `tokens` long. Each size gets a
// warm-up run (the first run of a shape allocates, and on WebGPU compiles
// its shaders), then repeated runs for `budgetMs`; a size that would not end
// by `deadlineMs` (judged from the previous size) is skipped, so a slow
// provider still leaves results.

import { appendFileSync } from 'node:fs';
import { Engine } from '../../models/engine.ts';
import type { ExecutionProvider } from '../../kernels/session.ts';
import { errorText } from './args.ts';
import { benchRows } from './rows.ts';

export interface BenchPoint {
  model: string; ep: ExecutionProvider; batch: number; tokens: number;
  warmupMs: number; runs: number; msPerBatch: number; rowsPerSec: number; tokensPerSec: number;
}

export interface BenchResult {
  model: string; ep: ExecutionProvider; loadMs?: number; points: BenchPoint[];
  skipped: number[]; error?: string;
}

export interface BenchOptions {
  model: string; dir: string; ep: ExecutionProvider; batches: number[]; tokens: number;
  budgetMs: number; deadlineMs: number; threads?: number;
  /** Each point is appended here as a JSON line (step "bench-point") as soon as it is measured. */
  linesFile?: string;
}

export async function bench(o: BenchOptions): Promise<BenchResult> {
  const started = performance.now();
  const result: BenchResult = { model: o.model, ep: o.ep, points: [], skipped: [] };
  let engine: Engine | null = null;
  try {
    engine = await Engine.load(o.dir, o.threads === undefined ? { executionProvider: o.ep } : { executionProvider: o.ep, intraOpThreads: o.threads });
    result.loadMs = Math.round(performance.now() - started);
    let last: { batch: number; ms: number } | null = null;
    for (const batch of o.batches) {
      // Skip a size whose warm-up and two runs would end past the deadline (cost taken as linear in rows).
      const estimate = last ? 3 * last.ms * (batch / last.batch) : 0;
      if (performance.now() - started + estimate > o.deadlineMs) { result.skipped.push(batch); continue; }
      const assembled = engine.assemble(benchRows(engine.spec, batch, o.tokens));
      const w0 = performance.now();
      await engine.runAssembled(assembled);
      const warmupMs = performance.now() - w0;
      let runs = 0;
      const t0 = performance.now();
      do {
        await engine.runAssembled(assembled);
        runs++;
      } while ((performance.now() - t0 < o.budgetMs || runs < 2) && runs < 200);
      const ms = (performance.now() - t0) / runs;
      const point: BenchPoint = {
        model: o.model, ep: o.ep, batch, tokens: o.tokens, warmupMs: Math.round(warmupMs), runs,
        msPerBatch: ms, rowsPerSec: (batch * 1000) / ms, tokensPerSec: (assembled.realTokens * 1000) / ms,
      };
      result.points.push(point);
      last = { batch, ms };
      if (o.linesFile) appendFileSync(o.linesFile, `${JSON.stringify({ step: 'bench-point', ...point })}\n`);
      process.stderr.write(`bench ${o.model} ${o.ep} B=${batch}: ${ms.toFixed(2)} ms/batch, ${point.rowsPerSec.toFixed(1)} rows/s, ${Math.round(point.tokensPerSec)} tokens/s (warm-up ${point.warmupMs} ms, ${runs} runs)\n`);
    }
  } catch (err) {
    result.error = errorText(err);
  } finally {
    await engine?.release();
  }
  return result;
}
