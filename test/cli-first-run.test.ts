// First run, through the real CLI and the real server it starts: with no
// SOFTSERVE_ADMIN_KEY and a fresh data directory the server makes an admin
// key, prints it once on stderr (never in the logs on stdout) with the next
// command, and keeps only its hash; a restart does not print it again and the
// key still works; `softserve admin rotate-key` replaces it; the environment
// key keeps working beside the stored one.

import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { runCli, startCliServer } from './cli-helpers.ts';
import { tempDir } from './store-helpers.ts';

const dataDir = tempDir('cli-first-run');
after(() => rmSync(dataDir, { recursive: true, force: true }));

test('first run prints an admin key once; it survives a restart; rotate-key replaces it', async () => {
  const first = await startCliServer(dataDir);
  let key: string;
  try {
    const m = /export SOFTSERVE_ADMIN_KEY=(ssa_[A-Za-z0-9_-]+)/.exec(first.stderr());
    assert.ok(m, `no admin key on stderr:\n${first.stderr()}`);
    key = m[1]!;
    assert.match(first.stderr(), /npx softserve tenants create/, 'says the next command');
    assert.ok(!first.stdout().includes(key), 'the key is not in the logs');

    const made = await runCli(['tenants', 'create', 'acme', '--json'], { env: { SOFTSERVE_URL: first.url, SOFTSERVE_ADMIN_KEY: key } });
    assert.equal(made.code, 0, made.stderr);
    assert.equal(JSON.parse(made.stdout).name, 'acme');
  } finally {
    await first.stop();
  }
  // Only the hash is stored.
  const db = readFileSync(join(dataDir, 'softserve.db'));
  assert.ok(!db.includes(Buffer.from(key)), 'the key itself is not in the database file');

  const second = await startCliServer(dataDir);
  try {
    assert.ok(!second.stderr().includes(key), 'not printed again');
    assert.doesNotMatch(second.stderr(), /SOFTSERVE_ADMIN_KEY=ssa_/);
    assert.match(second.stderr(), /softserve admin rotate-key --data-dir/, 'says how to rotate it');
    assert.ok(!second.stdout().includes(key));
    const ls = await runCli(['tenants', 'ls', '--json'], { env: { SOFTSERVE_URL: second.url, SOFTSERVE_ADMIN_KEY: key } });
    assert.equal(ls.code, 0, ls.stderr);
    assert.deepEqual(JSON.parse(ls.stdout).tenants.map((t: { name: string }) => t.name), ['acme']);

    // Rotation works on the data directory while the server runs: the old key stops, the new one works.
    const rotated = await runCli(['admin', 'rotate-key', '--data-dir', dataDir, '-q']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const newKey = rotated.stdout.trim();
    assert.match(newKey, /^ssa_/);
    const old = await runCli(['tenants', 'ls'], { env: { SOFTSERVE_URL: second.url, SOFTSERVE_ADMIN_KEY: key } });
    assert.equal(old.code, 1);
    assert.match(old.stderr, /UNAUTHORIZED \(HTTP 401\)/);
    const fresh = await runCli(['tenants', 'ls', '--key', newKey, '--url', second.url]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(fresh.stdout, /acme/);
  } finally {
    await second.stop();
  }
  assert.ok(!readFileSync(join(dataDir, 'softserve.db')).includes(Buffer.from(key)));
});

test('SOFTSERVE_ADMIN_KEY keeps working, beside a stored key, and then no key is made or printed', async () => {
  const envKey = 'cli-env-admin-key-0123456789';
  const dir = tempDir('cli-env-key');
  try {
    const s = await startCliServer(dir, { SOFTSERVE_ADMIN_KEY: envKey });
    try {
      assert.doesNotMatch(s.stderr(), /ssa_/, 'no key made when the environment gives one');
      const ok = await runCli(['tenants', 'create', 'envco', '-q'], { env: { SOFTSERVE_URL: s.url, SOFTSERVE_ADMIN_KEY: envKey } });
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout.trim(), /^ss_/);
      // A made-up stored-style key is refused.
      const bad = await runCli(['tenants', 'ls', '--key', 'ssa_not-a-real-key', '--url', s.url]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /UNAUTHORIZED/);
    } finally {
      await s.stop();
    }
    // A stored key made later (rotate-key) works beside the environment one.
    const rotated = await runCli(['admin', 'rotate-key', '--data-dir', dir, '--json']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const stored = JSON.parse(rotated.stdout).api_key as string;
    const s2 = await startCliServer(dir, { SOFTSERVE_ADMIN_KEY: envKey });
    try {
      for (const k of [envKey, stored]) {
        const r = await runCli(['tenants', 'ls', '--key', k, '--url', s2.url]);
        assert.equal(r.code, 0, r.stderr);
      }
    } finally {
      await s2.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rotate-key on a directory with no database is a runtime error, not a new database', async () => {
  const dir = tempDir('cli-no-db');
  try {
    const r = await runCli(['admin', 'rotate-key', '--data-dir', dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no softserve database/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
