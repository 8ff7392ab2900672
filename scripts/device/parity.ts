// Parity of an execution provider against the CPU one: the same mixed batch
// (rows.ts) through two engines on one checkpoint; the largest difference in
// class probabilities (per-row softmax), raw scores and pooled features.

import { Engine } from '../../models/engine.ts';
import type { ExecutionProvider } from '../../kernels/session.ts';
import { errorText } from './args.ts';
import { mixedRows, probabilities } from './rows.ts';

export const PARITY_TOLERANCE = 1e-3;

export interface ParityResult {
  model: string;
  ep: ExecutionProvider;
  rows: number;
  ok: boolean;
  maxAbsDeltaP?: number;
  maxAbsDeltaScore?: number;
  maxAbsDeltaPooled?: number;
  tolerance: number;
  loadMs: { cpu?: number; ep?: number };
  error?: string;
}

async function timedLoad(dir: string, ep: ExecutionProvider): Promise<{ engine: Engine; ms: number }> {
  const started = performance.now();
  const engine = await Engine.load(dir, { executionProvider: ep });
  return { engine, ms: performance.now() - started };
}

export async function parity(model: string, dir: string, ep: ExecutionProvider): Promise<ParityResult> {
  const result: ParityResult = { model, ep, rows: 0, ok: false, tolerance: PARITY_TOLERANCE, loadMs: {} };
  let cpu: Engine | null = null;
  let other: Engine | null = null;
  try {
    const a = await timedLoad(dir, 'cpu');
    cpu = a.engine;
    result.loadMs.cpu = Math.round(a.ms);
    const b = await timedLoad(dir, ep);
    other = b.engine;
    result.loadMs.ep = Math.round(b.ms);
    const rows = mixedRows(cpu.spec);
    result.rows = rows.length;
    const [x, y] = [await cpu.run(rows), await other.run(rows)];
    let dp = 0, ds = 0, dh = 0;
    x.forEach((r, i) => {
      const s = y[i]!;
      const [pa, pb] = [probabilities(r.scores), probabilities(s.scores)];
      pa.forEach((p, c) => { dp = Math.max(dp, Math.abs(p - pb[c]!)); ds = Math.max(ds, Math.abs(r.scores[c]! - s.scores[c]!)); });
      r.pooled.forEach((v, h) => { dh = Math.max(dh, Math.abs(v - s.pooled[h]!)); });
    });
    Object.assign(result, { maxAbsDeltaP: dp, maxAbsDeltaScore: ds, maxAbsDeltaPooled: dh, ok: Number.isFinite(dp) && dp <= PARITY_TOLERANCE });
  } catch (err) {
    result.error = errorText(err);
  } finally {
    await cpu?.release();
    await other?.release();
  }
  return result;
}
