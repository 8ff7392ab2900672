// The server page: GET /info (no key needed) — the model, the execution
// provider and every limit a client must respect.

import { api } from '../api.js';
import { fmt, h, table } from '../dom.js';
import { kv } from './tasks.js';

export async function serverPage(root) {
  let info;
  try {
    info = await api('GET', '/info', { quiet: true });
  } catch (err) {
    root.append(h('h1', {}, 'Server'), h('p', { class: 'muted' }, `This server does not describe itself (${err.status} ${err.code}).`));
    return;
  }
  const m = info.model ?? {};
  const flat = [];
  const walk = (prefix, o) => {
    for (const [k, v] of Object.entries(o ?? {})) {
      if (v !== null && typeof v === 'object') walk(`${prefix}${k}.`, v);
      else flat.push([`${prefix}${k}`, v]);
    }
  };
  walk('', info.limits);
  root.append(
    h('h1', {}, 'Server'),
    h('div', { class: 'card grid2', id: 'server-info' },
      kv('product', `${info.product?.name ?? 'softserve'} ${info.product?.version ?? ''}`),
      kv('model', m.name ?? '–'), kv('family', `${m.family ?? '–'} (${m.model_type ?? '–'})`),
      kv('hidden size', fmt.int(m.hidden_size)), kv('layers', fmt.int(m.num_layers)),
      kv('heads / kv heads', `${m.num_heads ?? '–'} / ${m.num_kv_heads ?? '–'}`), kv('head dim', fmt.int(m.head_dim)),
      kv('vocabulary', fmt.int(m.vocab_size)), kv('max positions', fmt.int(m.max_positions)),
      kv('execution provider', info.execution_provider ?? '–')),
    h('h2', {}, 'Limits'),
    table(['limit', { text: 'value', class: 'num' }], flat.map(([k, v]) => h('tr', {}, h('td', {}, h('code', {}, k)), h('td', { class: 'num' }, typeof v === 'number' ? fmt.int(v) : String(v)))), { id: 'limits-table' }));
}
