// The configuration: one reader for every SOFTSERVE_* variable, a clear error
// naming a bad one, and the README's configuration table listing every
// variable the product's code reads (server, domain, engine and CLI).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { DEFAULT_CONFIG, DEFAULT_TRAINING_CONFIG, loadSettings } from '../server/config.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PRODUCT_DIRS = ['server', 'prompts', 'models', 'kernels', 'cli'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'node_modules' ? [] : sources(path);
    return /\.(ts|mjs|js)$/.test(name) ? [path] : [];
  });
}

test('every SOFTSERVE_* variable the code reads is in the README configuration table', () => {
  const used = new Set<string>();
  for (const dir of PRODUCT_DIRS) {
    for (const file of sources(join(ROOT, dir))) {
      // Full names only: `SOFTSERVE_ADMIT_*` in a comment is a family, not a variable.
      for (const m of readFileSync(file, 'utf8').matchAll(/SOFTSERVE_[A-Z0-9_]*[A-Z0-9]\b(?!_?\*)/g)) used.add(m[0]);
    }
  }
  assert.ok(used.size >= 60, `found only ${used.size} variables: is the scan looking in the right place?`);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('\n## ', readme.indexOf('## Configuration') + 1));
  const documented = new Set([...section.matchAll(/^\| `(SOFTSERVE_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]!));
  const missing = [...used].filter((v) => !documented.has(v)).sort();
  assert.deepEqual(missing, [], `variables read by the code but not in the README table: ${missing.join(', ')}`);
  const stale = [...documented].filter((v) => !used.has(v)).sort();
  assert.deepEqual(stale, [], `variables in the README table that no code reads: ${stale.join(', ')}`);
});

test('settings are read once into one object; unset and empty mean the default', () => {
  const s = loadSettings({ SOFTSERVE_PORT: '', SOFTSERVE_MAX_LABELS: '12', SOFTSERVE_BATCH_POLICY: 'single', SOFTSERVE_TRAINING: 'OFF', SOFTSERVE_TRAINING_TENANT_SECONDS: '0.5' });
  assert.equal(s.server.port, DEFAULT_CONFIG.port);
  assert.equal(s.server.maxLabels, 12);
  assert.equal(s.serving.scheduler.policy, 'single');
  assert.equal(s.training.enabled, false);
  assert.equal(s.training.tenantSeconds, 0.5);
  assert.equal(s.training.maxActive, DEFAULT_TRAINING_CONFIG.maxActive);
  // The admission budget follows the queue bounds unless it is set itself.
  assert.equal(loadSettings({ SOFTSERVE_QUEUE_MAX_ROWS: '77' }).serving.admission.maxRows, 77);
  // Node needs headersTimeout <= requestTimeout.
  assert.equal(loadSettings({ SOFTSERVE_HEADERS_TIMEOUT_MS: '9000', SOFTSERVE_REQUEST_TIMEOUT_MS: '5000' }).serving.http.headersTimeoutMs, 5000);
});

test('a bad value fails the start with a message naming the variable', () => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ SOFTSERVE_MAX_LABELS: '1' }, /^Error: SOFTSERVE_MAX_LABELS must be an integer >= 2, got "1"$/],
    [{ SOFTSERVE_PORT: 'http' }, /SOFTSERVE_PORT must be an integer in \[0, 65535\]/],
    // The value is not echoed: a database URL may hold a password.
    [{ SOFTSERVE_DATABASE_URL: 'mysql://u:hunter2@db/x' }, /^Error: SOFTSERVE_DATABASE_URL must be a URL starting with postgres:\/\/ or postgresql:\/\/$/],
    [{ SOFTSERVE_TRAINING_NICE: '20' }, /SOFTSERVE_TRAINING_NICE must be an integer in \[0, 19\], got "20"/],
    [{ SOFTSERVE_REFUSAL_DELAY_MS: '1.5' }, /SOFTSERVE_REFUSAL_DELAY_MS must be an integer/],
    [{ SOFTSERVE_BATCH_POLICY: 'fifo' }, /SOFTSERVE_BATCH_POLICY must be cross-tenant, per-tenant or single, got "fifo"/],
    [{ SOFTSERVE_TRAINING_TENANT_WINDOW_SECONDS: '0' }, /SOFTSERVE_TRAINING_TENANT_WINDOW_SECONDS must be a number of seconds >= 1/],
    [{ SOFTSERVE_ADMIN_KEY: 'short' }, /SOFTSERVE_ADMIN_KEY must be at least 16 characters/],
    [{ SOFTSERVE_KEEPALIVE_TIMEOUT_MS: '10' }, /SOFTSERVE_KEEPALIVE_TIMEOUT_MS must be an integer >= 100/],
  ];
  for (const [env, message] of bad) assert.throws(() => loadSettings(env), (err: Error) => message.test(String(err)), JSON.stringify(env));
});
