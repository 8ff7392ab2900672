// API keys (a tenant's, hashed) and the stored admin key (made on first run,
// rotated by `softserve admin rotate-key`; see server/first-run.ts) in SQLite.
// Only sha256 hashes are kept; a key is shown once, when made.

import { randomBytes, timingSafeEqual } from 'node:crypto';

import { SoftserveError } from '../../../kernels/errors.ts';
import type { ApiKeyInfo, KeyStore, NewApiKey, StoredAdminKey, Tenant } from '../index.ts';
import { hashKey, now, type SqliteContext } from './context.ts';

const ADMIN_KEY_PREFIX = 'ssa_';

/** Inserts a new key for a tenant (inside the caller's transaction). */
export function insertKey(c: SqliteContext, tenantId: string): NewApiKey {
  const apiKey = `ss_${randomBytes(32).toString('base64url')}`;
  const key: ApiKeyInfo = { id: `key_${randomBytes(6).toString('hex')}`, tenantId, prefix: apiKey.slice(0, 10), createdAt: now(), revokedAt: null };
  c.sql('INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)')
    .run(key.id, tenantId, hashKey(apiKey), key.prefix, key.createdAt);
  return { apiKey, key };
}

export class SqliteKeyStore implements KeyStore {
  constructor(private readonly c: SqliteContext) {}

  async create(tenantId: string): Promise<NewApiKey> {
    return this.c.tx(() => {
      this.c.requireTenant(tenantId);
      return insertKey(this.c, tenantId);
    });
  }

  async list(tenantId: string): Promise<ApiKeyInfo[]> {
    this.c.requireTenant(tenantId);
    const rows = this.c.sql('SELECT id, tenant_id, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id').all(tenantId) as Array<{ id: string; tenant_id: string; prefix: string; created_at: string; revoked_at: string | null }>;
    return rows.map((r) => ({ id: r.id, tenantId: r.tenant_id, prefix: r.prefix, createdAt: r.created_at, revokedAt: r.revoked_at }));
  }

  async revoke(tenantId: string, keyId: string): Promise<void> {
    const res = this.c.sql('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL').run(now(), keyId, tenantId);
    if (res.changes === 0) throw new SoftserveError('NOT_FOUND', `no active key ${JSON.stringify(keyId)} for tenant ${JSON.stringify(tenantId)}`);
  }

  async authenticate(apiKey: string): Promise<Tenant | null> {
    if (typeof apiKey !== 'string' || apiKey.length === 0 || apiKey.length > 512) return null;
    const r = this.c.sql(`
      SELECT t.id, t.name, t.created_at FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
      WHERE k.key_hash = ? AND k.revoked_at IS NULL`).get(hashKey(apiKey)) as { id: string; name: string; created_at: string } | undefined;
    return r ? { id: r.id, name: r.name, createdAt: r.created_at } : null;
  }

  private activeAdminKeySync(): StoredAdminKey | null {
    const r = this.c.sql('SELECT id, prefix, created_at FROM admin_keys WHERE revoked_at IS NULL ORDER BY created_at DESC LIMIT 1')
      .get() as { id: string; prefix: string; created_at: string } | undefined;
    return r ? { id: r.id, prefix: r.prefix, createdAt: r.created_at } : null;
  }

  private rotateSync(): { apiKey: string; key: StoredAdminKey } {
    const apiKey = `${ADMIN_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
    const key: StoredAdminKey = { id: `adm_${randomBytes(6).toString('hex')}`, prefix: apiKey.slice(0, 10), createdAt: now() };
    this.c.sql('UPDATE admin_keys SET revoked_at = ? WHERE revoked_at IS NULL').run(key.createdAt);
    this.c.sql('INSERT INTO admin_keys (id, key_hash, prefix, created_at) VALUES (?, ?, ?, ?)').run(key.id, hashKey(apiKey), key.prefix, key.createdAt);
    return { apiKey, key };
  }

  async activeAdminKey(): Promise<StoredAdminKey | null> {
    return this.activeAdminKeySync();
  }

  async rotateAdminKey(): Promise<{ apiKey: string; key: StoredAdminKey }> {
    return this.c.tx(() => this.rotateSync());
  }

  async ensureAdminKey(): Promise<{ apiKey: string; key: StoredAdminKey } | null> {
    return this.c.tx(() => (this.activeAdminKeySync() ? null : this.rotateSync()));
  }

  async isAdminKey(token: string): Promise<boolean> {
    if (typeof token !== 'string' || !token.startsWith(ADMIN_KEY_PREFIX) || token.length > 512) return false;
    const want = hashKey(token);
    const rows = this.c.sql('SELECT key_hash FROM admin_keys WHERE revoked_at IS NULL').all() as Array<{ key_hash: string }>;
    return rows.some((r) => timingSafeEqual(Buffer.from(r.key_hash), Buffer.from(want)));
  }
}
