// Admin keys kept in the store, beside (not instead of) SOFTSERVE_ADMIN_KEY.
// On a first run with no SOFTSERVE_ADMIN_KEY the server makes one, shows it
// once and keeps only its sha256 here; `softserve admin rotate-key` replaces it
// (revokes every active one, makes a new one). Works on the database alone, so
// the CLI can rotate a lost key with the server running: auth reads this table
// on every admin request.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { Db } from './db.ts';

export interface StoredAdminKey {
  id: string;
  /** The key's first characters, to tell keys apart. */
  prefix: string;
  createdAt: string;
}

const KEY_PREFIX = 'ssa_';

function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** The active stored admin key, if any (there is at most one). */
export function activeAdminKey(db: Db): StoredAdminKey | null {
  const r = db.prepare('SELECT id, prefix, created_at FROM admin_keys WHERE revoked_at IS NULL ORDER BY created_at DESC LIMIT 1')
    .get() as { id: string; prefix: string; created_at: string } | undefined;
  return r ? { id: r.id, prefix: r.prefix, createdAt: r.created_at } : null;
}

/** Revokes every active stored admin key and makes a new one; the key is returned this once. */
export function rotateAdminKey(db: Db): { apiKey: string; key: StoredAdminKey } {
  const apiKey = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  const key: StoredAdminKey = { id: `adm_${randomBytes(6).toString('hex')}`, prefix: apiKey.slice(0, 10), createdAt: new Date().toISOString() };
  db.transaction(() => {
    db.prepare('UPDATE admin_keys SET revoked_at = ? WHERE revoked_at IS NULL').run(key.createdAt);
    db.prepare('INSERT INTO admin_keys (id, key_hash, prefix, created_at) VALUES (?, ?, ?, ?)').run(key.id, hashKey(apiKey), key.prefix, key.createdAt);
  }).immediate();
  return { apiKey, key };
}

/**
 * First run: makes an admin key when the store has none. Returns the new key
 * (to show once) or null when one already exists. One transaction, so two
 * processes starting at once cannot both make one.
 */
export function ensureAdminKey(db: Db): { apiKey: string; key: StoredAdminKey } | null {
  return db.transaction(() => (activeAdminKey(db) ? null : rotateAdminKey(db))).immediate();
}

/** Whether `token` is the active stored admin key (compared by hash, in constant time). */
export function isStoredAdminKey(db: Db, token: string): boolean {
  if (!token.startsWith(KEY_PREFIX) || token.length > 512) return false;
  const want = hashKey(token);
  const rows = db.prepare('SELECT key_hash FROM admin_keys WHERE revoked_at IS NULL').all() as Array<{ key_hash: string }>;
  return rows.some((r) => timingSafeEqual(Buffer.from(r.key_hash), Buffer.from(want)));
}
