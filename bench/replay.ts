// The raw-engine side of the server-overhead and batching-gain measurements: rebuild, in
// process, the exact batches the server ran during a load run (each answer
// names its batch), and run them back to back on the engine with no HTTP, no
// scheduler and no worker thread. Rows are rebuilt from what the load
// generator sent (template, text, prompt tensor) by the product's row builder
// (prompts/rows.ts, as serving builds them; bench/ never imports the server),
// and checked against the token counts the server reported.

import { Engine } from '../models/engine.ts';
import type { EngineRow } from '../models/batch.ts';
import type { IssuedRequest, Workload } from '../loadtest/scenarios.ts';
import { promptValues } from '../loadtest/scenarios.ts';
import { engineRow, taskRows, tokenizeInput, tokensInText, type RowModel, type TaskRows } from '../prompts/rows.ts';

export interface ReplayBatch { id: number; tags: number[] }

export interface ReplayResult {
  /** Batches and rows replayed: all that were recorded, or a prefix of them when a time budget cut the replay. */
  batches: number;
  rows: number;
  recordedBatches: number;
  recordedRows: number;
  /** The engine-time budget that bounded the replay, if any. */
  maxEngineMs: number | null;
  /** Engine time: assemble + session.run, summed over batches. */
  engineMs: number;
  /** session.run only. */
  runMs: number;
  rowsPerSec: number;
  /** Requests whose rebuilt row had a different length from the server's usage.tokens (should be 0). */
  tokenMismatches: number;
}

/** Rows for the benchmark's requests, built by the server's own row builder (prompts/rows.ts). */
export class RowBuilder {
  private readonly model: RowModel;
  private readonly plan: TaskRows;
  private readonly tensors = new Map<number, Float32Array>();

  constructor(engine: Engine, private readonly workload: Workload) {
    this.model = { spec: engine.spec, tokenizer: engine.tokenizer, addBos: engine.tokenizer.addBos };
    const { template, labels, labelWords } = workload.spec.style;
    this.plan = taskRows(this.model, { template, labels, scoring: { type: 'verbalizer', labelWords } });
  }

  row(text: string, tenant: number, prompt: number): EngineRow {
    const p = this.workload.tenants[tenant]!.prompts[prompt]!;
    let data = this.tensors.get(p.seed);
    if (!data) {
      data = promptValues(this.workload.dims, p.kind, p.length, p.seed);
      this.tensors.set(p.seed, data);
    }
    const rowPrompt = { key: `s${p.seed}`, kind: p.kind, numVirtualTokens: p.length, data };
    // No truncation here: a request the server cut would show up as a token mismatch.
    const tokens = tokenizeInput(this.model, this.plan, text, tokensInText(rowPrompt), Number.MAX_SAFE_INTEGER);
    return engineRow(this.plan, tokens, rowPrompt);
  }
}

/**
 * Runs `batches` (tags of single-row requests, grouped by the server's batch
 * id) on a fresh in-process engine. `tokens[tag]` is the server's count for
 * that request, to check the rebuilt rows. With `maxEngineMs`, the replay
 * stops after the batch that takes the engine time past it: the first batches
 * of the run in order, a representative slice of a steady closed-loop run
 * (a batch-size-1 run forms thousands of batches).
 */
export async function replayBatches(modelDir: string, workload: Workload, issued: IssuedRequest[], texts: string[],
  batches: ReplayBatch[], tokens: Map<number, number>, opts: { maxEngineMs?: number } = {}): Promise<ReplayResult> {
  const engine = await Engine.load(modelDir);
  try {
    const builder = new RowBuilder(engine, workload);
    let mismatches = 0;
    // Rows are built just before their batch runs (untimed), so a cut replay does not tokenise the whole run.
    const build = (b: ReplayBatch): EngineRow[] => b.tags.map((tag) => {
      const req = issued[tag]!;
      if (req.prompt < 0 || req.texts.length !== 1) throw new Error(`request ${tag} is not a single-row request; replay needs one row per request`);
      const row = builder.row(texts[req.texts[0]!]!, req.tenant, req.prompt);
      const expected = tokens.get(tag);
      if (expected !== undefined && expected !== row.inputIds.length) mismatches++;
      return row;
    });
    // Warm-up, as the server's worker does before it reports ready.
    if (batches.length > 0) await engine.runScores(engine.assemble(build(batches[0]!)));
    mismatches = 0;
    let engineMs = 0;
    let runMs = 0;
    let rows = 0;
    let replayed = 0;
    for (const batch of batches) {
      if (opts.maxEngineMs !== undefined && engineMs >= opts.maxEngineMs) break;
      const rowsOfBatch = build(batch);
      const t0 = performance.now();
      const assembled = engine.assemble(rowsOfBatch);
      const t1 = performance.now();
      await engine.runScores(assembled); // the worker's call
      const t2 = performance.now();
      engineMs += t2 - t0;
      runMs += t2 - t1;
      rows += rowsOfBatch.length;
      replayed++;
    }
    return {
      batches: replayed, rows, recordedBatches: batches.length, recordedRows: batches.reduce((n, b) => n + b.tags.length, 0),
      maxEngineMs: opts.maxEngineMs ?? null, engineMs, runMs, rowsPerSec: (rows * 1000) / Math.max(engineMs, 1e-9), tokenMismatches: mismatches,
    };
  } finally {
    await engine.release();
  }
}
