// The engine: a checkpoint directory in, one onnxruntime session that scores
// heterogeneous batches out. Loading validates the checkpoint (tokenizer.json
// included, as JSON) before onnxruntime sees a graph; the tokenizer itself is
// built on first use only (the inference worker never tokenises). Running is
// assemble (pure) + Session.run (kernels/session.ts, plain typed arrays).

import { Graph } from '../kernels/graph.ts';
import { openSession, type Session, type SessionOptions } from '../kernels/session.ts';
import { loadCheckpoint } from './checkpoint.ts';
import { familyOf } from './families.ts';
import { assembleBatch, type AssembledBatch, type EngineRow } from './batch.ts';
import { loadTokenizer, type TextTokenizer } from './tokenizer.ts';
import type { ModelSpec } from './spec.ts';

export interface RowResult {
  /** Class scores (length = the row's classes). */
  scores: Float32Array;
  /** Wide pooled feature [2H]: [mean ; last] (models/pooling.ts). */
  pooled: Float32Array;
}

/** A batch's scores [B,C], row-major. */
export interface ScoresOutput {
  scores: Float32Array;
  classes: number;
}

/** A batch's scores [B,C] and pooled features [B,2H], row-major. */
export interface BatchOutput extends ScoresOutput {
  pooled: Float32Array;
}

export class Engine {
  private constructor(
    readonly spec: ModelSpec,
    private loadedTokenizer: TextTokenizer | null,
    readonly positionOffset: number,
    private readonly session: Session,
    readonly modelDir: string,
  ) {}

  /**
   * `tokenizer`: the process's tokenizer, if it has one already. Without it
   * the engine reads one on first use of `tokenizer`: the inference worker
   * gets rows already tokenised and never builds one.
   */
  static async load(dir: string, options: SessionOptions = {}, tokenizer?: TextTokenizer): Promise<Engine> {
    const ckpt = loadCheckpoint(dir);
    const family = familyOf(ckpt);
    const spec = family.spec(ckpt);
    const graph = new Graph(`${spec.family}_serving`);
    family.buildServingGraph(graph, ckpt, spec);
    const session = await openSession(graph.toOnnx(), options);
    return new Engine(spec, tokenizer ?? null, family.positionOffset(spec), session, dir);
  }

  get tokenizer(): TextTokenizer {
    this.loadedTokenizer ??= loadTokenizer(this.modelDir);
    return this.loadedTokenizer;
  }

  assemble(rows: EngineRow[]): AssembledBatch {
    return assembleBatch(rows, this.spec, this.positionOffset);
  }

  /** Runs an assembled batch; returns the raw [B,C] scores and [B,2H] pooled features ([mean ; last], models/pooling.ts). */
  async runAssembled(batch: AssembledBatch): Promise<BatchOutput> {
    const out = await this.session.run(batch.feeds);
    return { scores: out.float32('scores'), pooled: out.float32('pooled'), classes: out.dims('scores')[1]! };
  }

  /**
   * Runs an assembled batch for its scores alone, what serving reads: the pooled
   * features are not fetched, so onnxruntime copies none of them out.
   */
  async runScores(batch: AssembledBatch): Promise<ScoresOutput> {
    const out = await this.session.run(batch.feeds, ['scores']);
    return { scores: out.float32('scores'), classes: out.dims('scores')[1]! };
  }

  async run(rows: EngineRow[]): Promise<RowResult[]> {
    const batch = this.assemble(rows);
    const out = await this.runAssembled(batch);
    const W = 2 * this.spec.hiddenSize;
    return rows.map((_, b) => ({
      scores: out.scores.slice(b * out.classes, b * out.classes + batch.numClasses[b]!),
      pooled: out.pooled.slice(b * W, (b + 1) * W),
    }));
  }

  /**
   * Greedy decoding by scoring every vocabulary token as a class at the last
   * position (no KV cache: a check of the model, not a generation API).
   */
  async greedy(promptIds: number[], steps: number): Promise<number[]> {
    const all = Array.from({ length: this.spec.vocabSize }, (_, i) => i);
    const ids = [...promptIds];
    for (let i = 0; i < steps; i++) {
      const [r] = await this.run([{ inputIds: ids, labelIds: all }]);
      let best = 0;
      r!.scores.forEach((s, j) => { if (s > r!.scores[best]!) best = j; });
      ids.push(best);
      if (best === this.spec.eosTokenId) break;
    }
    return ids;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
