// npm run bench:training-memory [-- --calibrate] [--model stories|random] [--configs JSON]
//
// Peak memory of training jobs, to calibrate prompts/training/memory.ts.
// Each measurement runs in a fresh child process: load the model as the
// training worker does (one onnxruntime thread), read RSS, run a few steps of
// the job with its options (every text long enough to fill max_text_tokens,
// and at least one full evaluation batch held out), then read VmHWM (the
// process's peak RSS) from /proc/self/status. The growth VmHWM - baseline is
// what the job cost; it is printed beside the estimator's figure.
//
// --model random writes a bigger random llama checkpoint (hidden 256, 4 layers,
// 8 heads, intermediate 688, vocabulary 4000) with test/fixtures/random-checkpoint.ts.
//
// --server [--memory-mb N]: the real server (npm start's entry point, a child
// process, stories260k) over HTTP: asks for the job (256 virtual
// tokens, 250 text tokens, batch_size 512) and prints the refusal, then
// submits the largest batch_size the refusal says fits, and reports the
// server's peak RSS (VmHWM of its /proc status) over its RSS before the job,
// beside the job's own sampled `memory` figures.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { TrainableModel } from '../models/training-graph.ts';
import { estimateTrainingMemory, modelDimsOf } from '../prompts/training/memory.ts';
import { parseTrainingOptions } from '../prompts/training/options.ts';
import { trainEnsemble, type TaskSpec } from '../prompts/training/trainer.ts';
import { startServerProcess } from '../loadtest/server-process.ts';
import { writeRandomCheckpoint, FIXTURE_WORDS } from '../test/fixtures/random-checkpoint.ts';

const STORIES = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));
const args = process.argv.slice(2);
const val = (f: string) => { const i = args.indexOf(f); return i >= 0 ? args[i + 1] : undefined; };

function hwmBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return Number(m![1]) * 1024;
}

interface Measured { options: Record<string, unknown>; baselineMb: number; growthMb: number; estimateMb: number; seq: number; ms: number }

async function child(modelDir: string, raw: Record<string, unknown>, words: string[]): Promise<Measured> {
  const model = await TrainableModel.load(modelDir, { intraOpThreads: 1 });
  const options = parseTrainingOptions({ ...raw, max_steps: raw.max_steps ?? 2, epochs: 1, eval_every: 1 });
  const task: TaskSpec = options.method === 'linear_head'
    ? { labels: ['a', 'b'], template: '{text}', scoring: { type: 'head', pooling: 'last' } }
    : { labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', labelWords: [` ${words[0]}`, ` ${words[1]}`] } };
  // Texts far longer than max_text_tokens: every row is cut to exactly that many tokens.
  const long = (i: number) => Array.from({ length: options.maxTextTokens + 8 }, (_, j) => words[(i + j * 7) % words.length]).join(' ');
  const n = Math.max(options.batchSize * 2, 8);
  const train = Array.from({ length: n }, (_, i) => ({ text: long(i), label: i % 2 }));
  const heldOut = Array.from({ length: 64 }, (_, i) => ({ text: long(i + 3), label: i % 2 }));
  if (globalThis.gc) globalThis.gc();
  const baseline = process.memoryUsage.rss();
  const t0 = performance.now();
  await trainEnsemble(model, task, train, heldOut, options);
  const ms = performance.now() - t0;
  const peak = hwmBytes();
  const est = estimateTrainingMemory(modelDimsOf(model.spec, modelDir), options, { templateTokens: task.template.length + 2, evalRows: 64 });
  return { options: raw, baselineMb: baseline / 2 ** 20, growthMb: Math.max(0, peak - baseline) / 2 ** 20, estimateMb: est.bytes / 2 ** 20, seq: est.sequenceTokens, ms };
}

const STORIES_WORDS = ['happy', 'sad', 'the', 'dog', 'was', 'and', 'she', 'played', 'with', 'ball', 'in', 'park', 'sun', 'tom', 'cat', 'big'];

const DEFAULT_CONFIGS: Array<Record<string, unknown>> = [
  { method: 'prompt_tuning', num_virtual_tokens: 16, max_text_tokens: 32, batch_size: 8 },
  { method: 'prompt_tuning', num_virtual_tokens: 16, max_text_tokens: 128, batch_size: 32 },
  { method: 'prompt_tuning', num_virtual_tokens: 64, max_text_tokens: 128, batch_size: 16 },
  { method: 'prompt_tuning', num_virtual_tokens: 128, max_text_tokens: 250, batch_size: 8 },
  { method: 'prompt_tuning', num_virtual_tokens: 256, max_text_tokens: 250, batch_size: 1 },
  { method: 'prompt_tuning', num_virtual_tokens: 256, max_text_tokens: 250, batch_size: 4 },
  { method: 'prompt_tuning', num_virtual_tokens: 256, max_text_tokens: 250, batch_size: 8 },
  { method: 'prompt_tuning', num_virtual_tokens: 16, max_text_tokens: 16, batch_size: 256 },
  { method: 'p_tuning', num_virtual_tokens: 64, max_text_tokens: 128, batch_size: 16, encoder: 'lstm' },
  { method: 'prefix_tuning', num_virtual_tokens: 64, max_text_tokens: 128, batch_size: 16 },
  { method: 'prefix_tuning', num_virtual_tokens: 256, max_text_tokens: 250, batch_size: 4 },
  { method: 'linear_head', max_text_tokens: 250, batch_size: 64 },
];

function procStatusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

async function serverRun(): Promise<void> {
  const env: Record<string, string> = {};
  if (val('--memory-mb')) env.SOFTSERVE_TRAINING_MEMORY_MB = val('--memory-mb')!;
  const srv = await startServerProcess({ env });
  const call = async (method: string, path: string, key: string, body?: unknown) => {
    const r = await fetch(srv.url + path, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
    return { status: r.status, json: await r.json() as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  };
  try {
    const key = (await call('POST', '/v1/tenants', srv.adminKey, { name: 'mem' })).json.api_key as string;
    await call('POST', '/v1/tasks', key, { name: 't', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } });
    const long = (i: number) => Array.from({ length: 300 }, (_, j) => STORIES_WORDS[(i + j * 7) % STORIES_WORDS.length]).join(' ');
    const examples = Array.from({ length: 160 }, (_, i) => ({ text: long(i), label: i % 2 ? 'positive' : 'negative' }));
    const big = { num_virtual_tokens: 256, max_text_tokens: 250, batch_size: 512 };
    const refused = await call('POST', '/v1/tasks/t/jobs', key, { prompt: 'big', examples, options: big });
    console.log(`refused: ${refused.status} ${refused.json.error.code}: ${refused.json.error.message}`);
    const batch = refused.json.error.details.largest_batch_size as number;
    const rssBefore = procStatusMb(srv.pid, 'VmRSS');
    const hwmBefore = procStatusMb(srv.pid, 'VmHWM');
    const t0 = Date.now();
    const sub = await call('POST', '/v1/tasks/t/jobs', key, { prompt: 'largest', examples, options: { ...big, batch_size: batch, epochs: 1, max_steps: 6, held_out_fraction: 0.5 } });
    if (sub.status !== 202) throw new Error(`submit: ${sub.status} ${JSON.stringify(sub.json)}`);
    let job = sub.json;
    while (!['succeeded', 'failed', 'cancelled'].includes(job.state)) {
      await new Promise((r) => setTimeout(r, 200));
      job = (await call('GET', `/v1/jobs/${job.id}`, key)).json;
    }
    const hwm = procStatusMb(srv.pid, 'VmHWM');
    console.log(JSON.stringify({
      options: job.options, state: job.state, error: job.error, memory: job.memory, wall_s: (Date.now() - t0) / 1000,
      server_rss_before_mb: Math.round(rssBefore), server_peak_mb: Math.round(hwm), server_peak_before_mb: Math.round(hwmBefore),
      peak_growth_over_rss_before_mb: Math.round(hwm - rssBefore),
    }, null, 1));
  } finally {
    await srv.stop();
  }
}

async function main(): Promise<void> {
  if (args.includes('--server')) {
    await serverRun();
    return;
  }
  if (args[0] === '--child') {
    const { modelDir, options, words } = JSON.parse(args[1]!) as { modelDir: string; options: Record<string, unknown>; words: string[] };
    process.stdout.write(`${JSON.stringify(await child(modelDir, options, words))}\n`);
    return;
  }
  const which = val('--model') ?? 'stories';
  let modelDir = STORIES;
  let words = STORIES_WORDS;
  let cleanup = () => {};
  if (which === 'random') {
    const ck = writeRandomCheckpoint({ family: 'llama', seed: 3, hidden: 256, layers: 4, heads: 8, kvHeads: 4, intermediate: 688, vocabSize: 4000, maxPositions: 1024 });
    modelDir = ck.dir;
    words = FIXTURE_WORDS.filter((w) => /^[a-z]+$/.test(w));
    cleanup = () => ck.cleanup();
  }
  const configs = val('--configs') ? JSON.parse(val('--configs')!) as Array<Record<string, unknown>> : DEFAULT_CONFIGS;
  const self = fileURLToPath(import.meta.url);
  console.log('| options | sequence | baseline MB | measured growth MB | estimate MB | estimate / measured |');
  console.log('|---|---:|---:|---:|---:|---:|');
  try {
    for (const options of configs) {
      const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', self, '--child', JSON.stringify({ modelDir, options, words })], { encoding: 'utf8', maxBuffer: 1 << 24 });
      const m = JSON.parse(out.trim().split('\n').at(-1)!) as Measured;
      const opts = Object.entries(m.options).map(([k, v]) => `${k}=${String(v)}`).join(' ');
      console.log(`| ${opts} | ${m.seq} | ${m.baselineMb.toFixed(0)} | ${m.growthMb.toFixed(0)} | ${m.estimateMb.toFixed(0)} | ${(m.estimateMb / Math.max(1, m.growthMb)).toFixed(2)} |`);
    }
  } finally {
    cleanup();
  }
}

await main();
