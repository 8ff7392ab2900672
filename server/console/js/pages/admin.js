// Admin pages (the admin key): tenants (create, delete), a tenant's keys
// (create: shown once; revoke) and its usage since the server started.

import { api, enc } from '../api.js';
import { fmt, formValues, h, statusLine, table } from '../dom.js';
import { kv } from './tasks.js';

function secretBox(id, text, key) {
  return h('div', { class: 'secret', id },
    h('div', { class: 'small' }, text),
    h('code', { class: 'new-key' }, key),
    h('div', { class: 'small muted' }, 'Shown once: the server keeps only its hash.'));
}

export async function tenantsPage(root, _params, ctx) {
  const { tenants } = await api('GET', '/v1/tenants');
  const status = statusLine();
  const created = h('div', {});
  const form = h('form', { class: 'inline', id: 'tenant-form' },
    h('input', { type: 'text', name: 'name', id: 'tenant-name', placeholder: 'tenant name', required: true }),
    h('button', { type: 'submit' }, 'Create tenant'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const t = await api('POST', '/v1/tenants', { json: { name: formValues(form).name.trim() } });
      if (!ctx.isCurrent()) return;
      status.ok(`Tenant ${t.name} created.`);
      created.replaceChildren(secretBox('tenant-key', `API key of ${t.name}:`, t.api_key));
      list.replaceChildren(...rows([...current, t]));
      current.push(t);
    } catch (err) { status.error(err); }
  });
  const current = [...tenants];
  const rows = (ts) => ts.map((t) => h('tr', { dataset: { tenant: t.name } },
    h('td', {}, h('a', { href: `#/admin/tenants/${enc(t.id)}` }, t.name)),
    h('td', {}, h('code', {}, t.id)),
    h('td', { class: 'small muted' }, fmt.date(t.created_at))));
  const tbl = table(['name', 'id', 'created'], rows(current), { id: 'tenants-table' });
  const list = tbl.querySelector('tbody');
  root.append(h('h1', {}, 'Tenants'), tbl, h('h2', {}, 'New tenant'), h('div', { class: 'card' }, form, status.el, created));
}

export async function tenantPage(root, [id], ctx) {
  const [t, { keys }, usage] = await Promise.all([
    api('GET', `/v1/tenants/${enc(id)}`),
    api('GET', `/v1/tenants/${enc(id)}/keys`),
    api('GET', `/v1/tenants/${enc(id)}/usage`),
  ]);
  const status = statusLine();
  const created = h('div', {});
  const newKey = h('button', { type: 'button', id: 'key-create' }, 'Create key');
  newKey.addEventListener('click', async () => {
    try {
      const k = await api('POST', `/v1/tenants/${enc(id)}/keys`);
      if (!ctx.isCurrent()) return;
      keyBody.append(keyRow(k.key));
      created.replaceChildren(secretBox('created-key', `New key ${k.key.prefix}…:`, k.api_key));
    } catch (err) { status.error(err); }
  });
  const keyRow = (k) => {
    const revoke = h('button', { type: 'button', class: 'danger', disabled: k.revoked_at !== null }, 'Revoke');
    const state = h('td', {}, k.revoked_at ? `revoked ${fmt.date(k.revoked_at)}` : 'active');
    revoke.addEventListener('click', async () => {
      revoke.disabled = true;
      try {
        await api('DELETE', `/v1/tenants/${enc(id)}/keys/${enc(k.id)}`);
        state.textContent = 'revoked';
        status.ok(`Key ${k.prefix}… revoked: it stops working at once.`);
      } catch (err) { status.error(err); revoke.disabled = false; }
    });
    return h('tr', { dataset: { key: k.id, prefix: k.prefix } }, h('td', {}, h('code', {}, `${k.prefix}…`)), h('td', { class: 'small muted' }, fmt.date(k.created_at)), state, h('td', {}, revoke));
  };
  const keysTable = table(['key', 'created', 'state', ''], keys.map(keyRow), { id: 'keys-table' });
  const keyBody = keysTable.querySelector('tbody');
  const del = h('button', { type: 'button', class: 'danger', id: 'tenant-delete' }, 'Delete tenant and everything it owns');
  del.addEventListener('click', async () => {
    if (!window.confirm(`Delete tenant ${t.name}, its keys, tasks, prompts and jobs?`)) return;
    try { await api('DELETE', `/v1/tenants/${enc(id)}`); ctx.go('#/admin/tenants'); } catch (err) { status.error(err); }
  });
  root.append(
    h('p', {}, h('a', { href: '#/admin/tenants' }, '← tenants')),
    h('h1', {}, `Tenant ${t.name}`),
    h('h2', {}, 'Usage'),
    h('div', { class: 'card grid2', id: 'usage' },
      h('div', { class: 'kv' }, h('span', { class: 'k' }, 'requests'), h('span', { class: 'v', id: 'usage-requests' }, fmt.int(usage.requests))),
      kv('classify requests', fmt.int(usage.classify_requests)),
      h('div', { class: 'kv' }, h('span', { class: 'k' }, 'rows classified'), h('span', { class: 'v', id: 'usage-rows' }, fmt.int(usage.rows))),
      kv('tokens', fmt.int(usage.tokens)),
      h('div', { class: 'kv' }, h('span', { class: 'k' }, 'rejected (429/503/504)'), h('span', { class: 'v', id: 'usage-rejected' }, fmt.int(usage.rejected))),
      kv('other errors', fmt.int(usage.errors)),
      kv('since', fmt.date(usage.since))),
    h('h2', {}, 'API keys'),
    keysTable,
    h('div', { class: 'card' }, newKey, ' ', status.el, created),
    h('h2', {}, 'Danger'),
    del);
}
