// `softserve train` and `softserve jobs` as child processes against a real
// server (`softserve serve`) with its real training worker: a tiny job
// followed to the end (progress lines without a terminal, --json result), an
// ensemble job, and Ctrl-C while following: "no" leaves the job running,
// "yes" cancels it. Waits are on the CLI's own output and the job's state.

import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { LiveCli, runCli, startCliServer, type CliServer } from './cli-helpers.ts';
import { api, tempDir } from './store-helpers.ts';

const ADMIN = 'cli-train-admin-key-0123456789';
const POSITIVE = ['the girl smiled and laughed with her friend', 'they played in the sun and had fun', 'the dog was happy to see tom', 'mom gave her a big hug and a cake', 'he found a shiny new toy', 'the bird sang a sweet song'];
const NEGATIVE = ['the boy cried because he was hurt', 'she lost her doll and felt bad', 'the storm broke the little house', 'tim was angry and would not talk', 'the cat was sick and cold', 'nobody came to the party'];
const work = tempDir('cli-train');
const examples = join(work, 'mood.jsonl');
let srv: CliServer;
let env: Record<string, string>;

const cli = (args: string[]) => runCli(args, { env });

before(async () => {
  writeFileSync(examples, [...POSITIVE.map((text) => ({ text, label: 'positive' })), ...NEGATIVE.map((text) => ({ text, label: 'negative' }))].map((e) => JSON.stringify(e)).join('\n') + '\n');
  srv = await startCliServer(join(work, 'data'), { SOFTSERVE_ADMIN_KEY: ADMIN });
  const t = await api(srv.url, 'POST', '/v1/tenants', { key: ADMIN, json: { name: 'trainer' } });
  env = { SOFTSERVE_URL: srv.url, SOFTSERVE_API_KEY: t.json.api_key as string };
  const task = await api(srv.url, 'POST', '/v1/tasks', { key: env.SOFTSERVE_API_KEY, json: { name: 'mood', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: ['sad', 'happy'] } } });
  assert.equal(task.status, 201);
});
after(async () => {
  await srv.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('train and jobs', () => {
  it('train --follow: progress lines on stderr, the published prompt on stdout; it classifies; jobs ls/show', async () => {
    const r = await cli(['train', examples, '--task', 'mood', '--prompt', 'cheer', '--virtual-tokens', '4', '--epochs', '4', '--batch-size', '4', '--follow']);
    assert.equal(r.code, 0, r.stderr);
    const id = /job (job_\S+) submitted: 12 examples, training mood\/cheer/.exec(r.stderr)?.[1];
    assert.ok(id, r.stderr);
    assert.match(r.stderr, new RegExp(`job ${id} running`));
    assert.match(r.stderr, /step \d+\/\d+ epoch \d+ train loss [-0-9.]+ held-out loss \d\.\d{4} held-out accuracy \d\.\d{3}/);
    assert.match(r.stderr, new RegExp(`job ${id} succeeded`));
    assert.match(r.stdout, new RegExp(`^job ${id}: succeeded \\(mood/cheer, 12 examples\\)`, 'm'));
    assert.match(r.stdout, /published cheer v1: held-out accuracy \d\.\d{3}, \d+ steps/);

    const c = await cli(['classify', 'mood', POSITIVE[0]!, '--prompt', 'cheer@1']);
    assert.equal(c.code, 0, c.stderr);
    assert.ok(['negative', 'positive'].includes(JSON.parse(c.stdout).label));

    const ls = await cli(['jobs', 'ls', '--task', 'mood', '--json']);
    assert.deepEqual(JSON.parse(ls.stdout).jobs.map((j: { id: string }) => j.id), [id]);
    const human = await cli(['jobs', 'ls']);
    assert.match(human.stdout, new RegExp(`^${id}\\s+succeeded\\s+mood\\s+cheer\\s+prompt_tuning\\s+12`, 'm'));
    const finished = await cli(['jobs', 'cancel', id!]);
    assert.equal(finished.code, 1, 'a finished job cannot be cancelled');
    assert.match(finished.stderr, /error CONFLICT \(HTTP 409\)/);
  });

  it('train --ensemble N (no --follow), then jobs show --follow --json: N prompts and an ensemble', async () => {
    const sub = await cli(['train', examples, '--task', 'mood', '--prompt', 'duo', '--method', 'p_tuning', '--ensemble', '2', '--virtual-tokens', '2', '--epochs', '1', '--batch-size', '6', '--json']);
    assert.equal(sub.code, 0, sub.stderr);
    const job = JSON.parse(sub.stdout);
    assert.equal(job.options.ensemble_size, 2);
    const done = await cli(['jobs', 'show', job.id, '--follow', '--json']);
    assert.equal(done.code, 0, done.stderr);
    const final = JSON.parse(done.stdout);
    assert.equal(final.state, 'succeeded');
    assert.deepEqual(final.result.prompts.map((p: { name: string }) => p.name), ['duo-1', 'duo-2']);
    assert.equal(final.result.ensemble, 'duo');
    const voted = await cli(['classify', 'mood', NEGATIVE[0]!, '--ensemble', 'duo']);
    assert.equal(JSON.parse(voted.stdout).votes.length, 2);
  });

  it('Ctrl-C while following asks whether to cancel: "n" leaves the job running, "y" cancels it', async () => {
    // A job that would run for minutes: 240 examples, one per step, 100 epochs, no early stopping.
    const many = join(work, 'many.jsonl');
    writeFileSync(many, Array.from({ length: 20 }, () => readFileSync(examples, 'utf8')).join(''));
    const long = ['train', many, '--task', 'mood', '--prompt', 'long', '--virtual-tokens', '2', '--epochs', '100', '--batch-size', '1', '--options', '{"patience": 0}', '--follow'];
    const first = new LiveCli(long, env);
    const id = (await first.waitStderr(/job (job_\S+) running/))[1]!;
    first.child.kill('SIGINT');
    await first.waitStderr(new RegExp(`Cancel job ${id}\\? \\[y/N\\]`));
    first.child.stdin!.end('n\n');
    assert.equal(await first.exited, 0, first.stderr);
    assert.match(first.stderr, new RegExp(`job ${id} keeps running; follow it again with: softserve jobs show ${id} --follow`));
    assert.equal(JSON.parse((await cli(['jobs', 'show', id, '--json'])).stdout).state, 'running');

    // Another job queues behind it; jobs cancel takes a queued job off at once.
    const queued = JSON.parse((await cli(['train', examples, '--task', 'mood', '--prompt', 'later', '--json'])).stdout);
    assert.equal(queued.state, 'queued');
    const cancelled = await cli(['jobs', 'cancel', queued.id]);
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.match(cancelled.stdout, new RegExp(`job ${queued.id}: cancelled`));

    const second = new LiveCli(['jobs', 'show', id, '--follow'], env);
    await second.waitStderr(new RegExp(`job ${id} running`));
    second.child.kill('SIGINT');
    await second.waitStderr(/Cancel job/);
    second.child.stdin!.end('y\n');
    assert.equal(await second.exited, 1, 'a cancelled job is not a success');
    assert.match(second.stderr, new RegExp(`job ${id} cancelled`));
    assert.match(second.stdout, new RegExp(`job ${id}: cancelled`));
    const shown = await cli(['jobs', 'show', id]);
    assert.equal(shown.code, 0, 'showing a cancelled job is not an error');
    assert.match(shown.stdout, new RegExp(`job ${id}: cancelled \\(mood/long, 240 examples\\)`));
    const ls = JSON.parse((await cli(['jobs', 'ls', '--json'])).stdout);
    assert.deepEqual(ls.jobs.filter((j: { state: string }) => j.state === 'cancelled').map((j: { id: string }) => j.id).sort(), [id, queued.id].sort());
  });

  it('bad examples: the server\'s 422 and each bad line are printed', async () => {
    const bad = join(work, 'bad.jsonl');
    writeFileSync(bad, '{"text": "fine", "label": "positive"}\n{"text": "x", "label": "meh"}\nnot json\n');
    const r = await cli(['train', bad, '--task', 'mood']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error INVALID_EXAMPLES \(HTTP 422\)/);
    assert.match(r.stderr, /line 2: .*meh/);
    assert.match(r.stderr, /line 3: /);
  });
});
