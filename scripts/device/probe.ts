// Can this onnxruntime build run on the execution provider here? The backends
// onnxruntime lists, then a session on the given checkpoint and one row. A
// failure is a result: its exact text is recorded.

import { Engine } from '../../models/engine.ts';
import { ort, type ExecutionProvider } from '../../kernels/session.ts';
import { errorText } from './args.ts';

export interface ProbeResult {
  ep: ExecutionProvider;
  onnxruntime: string;
  backends: Array<{ name: string; bundled: boolean }>;
  ok: boolean;
  loadMs?: number;
  firstRunMs?: number;
  error?: string;
}

export async function probe(dir: string, ep: ExecutionProvider): Promise<ProbeResult> {
  const result: ProbeResult = { ep, onnxruntime: ort.env.versions.node ?? 'unknown', backends: ort.listSupportedBackends(), ok: false };
  let engine: Engine | null = null;
  try {
    const t0 = performance.now();
    engine = await Engine.load(dir, { executionProvider: ep });
    result.loadMs = Math.round(performance.now() - t0);
    const t1 = performance.now();
    await engine.run([{ inputIds: [engine.spec.bosTokenId ?? 5, 6, 7, 8], labelIds: [10, 11] }]);
    result.firstRunMs = Math.round(performance.now() - t1);
    result.ok = true;
  } catch (err) {
    result.error = errorText(err);
  } finally {
    await engine?.release();
  }
  return result;
}
