// softserve jobs ls|show|cancel (tenant key).

import type { Command } from 'commander';

import { seg } from '../client.ts';
import { out, printJson, printTable, tenantClient, wantsJson } from '../context.ts';
import { FINAL, followJob, jobSummary, type JobView } from '../follow.ts';

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : x.toFixed(3));

/**
 * Prints a job (JSON or a summary). After following it (`outcome`), a job that
 * failed or was cancelled makes the exit code 1; `jobs show` alone reports.
 */
export function reportJob(cmd: Command, job: JobView, outcome = false): void {
  if (wantsJson(cmd)) printJson(job);
  else if (FINAL.has(job.state)) for (const l of jobSummary(job)) out(l);
  else {
    const p = job.progress;
    out(`job ${job.id}: ${job.state} (${job.task}/${job.prompt}, ${job.examples} examples)`);
    if (p) out(`  step ${p.step ?? 0}/${p.total_steps ?? '?'}${(p.members ?? 1) > 1 ? ` member ${p.member}/${p.members}` : ''} loss ${p.loss?.toFixed(4) ?? '-'} held-out accuracy ${pct(p.held_out_accuracy ?? p.best_held_out_accuracy)}`);
  }
  if (outcome && (job.state === 'failed' || job.state === 'cancelled')) process.exitCode = 1;
}

export function registerJobs(program: Command): void {
  const jobs = program.command('jobs').description('training jobs (tenant key)');

  jobs.command('ls').description("the tenant's training jobs, newest first")
    .option('-t, --task <task>', "only this task's jobs")
    .action(async (opts: { task?: string }, cmd: Command) => {
      const path = opts.task ? `/v1/tasks/${seg(opts.task)}/jobs` : '/v1/jobs';
      const r = await tenantClient(cmd).json<{ jobs: JobView[] }>('GET', path);
      if (wantsJson(cmd)) return printJson(r);
      printTable(['ID', 'STATE', 'TASK', 'PROMPT', 'METHOD', 'EXAMPLES', 'STEP', 'HELD-OUT ACC', 'CREATED'], r.jobs.map((j) => [
        j.id, j.state, j.task, j.prompt, String(j.options.method ?? '-'), j.examples,
        j.progress?.total_steps ? `${j.progress.step ?? 0}/${j.progress.total_steps}` : '-',
        pct(j.result?.prompts[0]?.held_out_accuracy ?? j.progress?.best_held_out_accuracy), j.created_at,
      ]));
    });

  jobs.command('show').description('a job: state, progress, result')
    .argument('<id>', 'job id (job_…)')
    .option('-f, --follow', 'follow it until it ends (Ctrl-C asks whether to cancel)')
    .action(async (id: string, opts: { follow?: boolean }, cmd: Command) => {
      const client = tenantClient(cmd);
      if (opts.follow) {
        const { job, detached } = await followJob(client, id);
        return reportJob(cmd, job, !detached);
      }
      reportJob(cmd, await client.json<JobView>('GET', `/v1/jobs/${seg(id)}`));
    });

  jobs.command('cancel').description('cancel a queued or running job (a running one stops at its next step)')
    .argument('<id>', 'job id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const job = await tenantClient(cmd).json<JobView>('POST', `/v1/jobs/${seg(id)}/cancel`);
      if (wantsJson(cmd)) return printJson(job);
      out(`job ${job.id}: ${job.state}${job.cancel_requested && job.state === 'running' ? ' (cancel requested; it stops at its next step)' : ''}`);
    });
}
