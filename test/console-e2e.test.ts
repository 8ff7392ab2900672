// The web console end to end: a real server on 127.0.0.1 (stories260k), real
// headless Chromium (Debian's package, driven by playwright-core). The admin
// signs in and makes a tenant; the tenant signs in in another tab, makes a
// task, uploads a PEFT prompt and inspects its nearest tokens, trains an
// ensemble from a JSONL upload, watches a longer job's curve grow, hits the
// per-tenant job limit (429 with Retry-After), cancels, classifies in the
// playground; the admin reads usage, makes a key and revokes the first one,
// which sends the tenant's tab back to sign-in (401); then sign out.
// Screenshots of each page go to test-artifacts/console/ (git-ignored).
//
// Chromium missing is a failure with the command that installs it, never a skip.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

import { buildPeft, SPEC } from './peft-builders.ts';
import { peftForm } from './store-helpers.ts';
import { ADMIN_KEY, startServingServer, type ServingTestServer } from './serving-helpers.ts';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = fileURLToPath(new URL('../test-artifacts/console/', import.meta.url));
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

// One active training job per tenant, so a second submission is refused with 429.
process.env.SOFTSERVE_TRAINING_MAX_ACTIVE_PER_TENANT = '1';

let srv: ServingTestServer;
let browser: BrowserContext;
let profile: string;
const problems: string[] = [];

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: the console test needs Debian's chromium (apt-get update && apt-get install -y chromium; .ci/run does this)`);
  mkdirSync(SHOTS, { recursive: true });
  srv = await startServingServer();
  profile = mkdtempSync(join(tmpdir(), 'softserve-chromium-'));
  browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1280, height: 900 } });
});

after(async () => {
  await browser?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await srv?.close();
});

async function newTab(): Promise<Page> {
  const page = await browser.newPage();
  page.setDefaultTimeout(30_000);
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    // Chromium logs every 4xx fetch as "Failed to load resource"; the console answers those itself.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(`console error: ${msg.text()}`);
  });
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function points(page: Page): Promise<number> {
  return Number(await page.locator('#chart').getAttribute('data-points'));
}

/** Stories-like sentences the 260k-parameter model knows the words of. */
function examples(n: number): string {
  const names = ['Tom', 'Lily', 'Ben', 'Sue', 'Max', 'Mia', 'Sam', 'Anna'];
  const good = ['was happy and played in the park', 'smiled and hugged his mom', 'had a fun day with the dog', 'loved the big red ball', 'laughed with her friend'];
  const bad = ['was sad and cried', 'lost the toy and was angry', 'fell down and hurt his leg', 'was scared of the dark', 'broke the cup and felt bad'];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const pos = i % 2 === 0;
    const list = pos ? good : bad;
    out.push(JSON.stringify({ text: `${names[i % names.length]} ${list[(i >> 1) % list.length]}.`, label: pos ? 'positive' : 'negative' }));
  }
  return out.join('\n') + '\n';
}

async function jobPageOpened(page: Page): Promise<void> {
  await page.waitForFunction(() => /^#\/jobs\/job_/.test(location.hash));
  await page.locator('#job-summary').waitFor();
}

async function startJob(page: Page, prompt: string, opts: { ensembleSize?: number; ensemble?: string; options: Record<string, unknown>; epochs: number; examples?: number }): Promise<void> {
  await page.goto(`${srv.url}/console/#/jobs`);
  await page.locator('#job-form').waitFor();
  await page.selectOption('#job-task', 'sentiment');
  await page.fill('#job-prompt', prompt);
  await page.selectOption('#job-method', 'prompt_tuning');
  await page.fill('#job-epochs', String(opts.epochs));
  await page.fill('#job-tokens', '4');
  await page.fill('#job-ensemble-size', String(opts.ensembleSize ?? 1));
  if (opts.ensemble) await page.fill('#job-ensemble', opts.ensemble);
  await page.fill('#job-options', JSON.stringify(opts.options));
  await page.setInputFiles('#job-examples', { name: 'train.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(examples(opts.examples ?? 40)) });
  await page.click('#job-form button[type=submit]');
}

test('the console, end to end in headless Chromium', async () => {
  try {
    await walkThrough();
  } catch (err) {
    // What the pages showed when it failed, beside the step screenshots.
    for (const [i, page] of browser.pages().entries()) await page.screenshot({ path: join(SHOTS, `failure-tab${i}.png`), fullPage: true }).catch(() => {});
    throw err;
  }
});

async function walkThrough(): Promise<void> {
  // --- admin: sign in, make a tenant --------------------------------------------------
  const admin = await newTab();
  await admin.goto(`${srv.url}/console`);
  await admin.locator('#signin-form').waitFor();
  assert.match(admin.url(), /#\/signin$/);
  const csp = (await admin.request.get(`${srv.url}/console/`)).headers()['content-security-policy'] ?? '';
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  await shot(admin, '01-signin');

  await admin.fill('#key', ADMIN_KEY);
  await admin.click('#signin-form button[type=submit]');
  await admin.locator('#tenants-table').waitFor();
  await admin.fill('#tenant-name', 'acme');
  await admin.click('#tenant-form button[type=submit]');
  const tenantKey = (await admin.locator('#tenant-key .new-key').textContent())!.trim();
  assert.match(tenantKey, /^ss_/);
  await admin.locator('#tenants-table tr[data-tenant="acme"]').waitFor();
  await shot(admin, '02-admin-tenants');

  // --- tenant: sign in in another tab (sessionStorage is per tab) ---------------------
  const user = await newTab();
  await user.goto(`${srv.url}/console/`);
  await user.fill('#key', tenantKey);
  await user.click('#signin-form button[type=submit]');
  await user.locator('#no-tasks').waitFor();
  assert.equal(await user.locator('#who-name').textContent(), 'tenant acme');

  await user.fill('#task-name', 'sentiment');
  await user.fill('#task-labels', 'negative, positive');
  await user.fill('#task-words', 'sad, happy');
  await user.click('#task-form button[type=submit]');
  await user.locator('#task-summary').waitFor();
  assert.match(user.url(), /#\/tasks\/sentiment$/);

  // Upload a PEFT soft prompt through the form, then its nearest tokens.
  const peft = buildPeft(SPEC, 'PROMPT_TUNING', 4, 7);
  await user.fill('#up-name', 'uploaded');
  await user.setInputFiles('#up-config', { name: 'adapter_config.json', mimeType: 'application/json', buffer: Buffer.from(peft.config) });
  await user.setInputFiles('#up-model', { name: 'adapter_model.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(peft.model) });
  await user.click('#upload-form button[type=submit]');
  await user.locator('#versions-table tr[data-version="1"]').waitFor();
  await user.locator('#inspect-tokens tbody tr').first().waitFor();
  assert.equal(await user.locator('#inspect-tokens tbody tr').count(), 4);
  assert.equal(await user.locator('#inspect-tokens tbody tr').first().locator('.tok').count(), 5);
  await user.fill('#inspect-k', '3');
  await user.click('#inspect-form button[type=submit]');
  await user.waitForFunction(() => document.querySelectorAll('#inspect-tokens tbody tr:first-child .tok').length === 3);
  await shot(user, '03-prompt-inspect');

  // A prefix (uploaded through the API) shows key and value norms per layer.
  const prefix = buildPeft(SPEC, 'PREFIX_TUNING', 3, 9);
  const up = await fetch(`${srv.url}/v1/tasks/sentiment/prompts`, { method: 'POST', headers: { authorization: `Bearer ${tenantKey}` }, body: peftForm('prefixed', prefix) });
  assert.equal(up.status, 201);
  await user.goto(`${srv.url}/console/#/tasks/sentiment/prompts/prefixed`);
  await user.locator('#inspect-layers tbody tr').first().waitFor();
  assert.equal(await user.locator('#inspect-layers tbody tr').count(), SPEC.numLayers);
  await shot(user, '03b-prefix-inspect');

  // --- a small ensemble job from a JSONL upload, to completion ------------------------
  await startJob(user, 'mood', { ensembleSize: 2, ensemble: 'moods', epochs: 3, options: { batch_size: 8, seed: 1 } });
  await jobPageOpened(user);
  await user.locator('#job-state[data-state="succeeded"]').waitFor({ timeout: 60_000 });
  assert.ok(await points(user) > 0, 'the finished job has a curve');
  await user.locator('#job-result tr', { hasText: 'mood-2' }).waitFor();
  await shot(user, '04-job-succeeded');

  // --- a long job: watch the curve grow, then 429 on a second job, then cancel -------
  await startJob(user, 'marathon', { epochs: 100, examples: 200, options: { batch_size: 1, patience: 0, eval_every: 20 } });
  await jobPageOpened(user);
  const longJob = user.url();
  await user.locator('#job-state[data-state="running"]').waitFor();
  await user.waitForFunction(() => Number(document.querySelector('#chart')?.getAttribute('data-points')) >= 2);
  const before = await points(user);
  const stepBefore = await user.locator('#job-step').textContent();
  await user.waitForFunction((n) => Number(document.querySelector('#chart')?.getAttribute('data-points')) > n, before);
  assert.notEqual(await user.locator('#job-step').textContent(), stepBefore);
  assert.ok(await user.locator('#chart canvas').count() > 0, 'uPlot drew a canvas');
  await shot(user, '05-job-running');

  await startJob(user, 'another', { epochs: 1, options: {} });
  await user.locator('#job-form .status.error', { hasText: '429 OVERLOADED' }).waitFor();
  assert.match((await user.locator('#job-form .status.error').textContent())!, /retry after 30 s/);
  assert.match((await user.locator('#banner').textContent())!, /Retry after \d+ s/);
  await shot(user, '06-job-429');

  await user.goto(longJob);
  await user.locator('#job-state[data-state="running"]').waitFor();
  await user.click('#job-cancel');
  await user.locator('#job-state[data-state="cancelled"]').waitFor();
  await shot(user, '07-job-cancelled');

  await user.goto(`${srv.url}/console/#/jobs`);
  await user.locator('#jobs-table tbody tr').nth(1).waitFor();
  await shot(user, '08-jobs');

  // --- the task page: prompts with versions and provenance, the job's ensemble --------
  await user.goto(`${srv.url}/console/#/tasks/sentiment`);
  await user.locator('#ensembles-table tr[data-ensemble="moods"]').waitFor();
  assert.match((await user.locator('#ensembles-table tr[data-ensemble="moods"]').textContent())!, /mood-1@latest, mood-2@latest/);
  assert.match((await user.locator('#prompts-table tr[data-prompt="uploaded"]').textContent())!, /soft.*peft \(F32\)/);
  assert.match((await user.locator('#prompts-table tr[data-prompt="mood-1"]').textContent())!, /training/);
  await shot(user, '09-task');

  // --- playground: the ensemble's votes and agreement ---------------------------------
  await user.goto(`${srv.url}/console/#/playground`);
  await user.locator('#pg-use option[value="ensemble:moods"]').waitFor({ state: 'attached' });
  assert.equal(await user.locator('#pg-use').inputValue(), 'ensemble:moods');
  await user.fill('#pg-inputs', 'Tom was happy and played in the park.\nLily was sad and cried.\nThe dog ran.');
  await user.click('#pg-form button[type=submit]');
  await user.locator('#pg-table tbody tr').nth(2).waitFor();
  for (let i = 0; i < 3; i++) {
    const row = user.locator('#pg-table tbody tr').nth(i);
    assert.equal(await row.locator('.vote').count(), 2);
    assert.match((await row.locator('.agreement').textContent())!, /^(50\.0|100\.0)%$/);
    assert.match((await row.locator('.label').textContent())!, /^(negative|positive)$/);
  }
  await shot(user, '10-playground');

  // --- errors the API gives, shown: 404 -----------------------------------------------
  await user.goto(`${srv.url}/console/#/tasks/no-such-task`);
  await user.locator('#not-found', { hasText: 'NOT_FOUND' }).waitFor();
  await shot(user, '11-not-found');

  await user.goto(`${srv.url}/console/#/server`);
  await user.locator('#server-info', { hasText: 'stories260k' }).waitFor();
  assert.ok(await user.locator('#limits-table tbody tr').count() >= 10);
  await shot(user, '12-server');

  // --- admin: usage, a new key, revoke the first ---------------------------------------
  await admin.click('#tenants-table tr[data-tenant="acme"] a');
  await admin.locator('#usage').waitFor();
  assert.equal(await admin.locator('#usage-rows').textContent(), '6', '3 inputs x 2 members');
  assert.ok(Number(await admin.locator('#usage-rejected').textContent()) >= 1, 'the 429 is counted');
  await admin.click('#key-create');
  const secondKey = (await admin.locator('#created-key .new-key').textContent())!.trim();
  const first = admin.locator('#keys-table tbody tr').first();
  await first.locator('button', { hasText: 'Revoke' }).click();
  await first.locator('td', { hasText: /^revoked/ }).waitFor();
  await shot(admin, '13-admin-tenant');

  // The tenant's tab: its key no longer works -> back to sign-in, saying why.
  await user.goto(`${srv.url}/console/#/tasks`);
  await user.locator('#signin-form .status.error', { hasText: 'UNAUTHORIZED' }).waitFor();
  assert.equal(await user.evaluate(() => sessionStorage.length), 0);
  await shot(user, '14-signin-after-401');

  await user.fill('#key', secondKey);
  await user.click('#signin-form button[type=submit]');
  await user.locator('#tasks-table tr[data-task="sentiment"]').waitFor();
  assert.equal(await user.evaluate(() => sessionStorage.length), 1);
  await user.click('#signout');
  await user.locator('#signin-form .status', { hasText: 'Signed out.' }).waitFor();
  assert.equal(await user.evaluate(() => sessionStorage.length), 0);
  await shot(user, '15-signed-out');

  // The key never reached a URL or a log line.
  for (const page of [admin, user]) for (const k of [tenantKey, secondKey, ADMIN_KEY]) assert.ok(!page.url().includes(k));
  const logText = JSON.stringify(srv.logs);
  for (const k of [tenantKey, secondKey, ADMIN_KEY]) assert.ok(!logText.includes(k), 'a key reached the log');
  assert.deepEqual(problems, [], 'no script errors or CSP violations in the console');
}
