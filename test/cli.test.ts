// The `softserve` CLI, run as a child process against a real server it
// started (`softserve serve`): help, usage errors (exit 2), server errors
// printed with their code (exit 1), --json output, tenants, keys, tasks.
// Prompts, ensembles and classify are in cli-prompts.test.ts; training
// (train --follow, Ctrl-C, jobs) in cli-train.test.ts.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { runCli, startCliServer, type CliServer } from './cli-helpers.ts';
import { tempDir } from './store-helpers.ts';

const ADMIN = 'cli-test-admin-key-0123456789';
const work = tempDir('cli-work');
let srv: CliServer;
let key: string;

const admin = (args: string[]) => runCli(args, { env: { SOFTSERVE_URL: srv.url, SOFTSERVE_ADMIN_KEY: ADMIN } });
const cli = (args: string[]) => runCli(args, { env: { SOFTSERVE_URL: srv.url, SOFTSERVE_API_KEY: key } });
const jsonOf = (r: { stdout: string }) => JSON.parse(r.stdout);

before(async () => {
  srv = await startCliServer(join(work, 'data'), { SOFTSERVE_ADMIN_KEY: ADMIN });
  const r = await admin(['tenants', 'create', 'clico', '-q']);
  assert.equal(r.code, 0, r.stderr);
  key = r.stdout.trim();
});
after(async () => {
  await srv.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('help', () => {
  it('softserve --help lists every command and the global options', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['serve', 'tenants', 'keys', 'tasks', 'prompts', 'ensembles', 'train', 'classify', 'jobs', 'admin']) assert.match(r.stdout, new RegExp(`^  ${c}\\b`, 'm'), c);
    for (const o of ['--url', '--key', '--json']) assert.ok(r.stdout.includes(o), o);
    assert.match(r.stdout, /Exit codes: 0 ok, 1 server or runtime error, 2 usage error/);
  });

  it('each group lists its subcommands, each command its options', async () => {
    const expected: Array<[string[], string[]]> = [
      [['tenants'], ['create', 'ls', 'rm']],
      [['keys'], ['create', 'ls', 'revoke']],
      [['tasks'], ['create', 'ls', 'show', 'rm']],
      [['prompts'], ['push', 'pull', 'ls', 'show', 'rm', 'inspect']],
      [['ensembles'], ['create', 'ls', 'rm']],
      [['jobs'], ['ls', 'show', 'cancel']],
      [['admin'], ['rotate-key']],
      [['train'], ['--task', '--method', '--ensemble', '--follow', '--epochs', '--validation', '--options']],
      [['classify'], ['--file', '--prompt', '--ensemble', '--batch-size', '--concurrency', '--max-retries']],
      [['serve'], ['--port', '--host', '--data-dir', '--model-dir']],
      [['tasks', 'create'], ['--labels', '--label-words', '--template', '--head']],
      [['prompts', 'inspect'], ['name[@version]', '--k']],
    ];
    const results = await Promise.all(expected.map(([cmd]) => runCli([...cmd, '--help'])));
    expected.forEach(([cmd, words], i) => {
      const r = results[i]!;
      assert.equal(r.code, 0, `${cmd.join(' ')} --help`);
      assert.match(r.stdout, new RegExp(`^Usage: softserve ${cmd.join(' ')}`, 'm'));
      for (const w of words) assert.ok(r.stdout.includes(w), `${cmd.join(' ')} --help lists ${w}:\n${r.stdout}`);
      assert.ok(r.stdout.includes('Global Options'), 'global options shown');
    });
  });
});

describe('usage errors exit 2', () => {
  it('unknown commands and options, missing arguments, bad values, missing keys', async () => {
    const cases: Array<[string[], RegExp, Record<string, string>?]> = [
      [['frobnicate'], /unknown command/],
      [['tasks', 'ls', '--bogus'], /unknown option/],
      [['tasks', 'create'], /missing required argument/],
      [['tenants'], /Usage: softserve tenants/],
      [['classify', 'sentiment'], /nothing to classify/],
      [['prompts', 'pull', 'p@two', 'dir', '--task', 't'], /a prompt is NAME or NAME@VERSION/],
      [['train', 'x.jsonl', '--task', 't', '--method', 'magic'], /--method must be one of/],
      [['prompts', 'ls'], /which task\?/],
    ];
    const env = { SOFTSERVE_URL: srv.url, SOFTSERVE_API_KEY: key };
    const results = await Promise.all(cases.map(([args, , e]) => runCli(args, { env: e ?? env })));
    cases.forEach(([args, re], i) => {
      assert.equal(results[i]!.code, 2, `${args.join(' ')}: ${results[i]!.stderr}`);
      assert.match(results[i]!.stderr, re, args.join(' '));
    });
    const noKey = await runCli(['tasks', 'ls'], { env: { SOFTSERVE_URL: srv.url } });
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /SOFTSERVE_API_KEY/);
    const noAdmin = await runCli(['tenants', 'ls'], { env: { SOFTSERVE_URL: srv.url } });
    assert.equal(noAdmin.code, 2);
    assert.match(noAdmin.stderr, /SOFTSERVE_ADMIN_KEY/);
  });

  it('an unreachable server is a runtime error (exit 1) that says so', async () => {
    const r = await runCli(['tasks', 'ls', '--url', 'http://127.0.0.1:1', '--key', 'ss_x']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach http:\/\/127\.0\.0\.1:1/);
  });
});

describe('tenants and keys (admin key)', () => {
  it('create, ls, keys create/ls/revoke, rm; --json; server errors print code and message', async () => {
    const made = await admin(['tenants', 'create', 'other', '--json']);
    assert.equal(made.code, 0, made.stderr);
    const t = jsonOf(made);
    assert.equal(t.name, 'other');
    assert.match(t.api_key, /^ss_/);
    const human = await admin(['tenants', 'ls']);
    assert.match(human.stdout, /^ID\s+NAME\s+CREATED/m);
    assert.match(human.stdout, new RegExp(`${t.id}\\s+other`));

    const dup = await admin(['tenants', 'create', 'other']);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /error CONFLICT \(HTTP 409\): a tenant named "other" already exists/);

    const k2 = await admin(['keys', 'create', 'other', '--json']);
    assert.equal(k2.code, 0, k2.stderr);
    const second = jsonOf(k2);
    const listed = jsonOf(await admin(['keys', 'ls', t.id, '--json']));
    assert.deepEqual(listed.keys.map((k: { id: string }) => k.id).sort(), [t.key.id, second.key.id].sort());
    const useKey = (k: string) => runCli(['tasks', 'ls', '--json'], { env: { SOFTSERVE_URL: srv.url, SOFTSERVE_API_KEY: k } });
    assert.equal((await useKey(second.api_key)).code, 0);
    const revoked = await admin(['keys', 'revoke', 'other', second.key.id]);
    assert.equal(revoked.code, 0, revoked.stderr);
    const refused = await useKey(second.api_key);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /error UNAUTHORIZED \(HTTP 401\)/);
    assert.equal((await useKey(t.api_key)).code, 0, 'the first key still works');

    // A tenant key on an admin command: the server's 403 is printed.
    const forbidden = await runCli(['tenants', 'ls'], { env: { SOFTSERVE_URL: srv.url, SOFTSERVE_ADMIN_KEY: t.api_key } });
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /FORBIDDEN \(HTTP 403\)/);

    assert.equal((await admin(['tenants', 'rm', 'other'])).code, 0);
    const gone = await admin(['tenants', 'rm', t.id]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /NOT_FOUND \(HTTP 404\)/);
  });
});

describe('tasks', () => {
  it('create (verbalizer and head), ls, show, rm', async () => {
    const made = await cli(['tasks', 'create', 'sentiment', '--labels', 'negative,positive', '--label-words', 'sad,happy', '--template', '{text} It was', '--json']);
    assert.equal(made.code, 0, made.stderr);
    assert.deepEqual(jsonOf(made).scoring, { type: 'verbalizer', label_words: ['sad', 'happy'] });
    const head = await cli(['tasks', 'create', 'topics', '--labels', 'a,b,c', '--head', '--pooling', 'mean']);
    assert.equal(head.code, 0, head.stderr);
    assert.match(head.stdout, /task topics: labels a, b, c; .*head \(mean pooling\)/);
    const bad = await cli(['tasks', 'create', 'bad', '--labels', 'a,b', '--label-words', 'x,y', '--template', 'no slot']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error INVALID_TASK \(HTTP 422\)/);
    const ls = jsonOf(await cli(['tasks', 'ls', '--json']));
    assert.deepEqual(ls.tasks.map((t: { name: string }) => t.name).sort(), ['sentiment', 'topics']);
    const show = await cli(['tasks', 'show', 'sentiment']);
    assert.match(show.stdout, /labels:\s+negative, positive/);
    assert.match(show.stdout, /scoring:\s+verbalizer sad, happy/);
    assert.equal((await cli(['tasks', 'rm', 'topics'])).code, 0);
    const missing = await cli(['tasks', 'show', 'topics']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /error NOT_FOUND \(HTTP 404\): no task "topics"/);
  });
});
