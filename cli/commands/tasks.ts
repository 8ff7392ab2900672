// softserve tasks create|ls|show|rm (tenant key).

import { readFileSync } from 'node:fs';
import type { Command } from 'commander';

import { RuntimeError, seg, UsageError } from '../client.ts';
import { out, printJson, printTable, tenantClient, wantsJson } from '../context.ts';

interface TaskView { name: string; labels: string[]; template: string; scoring: { type: string; label_words?: string[]; pooling?: string }; created_at: string }

const list = (raw: string) => raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);

function scoringText(t: TaskView): string {
  return t.scoring.type === 'head' ? `head (${t.scoring.pooling} pooling)` : `verbalizer ${t.scoring.label_words!.join(', ')}`;
}

interface CreateOptions { labels?: string; labelWords?: string; template: string; head?: boolean; pooling: string; from?: string }

function taskBody(name: string, o: CreateOptions): Record<string, unknown> {
  if (o.from !== undefined) {
    let body: unknown;
    try {
      body = JSON.parse(readFileSync(o.from, 'utf8'));
    } catch (err) {
      throw new RuntimeError(`cannot read the task from ${o.from}: ${(err as Error).message}`);
    }
    return { ...(body as Record<string, unknown>), name };
  }
  if (!o.labels) throw new UsageError('give --labels a,b (or --from task.json)');
  if (o.head && o.labelWords) throw new UsageError('choose --label-words (verbalizer) or --head, not both');
  if (!o.head && !o.labelWords) throw new UsageError('choose how labels are scored: --label-words w1,w2 (one word per label) or --head');
  const scoring = o.head ? { type: 'head', pooling: o.pooling } : { type: 'verbalizer', label_words: list(o.labelWords!) };
  return { name, labels: list(o.labels), template: o.template, scoring };
}

export function registerTasks(program: Command): void {
  const tasks = program.command('tasks').description('classification tasks: labels, template, scoring (tenant key)');

  tasks.command('create').description('make a task')
    .argument('<name>', 'task name')
    .option('--labels <a,b,...>', 'label names, in class order')
    .option('--label-words <w1,w2,...>', 'verbalizer: one word per label, scored at the last token (or {mask})')
    .option('--template <text>', 'the input template, with one {text}', '{text} It was')
    .option('--head', 'score with a linear head (every prompt then carries one)')
    .option('--pooling <last|mean|mean_last>', 'pooling for --head', 'last')
    .option('--from <task.json>', 'read the whole task definition from a JSON file (API shape)')
    .addHelpText('after', '\nExample:\n  softserve tasks create sentiment --labels negative,positive --label-words sad,happy --template "{text} It was"')
    .action(async (name: string, opts: CreateOptions, cmd: Command) => {
      const t = await tenantClient(cmd).json<TaskView>('POST', '/v1/tasks', { json: taskBody(name, opts) });
      if (wantsJson(cmd)) return printJson(t);
      out(`task ${t.name}: labels ${t.labels.join(', ')}; template ${JSON.stringify(t.template)}; ${scoringText(t)}`);
    });

  tasks.command('ls').description("list the tenant's tasks")
    .action(async (_opts: unknown, cmd: Command) => {
      const r = await tenantClient(cmd).json<{ tasks: TaskView[] }>('GET', '/v1/tasks');
      if (wantsJson(cmd)) return printJson(r);
      printTable(['NAME', 'LABELS', 'SCORING', 'TEMPLATE'], r.tasks.map((t) => [t.name, t.labels.join(','), scoringText(t), JSON.stringify(t.template)]));
    });

  tasks.command('show').description('one task')
    .argument('<name>', 'task name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      const t = await tenantClient(cmd).json<TaskView>('GET', `/v1/tasks/${seg(name)}`);
      if (wantsJson(cmd)) return printJson(t);
      out(`name:     ${t.name}`);
      out(`labels:   ${t.labels.join(', ')}`);
      out(`template: ${JSON.stringify(t.template)}`);
      out(`scoring:  ${scoringText(t)}`);
      out(`created:  ${t.created_at}`);
    });

  tasks.command('rm').description('delete a task with its prompts and ensembles')
    .argument('<name>', 'task name')
    .action(async (name: string, _opts: unknown, cmd: Command) => {
      await tenantClient(cmd).json('DELETE', `/v1/tasks/${seg(name)}`);
      if (wantsJson(cmd)) return printJson({ deleted: name });
      out(`deleted task ${name}`);
    });
}
