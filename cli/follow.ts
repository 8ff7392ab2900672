// Following a training job: polls GET /v1/jobs/:id until it ends. On a
// terminal, a live bar (step/total, loss, held-out accuracy, examples/s, ETA);
// elsewhere, one line per held-out evaluation, for logs. Ctrl-C asks whether
// to cancel the job; "no" leaves it running and stops following.

import { createInterface } from 'node:readline';
import cliProgress from 'cli-progress';

import { seg, type Client } from './client.ts';
import { note } from './context.ts';

export interface JobView {
  id: string; task: string; prompt: string; ensemble: string | null;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  cancel_requested: boolean; examples: number; options: Record<string, unknown>;
  progress: null | { phase?: string; member?: number; members?: number; step?: number; total_steps?: number; epoch?: number; loss?: number; held_out_accuracy?: number | null; held_out_loss?: number | null; best_held_out_accuracy?: number | null; examples_per_sec?: number };
  history: Array<{ member?: number; step: number; epoch: number; train_loss: number | null; held_out_loss: number | null; held_out_accuracy: number | null; elapsed_ms: number }>;
  result: null | { prompts: Array<{ name: string; version: number; held_out_accuracy: number | null; steps: number; stopped_early: boolean; examples_per_sec: number }>; ensemble: string | null };
  error: null | { code: string; message: string };
  created_at: string; started_at: string | null; finished_at: string | null;
}

export const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

const POLL_MS = 500;
const f = (x: number | null | undefined, digits = 4) => (x === null || x === undefined ? '-' : x.toFixed(digits));

/** Asks a yes/no question on stderr, reading the answer from stdin; end of input or a second Ctrl-C is "no". */
function ask(question: string): Promise<boolean> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: process.stdin.isTTY === true });
    let done = false;
    const finish = (yes: boolean) => {
      if (done) return;
      done = true;
      rl.close();
      resolve(yes);
    };
    rl.on('SIGINT', () => finish(false));
    rl.on('close', () => finish(false));
    rl.question(question, (answer) => finish(/^y(es)?$/i.test(answer.trim())));
  });
}

export interface FollowResult {
  job: JobView;
  /** The user stopped following; the job goes on. */
  detached: boolean;
}

export async function followJob(client: Client, id: string): Promise<FollowResult> {
  const tty = process.stderr.isTTY === true;
  const bar = tty
    ? new cliProgress.SingleBar({
      format: '{label} {bar} {value}/{total} steps | loss {loss} | held-out acc {acc} | {eps} ex/s | ETA {eta_formatted}',
      hideCursor: true, clearOnComplete: false, etaBuffer: 20,
    }, cliProgress.Presets.shades_classic)
    : null;
  let barStarted = false;
  let barMember = 0;
  let lastState = '';
  let seenHistory = 0;
  let asking: Promise<void> | null = null;
  let detached = false;

  const onSigint = () => {
    if (asking) return;
    if (bar && barStarted) bar.stop();
    barStarted = false;
    asking = (async () => {
      const yes = await ask(`\nCancel job ${id}? [y/N] (no: stop following; the job keeps running) `);
      if (yes) {
        await client.json('POST', `/v1/jobs/${seg(id)}/cancel`).catch((err: Error) => note(`cancel failed: ${err.message}`));
        note(`cancelling ${id}…`);
      } else {
        detached = true;
        note(`job ${id} keeps running; follow it again with: softserve jobs show ${id} --follow`);
      }
    })();
  };
  process.on('SIGINT', onSigint);
  try {
    for (;;) {
      const job = await client.json<JobView>('GET', `/v1/jobs/${seg(id)}`);
      if (asking) {
        await asking;
        asking = null;
        if (detached) return { job, detached: true };
        continue;
      }
      if (job.state !== lastState && !FINAL.has(job.state)) {
        if (!bar || !barStarted) note(`job ${job.id} ${job.state}${job.state === 'running' && job.cancel_requested ? ' (cancel requested)' : ''}`);
        lastState = job.state;
      }
      const total = job.progress?.total_steps;
      if (!bar) {
        for (const h of job.history.slice(seenHistory)) {
          const member = (job.progress?.members ?? 1) > 1 && h.member !== undefined ? `member ${h.member} ` : '';
          note(`${member}step ${h.step}${total ? `/${total}` : ''} epoch ${h.epoch} train loss ${f(h.train_loss)} held-out loss ${f(h.held_out_loss)} held-out accuracy ${f(h.held_out_accuracy, 3)}`);
        }
      }
      seenHistory = job.history.length;
      const p = job.progress;
      if (bar && job.state === 'running' && p && p.total_steps) {
        const label = (p.members ?? 1) > 1 ? `member ${p.member}/${p.members}` : job.prompt;
        const payload = { label, loss: f(p.loss), acc: f(p.held_out_accuracy ?? p.best_held_out_accuracy, 3), eps: p.examples_per_sec === undefined ? '-' : p.examples_per_sec.toFixed(0) };
        if (!barStarted || barMember !== (p.member ?? 1)) {
          if (barStarted) bar.stop();
          bar.start(p.total_steps, p.step ?? 0, payload);
          barStarted = true;
          barMember = p.member ?? 1;
        } else {
          bar.setTotal(p.total_steps);
          bar.update(p.step ?? 0, payload);
        }
      }
      if (FINAL.has(job.state)) {
        if (bar && barStarted) {
          if (job.state === 'succeeded') bar.update(bar.getTotal());
          bar.stop();
        }
        note(`job ${job.id} ${job.state}`);
        return { job, detached: false };
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    process.off('SIGINT', onSigint);
    if (bar && barStarted) bar.stop();
  }
}

/** A human summary of a finished job, for stdout. */
export function jobSummary(job: JobView): string[] {
  const lines = [`job ${job.id}: ${job.state} (${job.task}/${job.prompt}, ${job.examples} examples)`];
  if (job.result) {
    for (const p of job.result.prompts) {
      lines.push(`  published ${p.name} v${p.version}: held-out accuracy ${f(p.held_out_accuracy, 3)}, ${p.steps} steps${p.stopped_early ? ' (stopped early)' : ''}, ${p.examples_per_sec.toFixed(0)} examples/s`);
    }
    if (job.result.ensemble) lines.push(`  ensemble ${job.result.ensemble}`);
  }
  if (job.error) lines.push(`  error ${job.error.code}: ${job.error.message}`);
  return lines;
}
