// softserve train FILE.jsonl --task T: submits a training job (the JSONL as a
// multipart file, the options as JSON) and, with --follow, watches it.

import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import type { Command } from 'commander';

import { RuntimeError, seg, UsageError } from '../client.ts';
import { note, number, out, positiveInt, printJson, taskOf, tenantClient, wantsJson } from '../context.ts';
import { followJob, type JobView } from '../follow.ts';
import { reportJob } from './jobs.ts';

const METHODS = ['prompt_tuning', 'p_tuning', 'prefix_tuning', 'linear_head'];

interface TrainOptions {
  task?: string; prompt?: string; method?: string; ensemble?: number; epochs?: number; learningRate?: number;
  virtualTokens?: number; batchSize?: number; init?: string; encoder?: string; seed?: number; validation?: string;
  options?: string; follow?: boolean;
}

function readFile(path: string): Uint8Array<ArrayBuffer> {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new RuntimeError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A prompt name from the file's name: train.jsonl -> train. */
function defaultPromptName(file: string): string {
  const stem = basename(file, extname(file)).replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64);
  return stem || 'prompt';
}

export function jobOptions(o: TrainOptions): Record<string, unknown> {
  let options: Record<string, unknown> = {};
  if (o.options !== undefined) {
    try {
      options = JSON.parse(o.options) as Record<string, unknown>;
    } catch (err) {
      throw new UsageError(`--options is not JSON: ${(err as Error).message}`);
    }
    if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new UsageError('--options must be a JSON object');
  }
  if (o.method !== undefined) {
    if (!METHODS.includes(o.method)) throw new UsageError(`--method must be one of ${METHODS.join(', ')}, got ${JSON.stringify(o.method)}`);
    options.method = o.method;
  }
  const set: Array<[string, unknown]> = [
    ['ensemble_size', o.ensemble], ['epochs', o.epochs], ['learning_rate', o.learningRate], ['num_virtual_tokens', o.virtualTokens],
    ['batch_size', o.batchSize], ['init', o.init], ['encoder', o.encoder], ['seed', o.seed],
  ];
  for (const [k, v] of set) if (v !== undefined) options[k] = v;
  return options;
}

export function registerTrain(program: Command): void {
  program.command('train').description('train a prompt from labelled JSON lines ({"text": ..., "label": ...} per line)')
    .argument('<file>', 'training examples, JSONL; labels are the task\'s label names')
    .option('-t, --task <task>', 'the task (or SOFTSERVE_TASK)')
    .option('-p, --prompt <name>', "prompt to publish (default: the file's name without extension)")
    .option('-m, --method <method>', `${METHODS.join(' | ')} (server default: prompt_tuning)`)
    .option('--ensemble <n>', 'train N prompts with seeds seed..seed+N-1 and publish them as an ensemble named like the prompt', positiveInt('--ensemble'))
    .option('--epochs <n>', 'epochs', positiveInt('--epochs'))
    .option('--learning-rate <x>', 'learning rate', number('--learning-rate'))
    .option('--virtual-tokens <n>', 'number of virtual tokens', positiveInt('--virtual-tokens'))
    .option('--batch-size <n>', 'batch size', positiveInt('--batch-size'))
    .option('--init <init>', 'random | vocab | label_words')
    .option('--encoder <encoder>', 'mlp | lstm (p_tuning), mlp (prefix_tuning)')
    .option('--seed <n>', 'seed', number('--seed'))
    .option('--validation <file>', 'held-out examples, JSONL (default: a fraction of FILE is held out)')
    .option('--options <json>', 'any other job options as a JSON object (docs/TRAINING.md)')
    .option('-f, --follow', 'watch the job until it ends: a live bar on a terminal; Ctrl-C asks whether to cancel')
    .addHelpText('after', '\nExample:\n  head -n 300 ../shared/data/sst2/train.jsonl > sst2-300.jsonl\n  softserve train sst2-300.jsonl --task sentiment --prompt mood --epochs 3 --follow')
    .action(async (file: string, opts: TrainOptions, cmd: Command) => {
      const task = taskOf(opts);
      const options = jobOptions(opts);
      const form = new FormData();
      form.append('prompt', opts.prompt ?? defaultPromptName(file));
      form.append('options', JSON.stringify(options));
      form.append('examples', new Blob([readFile(file)], { type: 'application/x-ndjson' }), basename(file));
      if (opts.validation !== undefined) form.append('validation', new Blob([readFile(opts.validation)], { type: 'application/x-ndjson' }), basename(opts.validation));
      const client = tenantClient(cmd);
      const job = await client.json<JobView>('POST', `/v1/tasks/${seg(task)}/jobs`, { body: form });
      if (!opts.follow) {
        if (wantsJson(cmd)) return printJson(job);
        out(`job ${job.id} ${job.state}: ${job.examples} examples, training ${job.task}/${job.prompt}`);
        out(`follow it with: softserve jobs show ${job.id} --follow`);
        return;
      }
      if (!wantsJson(cmd)) note(`job ${job.id} submitted: ${job.examples} examples, training ${job.task}/${job.prompt}`);
      const { job: last, detached } = await followJob(client, job.id);
      reportJob(cmd, last, !detached);
    });
}
