// npm run bench:engine [-- --write] [--quick]
// Raw engine throughput, in process (no server): rows/s and tokens/s for batch
// sizes 1..64 on stories260k and a random BERT-base-sized model, with every row
// carrying its own 20-token soft prompt, its own 20-token prefix, or neither.
// --write replaces the engine section of docs/BENCHMARKS.md with the table.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../models/engine.ts';
import type { EngineRow } from '../models/batch.ts';
import { BERT_BASE, writeRandomBert } from './random-model.ts';

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const BATCH_SIZES = quick ? [1, 8, 64] : [1, 2, 4, 8, 16, 32, 64];
const TEXT_TOKENS = 64;
const PROMPT_TOKENS = 20;
const STORIES = process.env.SOFTSERVE_MODEL_DIR ?? fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));

type Variant = 'none' | 'soft20' | 'prefix20';

function rowsFor(engine: Engine, batch: number, variant: Variant): EngineRow[] {
  const { vocabSize: V, hiddenSize: H, numLayers: L, numKvHeads: KV, headDim: D } = engine.spec;
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296 - 0.5);
  return Array.from({ length: batch }, (_, b): EngineRow => {
    const text = Array.from({ length: TEXT_TOKENS }, (_, t) => 5 + ((b * 131 + t * 17) % (V - 5)));
    const labelIds = [10, 11];
    if (variant === 'soft20') {
      const virtual = Array.from({ length: PROMPT_TOKENS }, (_, j) => V + j);
      const data = Float32Array.from({ length: PROMPT_TOKENS * H }, rand);
      return { inputIds: [...virtual, ...text], softPrompt: { key: `s${b}`, length: PROMPT_TOKENS, data }, labelIds };
    }
    if (variant === 'prefix20') {
      const data = Float32Array.from({ length: L * 2 * KV * PROMPT_TOKENS * D }, rand);
      return { inputIds: text, prefix: { key: `p${b}`, length: PROMPT_TOKENS, data }, labelIds };
    }
    return { inputIds: text, labelIds };
  });
}

interface Row { model: string; variant: Variant; batch: number; msPerBatch: number; rowsPerSec: number; tokensPerSec: number }

async function measure(engine: Engine, model: string, budgetMs: number): Promise<Row[]> {
  const out: Row[] = [];
  for (const variant of ['none', 'soft20', 'prefix20'] as const) {
    for (const batch of BATCH_SIZES) {
      const assembled = engine.assemble(rowsFor(engine, batch, variant));
      await engine.runAssembled(assembled); // warm-up: first run allocates
      let runs = 0;
      const start = performance.now();
      do {
        await engine.runAssembled(assembled);
        runs++;
      } while (performance.now() - start < budgetMs && runs < 200);
      const ms = (performance.now() - start) / runs;
      const row = { model, variant, batch, msPerBatch: ms, rowsPerSec: (batch * 1000) / ms, tokensPerSec: (assembled.realTokens * 1000) / ms };
      out.push(row);
      process.stderr.write(`${model} ${variant} B=${batch}: ${ms.toFixed(2)} ms/batch, ${row.rowsPerSec.toFixed(1)} rows/s\n`);
    }
  }
  return out;
}

function table(rows: Row[]): string {
  const lines = ['| model | prompt | batch | ms/batch | rows/s | tokens/s |', '|---|---|---:|---:|---:|---:|'];
  for (const r of rows) {
    lines.push(`| ${r.model} | ${r.variant} | ${r.batch} | ${r.msPerBatch.toFixed(2)} | ${r.rowsPerSec.toFixed(1)} | ${Math.round(r.tokensPerSec)} |`);
  }
  return lines.join('\n');
}

const results: Row[] = [];
const memory: string[] = [];
const rssMiB = () => Math.round(process.memoryUsage().rss / 2 ** 20);
const baseRss = rssMiB();
const stories = await Engine.load(STORIES);
memory.push(`stories260k: process RSS ${rssMiB()} MiB after load (${rssMiB() - baseRss} MiB over the bare process)`);
results.push(...await measure(stories, 'stories260k', quick ? 300 : 1000));
await stories.release();

const bertDir = mkdtempSync(join(tmpdir(), 'softserve-bert-base-'));
try {
  process.stderr.write('writing a random BERT-base checkpoint...\n');
  writeRandomBert(bertDir, BERT_BASE);
  const before = rssMiB();
  const bert = await Engine.load(bertDir);
  memory.push(`bert-base (random, 110M parameters, 440 MB of float32): RSS ${rssMiB()} MiB after load, ${rssMiB() - before} MiB more than before it`);
  results.push(...await measure(bert, 'bert-base (random)', quick ? 500 : 2000));
  await bert.release();
} finally {
  rmSync(bertDir, { recursive: true, force: true });
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, onnxruntime-node cpu EP`;
const section = [
  '<!-- bench:engine:start -->',
  `Command: \`npm run bench:engine${quick ? ' -- --quick' : ''}\` (${new Date().toISOString().slice(0, 10)}).`,
  `Machine: ${machine}.`,
  `Each row: ${TEXT_TOKENS} text tokens; \`soft20\` adds a distinct 20-token soft prompt per row (so 84 positions), \`prefix20\` a distinct 20-token prefix per row in every layer. tokens/s counts every position computed (text and virtual), not prefix keys. Times are the mean of repeated runs of one assembled batch after a warm-up run.`,
  '',
  table(results),
  '',
  ...memory.map((m) => `- ${m}`),
  '<!-- bench:engine:end -->',
].join('\n');
console.log(section);

if (args.has('--write')) {
  const path = fileURLToPath(new URL('../docs/BENCHMARKS.md', import.meta.url));
  let doc = '';
  try { doc = readFileSync(path, 'utf8'); } catch { doc = '# Benchmarks\n'; }
  const re = /<!-- bench:engine:start -->[\s\S]*<!-- bench:engine:end -->/;
  doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n## Engine throughput\n\n${section}\n`;
  writeFileSync(path, doc);
  process.stderr.write(`wrote ${path}\n`);
}
