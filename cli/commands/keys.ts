// softserve keys create|ls|revoke: a tenant's API keys (admin key).

import type { Command } from 'commander';

import { seg } from '../client.ts';
import { adminClient, out, printJson, printTable, wantsJson } from '../context.ts';
import { tenantId } from './tenants.ts';

interface KeyView { id: string; prefix: string; created_at: string; revoked_at: string | null }

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description("a tenant's API keys (admin key)");

  keys.command('create').description('make another API key for a tenant (shown this once)')
    .argument('<tenant>', 'tenant id or name')
    .option('-q, --quiet', 'print only the API key')
    .action(async (tenant: string, opts: { quiet?: boolean }, cmd: Command) => {
      const client = adminClient(cmd);
      const r = await client.json('POST', `/v1/tenants/${seg(await tenantId(client, tenant))}/keys`);
      if (wantsJson(cmd)) return printJson(r);
      if (opts.quiet) return out(r.api_key);
      out(`key ${r.key.id} (shown this once): ${r.api_key}`);
    });

  keys.command('ls').description("list a tenant's keys (prefixes only: keys are kept hashed)")
    .argument('<tenant>', 'tenant id or name')
    .action(async (tenant: string, _opts: unknown, cmd: Command) => {
      const client = adminClient(cmd);
      const r = await client.json<{ keys: KeyView[] }>('GET', `/v1/tenants/${seg(await tenantId(client, tenant))}/keys`);
      if (wantsJson(cmd)) return printJson(r);
      printTable(['ID', 'PREFIX', 'CREATED', 'REVOKED'], r.keys.map((k) => [k.id, `${k.prefix}…`, k.created_at, k.revoked_at]));
    });

  keys.command('revoke').description('revoke a key; it stops working at once')
    .argument('<tenant>', 'tenant id or name')
    .argument('<key-id>', 'key id (key_…), from keys ls')
    .action(async (tenant: string, keyId: string, _opts: unknown, cmd: Command) => {
      const client = adminClient(cmd);
      await client.json('DELETE', `/v1/tenants/${seg(await tenantId(client, tenant))}/keys/${seg(keyId)}`);
      if (wantsJson(cmd)) return printJson({ revoked: keyId });
      out(`revoked ${keyId}`);
    });
}
