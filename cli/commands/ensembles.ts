// softserve ensembles create|ls|rm (tenant key): named sets of a task's
// prompts that classify votes with.

import type { Command } from 'commander';

import { seg, UsageError } from '../client.ts';
import { out, printJson, printTable, taskOf, tenantClient, wantsJson } from '../context.ts';

interface EnsembleView { task: string; name: string; members: Array<{ prompt: string; version: number | null }>; created_at: string }

/** "p1" follows p1's latest version; "p1@3" pins version 3. */
export function parseMember(raw: string): { prompt: string; version: number | null } {
  const m = /^([^@]+)(?:@([1-9][0-9]*))?$/.exec(raw);
  if (!m) throw new UsageError(`a member is PROMPT or PROMPT@VERSION, got ${JSON.stringify(raw)}`);
  return { prompt: m[1]!, version: m[2] === undefined ? null : Number(m[2]) };
}

const memberText = (e: EnsembleView) => e.members.map((m) => (m.version === null ? m.prompt : `${m.prompt}@${m.version}`)).join(', ');

export function registerEnsembles(program: Command): void {
  const ensembles = program.command('ensembles').description('named sets of prompts that vote (tenant key)');
  const taskOpt = ['-t, --task <task>', 'the task (or SOFTSERVE_TASK)'] as const;

  ensembles.command('create').description('make an ensemble of a task\'s prompts')
    .argument('<name>', 'ensemble name')
    .argument('<members...>', 'prompts: NAME (latest version) or NAME@VERSION')
    .option(...taskOpt)
    .action(async (name: string, members: string[], opts: { task?: string }, cmd: Command) => {
      const e = await tenantClient(cmd).json<EnsembleView>('POST', `/v1/tasks/${seg(taskOf(opts))}/ensembles/${seg(name)}`, { json: { members: members.map(parseMember) } });
      if (wantsJson(cmd)) return printJson(e);
      out(`ensemble ${e.name} of ${e.task}: ${memberText(e)}`);
    });

  ensembles.command('ls').description("a task's ensembles")
    .option(...taskOpt)
    .action(async (opts: { task?: string }, cmd: Command) => {
      const r = await tenantClient(cmd).json<{ ensembles: EnsembleView[] }>('GET', `/v1/tasks/${seg(taskOf(opts))}/ensembles`);
      if (wantsJson(cmd)) return printJson(r);
      printTable(['NAME', 'SIZE', 'MEMBERS'], r.ensembles.map((e) => [e.name, e.members.length, memberText(e)]));
    });

  ensembles.command('rm').description('delete an ensemble (its prompts stay)')
    .argument('<name>', 'ensemble name')
    .option(...taskOpt)
    .action(async (name: string, opts: { task?: string }, cmd: Command) => {
      await tenantClient(cmd).json('DELETE', `/v1/tasks/${seg(taskOf(opts))}/ensembles/${seg(name)}`);
      if (wantsJson(cmd)) return printJson({ deleted: name });
      out(`deleted ensemble ${name}`);
    });
}
