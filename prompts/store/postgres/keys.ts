// API keys (a tenant's, hashed) and the stored admin key in PostgreSQL. Only
// sha256 hashes are kept; a key is shown once, when made.

import { randomBytes, timingSafeEqual } from 'node:crypto';

import { SoftserveError } from '../../../kernels/errors.ts';
import type { ApiKeyInfo, KeyStore, NewApiKey, StoredAdminKey, Tenant } from '../index.ts';
import { hashKey, now, type PgContext } from './context.ts';
import type { Queryable } from './db.ts';

const ADMIN_KEY_PREFIX = 'ssa_';
/** Serializes admin key changes across replicas (transaction-level advisory lock; any constant, distinct from the migrations'). */
const ADMIN_KEY_LOCK = '7237455413212201';

/** Inserts a new key for a tenant (inside the caller's transaction). */
export async function insertKey(db: Queryable, tenantId: string): Promise<NewApiKey> {
  const apiKey = `ss_${randomBytes(32).toString('base64url')}`;
  const key: ApiKeyInfo = { id: `key_${randomBytes(6).toString('hex')}`, tenantId, prefix: apiKey.slice(0, 10), createdAt: now(), revokedAt: null };
  await db.query('INSERT INTO api_keys (id, tenant_id, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5)',
    [key.id, tenantId, hashKey(apiKey), key.prefix, key.createdAt]);
  return { apiKey, key };
}

interface KeyRow { id: string; tenant_id: string; prefix: string; created_at: string; revoked_at: string | null }

export class PgKeyStore implements KeyStore {
  constructor(private readonly c: PgContext) {}

  async create(tenantId: string): Promise<NewApiKey> {
    return this.c.tx(async (db) => {
      await this.c.requireTenant(db, tenantId, 'FOR KEY SHARE');
      return insertKey(db, tenantId);
    });
  }

  async list(tenantId: string): Promise<ApiKeyInfo[]> {
    await this.c.requireTenant(this.c.pool, tenantId);
    const r = await this.c.pool.query<KeyRow>('SELECT id, tenant_id, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, id', [tenantId]);
    return r.rows.map((k) => ({ id: k.id, tenantId: k.tenant_id, prefix: k.prefix, createdAt: k.created_at, revokedAt: k.revoked_at }));
  }

  async revoke(tenantId: string, keyId: string): Promise<void> {
    const res = await this.c.pool.query('UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL', [now(), keyId, tenantId]);
    if (res.rowCount === 0) throw new SoftserveError('NOT_FOUND', `no active key ${JSON.stringify(keyId)} for tenant ${JSON.stringify(tenantId)}`);
  }

  async authenticate(apiKey: string): Promise<Tenant | null> {
    if (typeof apiKey !== 'string' || apiKey.length === 0 || apiKey.length > 512) return null;
    const r = await this.c.pool.query<{ id: string; name: string; created_at: string }>(`
      SELECT t.id, t.name, t.created_at FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
      WHERE k.key_hash = $1 AND k.revoked_at IS NULL`, [hashKey(apiKey)]);
    const row = r.rows[0];
    return row ? { id: row.id, name: row.name, createdAt: row.created_at } : null;
  }

  private async active(db: Queryable): Promise<StoredAdminKey | null> {
    const r = await db.query<{ id: string; prefix: string; created_at: string }>(
      'SELECT id, prefix, created_at FROM admin_keys WHERE revoked_at IS NULL ORDER BY created_at DESC LIMIT 1');
    const row = r.rows[0];
    return row ? { id: row.id, prefix: row.prefix, createdAt: row.created_at } : null;
  }

  private async rotate(db: Queryable): Promise<{ apiKey: string; key: StoredAdminKey }> {
    const apiKey = `${ADMIN_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
    const key: StoredAdminKey = { id: `adm_${randomBytes(6).toString('hex')}`, prefix: apiKey.slice(0, 10), createdAt: now() };
    await db.query('UPDATE admin_keys SET revoked_at = $1 WHERE revoked_at IS NULL', [key.createdAt]);
    await db.query('INSERT INTO admin_keys (id, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4)', [key.id, hashKey(apiKey), key.prefix, key.createdAt]);
    return { apiKey, key };
  }

  async activeAdminKey(): Promise<StoredAdminKey | null> {
    return this.active(this.c.pool);
  }

  async rotateAdminKey(): Promise<{ apiKey: string; key: StoredAdminKey }> {
    return this.c.tx(async (db) => {
      await db.query('SELECT pg_advisory_xact_lock($1)', [ADMIN_KEY_LOCK]);
      return this.rotate(db);
    });
  }

  async ensureAdminKey(): Promise<{ apiKey: string; key: StoredAdminKey } | null> {
    // The lock makes check-then-insert atomic across replicas: two starts cannot both make one.
    return this.c.tx(async (db) => {
      await db.query('SELECT pg_advisory_xact_lock($1)', [ADMIN_KEY_LOCK]);
      return (await this.active(db)) ? null : this.rotate(db);
    });
  }

  async isAdminKey(token: string): Promise<boolean> {
    if (typeof token !== 'string' || !token.startsWith(ADMIN_KEY_PREFIX) || token.length > 512) return false;
    const want = hashKey(token);
    const r = await this.c.pool.query<{ key_hash: string }>('SELECT key_hash FROM admin_keys WHERE revoked_at IS NULL');
    return r.rows.some((row) => timingSafeEqual(Buffer.from(row.key_hash), Buffer.from(want)));
  }
}
