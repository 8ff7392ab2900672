// The raw-engine side of the server-overhead measurement: rebuild, in
// process, the exact batches the server ran during a load run (each answer
// names its batch), and run them back to back on the engine with no HTTP, no
// scheduler and no worker thread. Rows are rebuilt from what the load
// generator sent (template, text, prompt tensor) the way docs/API.md and
// docs/ENGINE.md define them (bench/ imports models/, never the server),
// and checked against the token counts the server reported.

import { Engine } from '../models/engine.ts';
import type { EngineRow } from '../models/batch.ts';
import type { IssuedRequest, Workload } from '../loadtest/scenarios.ts';
import { promptValues } from '../loadtest/scenarios.ts';

export interface ReplayBatch { id: number; tags: number[] }

export interface ReplayResult {
  batches: number;
  rows: number;
  /** Engine time: assemble + session.run, summed over batches. */
  engineMs: number;
  /** session.run only. */
  runMs: number;
  rowsPerSec: number;
  /** Requests whose rebuilt row had a different length from the server's usage.tokens (should be 0). */
  tokenMismatches: number;
}

/** Same rule as the server: the first token of a label word as it appears after other text. */
function labelTokenId(engine: Engine, word: string): number {
  const context = engine.tokenizer.encode('a');
  const withWord = engine.tokenizer.encode(`a ${word.trim()}`);
  let i = 0;
  while (i < context.length && context[i] === withWord[i]) i++;
  const id = withWord[i];
  if (id === undefined) throw new Error(`label word ${word} has no tokens`);
  return id;
}

/** Rows for the benchmark templates, built as prompts/template.ts builds them. */
export class RowBuilder {
  private readonly labelIds: number[];
  private readonly tensors = new Map<number, Float32Array>();

  constructor(private readonly engine: Engine, private readonly workload: Workload) {
    this.labelIds = workload.spec.style.labelWords.map((w) => labelTokenId(engine, w));
  }

  row(text: string, tenant: number, prompt: number): EngineRow {
    const { spec, tokenizer } = this.engine;
    const template = this.workload.spec.style.template;
    const p = this.workload.tenants[tenant]!.prompts[prompt]!;
    // The benchmark templates are "{text}<literal>" (causal) or "{text}<literal>{mask}" (masked LMs).
    const m = /^\{text\}([^{}]*)(\{mask\})?$/.exec(template);
    if (!m) throw new Error(`replay knows only templates of the form {text}<literal>[{mask}], not ${JSON.stringify(template)}`);
    const literal = m[1]!;
    let ids: number[];
    let scorePosition: number;
    if (!m[2]) {
      const start = tokenizer.addBos && spec.bosTokenId !== null && spec.family === 'llama' ? [spec.bosTokenId] : [];
      ids = [...start, ...tokenizer.encode(`${text}${literal}`.replace(/^ +/, ''))];
      scorePosition = ids.length - 1;
    } else {
      if (spec.family !== 'bert' && spec.family !== 'roberta') throw new Error(`a {mask} template needs a masked LM, not ${spec.family}`);
      const cls = tokenizer.tokenId(spec.family === 'roberta' ? '<s>' : '[CLS]') ?? 101;
      const sep = tokenizer.tokenId(spec.family === 'roberta' ? '</s>' : '[SEP]') ?? 102;
      const body = tokenizer.encode(`${text}${literal}`.replace(/^ +/, ''));
      ids = [cls, ...body, spec.maskTokenId!, sep];
      scorePosition = 1 + body.length;
    }
    let data = this.tensors.get(p.seed);
    if (!data) {
      data = promptValues(this.workload.dims, p.kind, p.length, p.seed);
      this.tensors.set(p.seed, data);
    }
    const key = `s${p.seed}`;
    const row: EngineRow = { inputIds: ids, scorePosition, labelIds: this.labelIds };
    if (p.kind === 'prefix') row.prefix = { key, length: p.length, data };
    else {
      row.inputIds = [...Array.from({ length: p.length }, (_, j) => spec.vocabSize + j), ...ids];
      row.scorePosition = scorePosition + p.length;
      row.softPrompt = { key, length: p.length, data };
    }
    return row;
  }
}

/**
 * Runs `batches` (tags of single-row requests, grouped by the server's batch
 * id) on a fresh in-process engine. `tokens[tag]` is the server's count for
 * that request, to check the rebuilt rows.
 */
export async function replayBatches(modelDir: string, workload: Workload, issued: IssuedRequest[], texts: string[],
  batches: ReplayBatch[], tokens: Map<number, number>): Promise<ReplayResult> {
  const engine = await Engine.load(modelDir);
  try {
    const builder = new RowBuilder(engine, workload);
    let mismatches = 0;
    const built = batches.map((b) => b.tags.map((tag) => {
      const req = issued[tag]!;
      if (req.prompt < 0 || req.texts.length !== 1) throw new Error(`request ${tag} is not a single-row request; replay needs one row per request`);
      const row = builder.row(texts[req.texts[0]!]!, req.tenant, req.prompt);
      const expected = tokens.get(tag);
      if (expected !== undefined && expected !== row.inputIds.length) mismatches++;
      return row;
    }));
    // Warm-up, as the server's worker does before it reports ready.
    if (built.length > 0) await engine.runAssembled(engine.assemble(built[0]!));
    let engineMs = 0;
    let runMs = 0;
    let rows = 0;
    for (const rowsOfBatch of built) {
      const t0 = performance.now();
      const assembled = engine.assemble(rowsOfBatch);
      const t1 = performance.now();
      await engine.runAssembled(assembled);
      const t2 = performance.now();
      engineMs += t2 - t0;
      runMs += t2 - t1;
      rows += rowsOfBatch.length;
    }
    return { batches: built.length, rows, engineMs, runMs, rowsPerSec: (rows * 1000) / Math.max(engineMs, 1e-9), tokenMismatches: mismatches };
  } finally {
    await engine.release();
  }
}
