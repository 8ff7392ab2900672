// softserve tenants create|ls|rm (admin key).

import type { Command } from 'commander';

import { seg, type Client } from '../client.ts';
import { adminClient, out, printJson, printTable, wantsJson } from '../context.ts';

interface TenantView { id: string; name: string; created_at: string }

/** A tenant given by id (ten_…) or by name. */
export async function tenantId(client: Client, idOrName: string): Promise<string> {
  if (idOrName.startsWith('ten_')) return idOrName;
  const { tenants } = await client.json<{ tenants: TenantView[] }>('GET', '/v1/tenants');
  const t = tenants.find((x) => x.name === idOrName);
  return t ? t.id : idOrName; // unknown: let the server answer 404
}

export function registerTenants(program: Command): void {
  const tenants = program.command('tenants').description('tenants and their first key (admin key)');

  tenants.command('create').description('make a tenant; prints its API key (shown this once)')
    .argument('<name>', 'tenant name')
    .option('-q, --quiet', 'print only the API key (for $(...))')
    .action(async (name: string, opts: { quiet?: boolean }, cmd: Command) => {
      const t = await adminClient(cmd).json('POST', '/v1/tenants', { json: { name } });
      if (wantsJson(cmd)) return printJson(t);
      if (opts.quiet) return out(t.api_key);
      out(`tenant ${t.name} (${t.id})`);
      out(`API key (shown this once): ${t.api_key}`);
      out('');
      out(`  export SOFTSERVE_API_KEY=${t.api_key}`);
    });

  tenants.command('ls').description('list tenants')
    .action(async (_opts: unknown, cmd: Command) => {
      const r = await adminClient(cmd).json<{ tenants: TenantView[] }>('GET', '/v1/tenants');
      if (wantsJson(cmd)) return printJson(r);
      printTable(['ID', 'NAME', 'CREATED'], r.tenants.map((t) => [t.id, t.name, t.created_at]));
    });

  tenants.command('rm').description('delete a tenant with its keys, tasks, prompts, ensembles and jobs')
    .argument('<tenant>', 'tenant id or name')
    .action(async (tenant: string, _opts: unknown, cmd: Command) => {
      const client = adminClient(cmd);
      const id = await tenantId(client, tenant);
      await client.json('DELETE', `/v1/tenants/${seg(id)}`);
      if (wantsJson(cmd)) return printJson({ deleted: id });
      out(`deleted tenant ${id}`);
    });
}
