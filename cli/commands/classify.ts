// softserve classify TASK TEXT... | --file in.jsonl: JSON lines out, one per
// input, in input order. A file is sent in requests of at most the server's
// max inputs (GET /info), a few at a time, with a progress bar on a terminal;
// a 429 is retried after the Retry-After the server sent.

import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';

import { ApiError, RuntimeError, seg, UsageError, type Client } from '../client.ts';
import { note, openClient, out, positiveInt, promptRef, tenantClient } from '../context.ts';

/** Used when the server has no /info (an older server). */
const FALLBACK_MAX_INPUTS = 64;

interface Input { text: string; line?: number; expected?: unknown; id?: unknown }

/** Reads JSONL: each line a JSON string or an object with "text" (its "label" is kept as "expected", its "id" passed through). */
export function readInputs(file: string): Input[] {
  let raw: string;
  try {
    raw = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new RuntimeError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const inputs: Input[] = [];
  raw.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw new RuntimeError(`${file}:${i + 1}: not JSON (each line is a JSON string or {"text": ...})`);
    }
    if (typeof v === 'string') return void inputs.push({ text: v, line: i + 1 });
    if (typeof v === 'object' && v !== null && typeof (v as { text?: unknown }).text === 'string') {
      const o = v as { text: string; label?: unknown; id?: unknown };
      const input: Input = { text: o.text, line: i + 1 };
      if (o.label !== undefined) input.expected = o.label;
      if (o.id !== undefined) input.id = o.id;
      return void inputs.push(input);
    }
    throw new RuntimeError(`${file}:${i + 1}: a line must be a JSON string or an object with a string "text"`);
  });
  return inputs;
}

async function maxInputs(cmd: Command): Promise<number> {
  try {
    const info = await openClient(cmd).json<{ limits?: { max_inputs?: number } }>('GET', '/info');
    return info.limits?.max_inputs ?? FALLBACK_MAX_INPUTS;
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return FALLBACK_MAX_INPUTS;
    throw err;
  }
}

interface ClassifyOptions { file?: string; prompt?: string; ensemble?: string; prompts?: string; batchSize?: number; concurrency: number; maxRetries: number }

function selector(o: ClassifyOptions): Record<string, unknown> {
  const chosen = [o.prompt, o.ensemble, o.prompts].filter((x) => x !== undefined).length;
  if (chosen > 1) throw new UsageError('choose at most one of --prompt, --ensemble, --prompts');
  if (o.prompt !== undefined) {
    const { name, version } = promptRef(o.prompt);
    return version !== undefined ? { prompt: name, version } : { prompt: name };
  }
  if (o.ensemble !== undefined) return { ensemble: o.ensemble };
  if (o.prompts !== undefined) return { prompts: o.prompts.split(',').map((s) => s.trim()).filter(Boolean) };
  return {};
}

interface ResultRow { label: string; score: number; scores: Record<string, number>; votes?: unknown }

async function classifyChunk(client: Client, task: string, texts: string[], sel: Record<string, unknown>, maxRetries: number): Promise<ResultRow[]> {
  const r = await client.json<{ results: ResultRow[] }>('POST', `/v1/tasks/${seg(task)}/classify`, {
    json: { inputs: texts, ...sel },
    retries429: maxRetries,
    onRetry: (err, wait, attempt) => note(`server busy (429 ${err.code}), retry ${attempt}/${maxRetries} in ${wait} s`),
  });
  return r.results;
}

export function registerClassify(program: Command): void {
  program.command('classify').description('classify texts (arguments or a JSONL file); prints one JSON line per input')
    .argument('<task>', 'task name')
    .argument('[texts...]', 'texts to classify')
    .option('-f, --file <in.jsonl>', 'inputs: one JSON string or {"text": ...} per line ("-": stdin); a "label" field is kept as "expected"')
    .option('-p, --prompt <name[@version]>', 'classify with this prompt, optionally a version (default: zero-shot with the verbalizer)')
    .option('-e, --ensemble <name>', 'classify with an ensemble (majority vote)')
    .option('--prompts <a,b,...>', 'an unnamed ensemble of these prompts')
    .option('--batch-size <n>', 'inputs per request (default: the server\'s max inputs, from /info)', positiveInt('--batch-size'))
    .option('--concurrency <n>', 'requests in flight at once (file input)', positiveInt('--concurrency'), 2)
    .option('--max-retries <n>', 'retries of a request answered 429 (each after its Retry-After)', (raw: string) => {
      const v = Number(raw);
      if (!Number.isSafeInteger(v) || v < 0) throw new UsageError(`--max-retries must be an integer >= 0, got ${JSON.stringify(raw)}`);
      return v;
    }, 10)
    .addHelpText('after', '\nOutput (one line per input): {"text", "label", "score", "scores", "votes"?, "expected"?, "line"?, "id"?}\nWith a file whose lines carry a "label", the accuracy goes to stderr at the end.\n\nExamples:\n  softserve classify sentiment "a great movie" "a dull one"\n  softserve classify sentiment --file ../shared/data/sst2/dev.jsonl --prompt mood > out.jsonl')
    .action(async (task: string, texts: string[], opts: ClassifyOptions, cmd: Command) => {
      if (opts.file !== undefined && texts.length > 0) throw new UsageError('give texts or --file, not both');
      if (opts.file === undefined && texts.length === 0) throw new UsageError('nothing to classify: give texts or --file in.jsonl');
      const sel = selector(opts);
      const client = tenantClient(cmd);
      const inputs: Input[] = opts.file !== undefined ? readInputs(opts.file) : texts.map((text) => ({ text }));
      if (inputs.length === 0) throw new UsageError(`${opts.file} has no inputs`);
      const size = Math.min(opts.batchSize ?? Infinity, await maxInputs(cmd));
      const chunks: Input[][] = [];
      for (let i = 0; i < inputs.length; i += size) chunks.push(inputs.slice(i, i + size));

      const bar = opts.file !== undefined && process.stderr.isTTY
        ? new cliProgress.SingleBar({ format: 'classify {bar} {value}/{total} inputs | {eps} inputs/s | ETA {eta_formatted}', hideCursor: true }, cliProgress.Presets.shades_classic)
        : null;
      bar?.start(inputs.length, 0, { eps: '-' });
      const started = performance.now();
      let doneInputs = 0;
      let correct = 0;
      let labelled = 0;
      // Chunks run `concurrency` at a time; their lines are written in input order.
      const results: Array<ResultRow[] | undefined> = new Array(chunks.length);
      let nextToWrite = 0;
      let nextToSend = 0;
      const flush = () => {
        while (nextToWrite < chunks.length && results[nextToWrite] !== undefined) {
          const rows = results[nextToWrite]!;
          chunks[nextToWrite]!.forEach((input, i) => {
            const r = rows[i]!;
            const line: Record<string, unknown> = { text: input.text, label: r.label, score: r.score, scores: r.scores };
            if (r.votes !== undefined) line.votes = r.votes;
            if (input.expected !== undefined) {
              line.expected = input.expected;
              labelled++;
              if (input.expected === r.label) correct++;
            }
            if (input.line !== undefined) line.line = input.line;
            if (input.id !== undefined) line.id = input.id;
            out(JSON.stringify(line));
          });
          results[nextToWrite] = [];
          nextToWrite++;
        }
      };
      const worker = async () => {
        while (nextToSend < chunks.length) {
          const i = nextToSend++;
          const chunk = chunks[i]!;
          results[i] = await classifyChunk(client, task, chunk.map((x) => x.text), sel, opts.maxRetries);
          doneInputs += chunk.length;
          bar?.update(doneInputs, { eps: (doneInputs / ((performance.now() - started) / 1000)).toFixed(0) });
          flush();
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(opts.concurrency, chunks.length) }, worker));
      } finally {
        bar?.stop();
      }
      if (labelled > 0) note(`accuracy against the file's labels: ${(correct / labelled).toFixed(4)} (${correct}/${labelled})`);
    });
}
