// A prompt: its versions, and what a version "means" (GET .../inspect): for
// soft and P-tuning prompts the nearest vocabulary tokens of each virtual
// token by cosine similarity, with its norm (Lester et al. 2021, section 7);
// for prefixes the key and value norms per layer.

import { api, enc } from '../api.js';
import { clear, fmt, h, statusLine, table } from '../dom.js';
import { kv } from './tasks.js';

export async function promptPage(root, [task, name], ctx) {
  const p = await api('GET', `/v1/tasks/${enc(task)}/prompts/${enc(name)}`);
  const versions = [...p.versions].reverse();
  const inspectOut = h('div', { id: 'inspect-out' });
  const status = statusLine();
  const versionSel = h('select', { id: 'inspect-version', name: 'version' }, versions.map((v) => h('option', { value: String(v.version) }, `v${v.version} (${v.kind})`)));
  const kInput = h('input', { type: 'number', id: 'inspect-k', name: 'k', min: '1', max: '20', value: '5' });
  const form = h('form', { class: 'inline', id: 'inspect-form' },
    h('label', { for: 'inspect-version' }, 'version'), versionSel,
    h('label', { for: 'inspect-k' }, 'nearest k'), kInput,
    h('button', { type: 'submit' }, 'Inspect'));

  async function inspect() {
    status.busy('Inspecting…');
    try {
      const q = new URLSearchParams({ version: versionSel.value, k: kInput.value });
      const r = await api('GET', `/v1/tasks/${enc(task)}/prompts/${enc(name)}/inspect?${q}`);
      if (!ctx.isCurrent()) return;
      status.clear();
      clear(inspectOut).append(renderInspection(r));
    } catch (err) {
      if (!ctx.isCurrent()) return;
      clear(inspectOut);
      status.error(err);
    }
  }
  form.addEventListener('submit', (ev) => { ev.preventDefault(); inspect(); });
  // k (nearest tokens) means nothing for a prefix.
  const syncK = () => { kInput.disabled = versions.find((v) => String(v.version) === versionSel.value)?.kind === 'prefix'; };
  versionSel.addEventListener('change', syncK);
  syncK();

  root.append(
    h('p', {}, h('a', { href: `#/tasks/${enc(task)}` }, `← task ${task}`)),
    h('h1', {}, `Prompt ${p.name}`),
    table([{ text: 'version', class: 'num' }, 'kind', { text: 'virtual tokens', class: 'num' }, { text: 'size', class: 'num' }, 'head', 'provenance', 'sha256', 'created'],
      versions.map((v) => h('tr', { dataset: { version: String(v.version) } },
        h('td', { class: 'num' }, String(v.version)),
        h('td', {}, v.kind),
        h('td', { class: 'num' }, String(v.num_virtual_tokens)),
        h('td', { class: 'num' }, fmt.bytes(v.tensor_bytes)),
        h('td', {}, v.has_head ? 'yes' : 'no'),
        h('td', {}, v.source_dtype ? `${v.source} (${v.source_dtype})` : v.source),
        h('td', {}, h('code', { title: v.tensor_sha256 }, v.tensor_sha256.slice(0, 12))),
        h('td', { class: 'small muted' }, fmt.date(v.created_at)))), { id: 'versions-table' }),
    h('h2', {}, 'Inspect'),
    h('div', { class: 'card' }, form, status.el, inspectOut));
  await inspect();
}

function renderInspection(r) {
  const head = h('div', { class: 'grid2' }, kv('version', `v${r.version}`), kv('kind', r.kind), kv('virtual tokens', String(r.num_virtual_tokens)));
  if (Array.isArray(r.tokens)) {
    return h('div', {}, head,
      h('p', { class: 'muted small' }, 'Each virtual token\'s nearest vocabulary tokens by cosine similarity to the model\'s input embeddings, and its L2 norm.'),
      table([{ text: '#', class: 'num' }, { text: 'norm', class: 'num' }, 'nearest tokens (cosine similarity)'],
        r.tokens.map((t) => h('tr', { dataset: { index: String(t.index) } },
          h('td', { class: 'num' }, String(t.index)),
          h('td', { class: 'num' }, fmt.num(t.norm, 2)),
          h('td', {}, h('div', { class: 'tokens' }, t.nearest.map((n) => h('span', { class: 'tok', title: `token id ${n.id}` },
            h('code', {}, visible(n.token)), h('span', { class: 'sim' }, fmt.num(n.similarity, 2)))))))), { id: 'inspect-tokens' }));
  }
  if (Array.isArray(r.layers)) {
    const max = Math.max(...r.layers.flatMap((l) => [l.key_norm, l.value_norm]), 1e-9);
    const bar = (x) => h('span', {}, h('span', { class: 'bar', style: null, dataset: { w: String(x / max) } }), fmt.num(x, 2));
    const t = table([{ text: 'layer', class: 'num' }, 'key norm', 'value norm'],
      r.layers.map((l) => h('tr', {}, h('td', { class: 'num' }, String(l.layer)), h('td', {}, bar(l.key_norm)), h('td', {}, bar(l.value_norm)))), { id: 'inspect-layers' });
    // Widths through the CSSOM: the CSP forbids style attributes, not style properties.
    for (const b of t.querySelectorAll('.bar')) b.style.width = `${Math.round(Number(b.dataset.w) * 160)}px`;
    return h('div', {}, head, h('p', { class: 'muted small' }, 'Norms of each layer\'s key and value prefixes.'), t);
  }
  return h('div', {}, head, h('p', { class: 'muted' }, 'Nothing to show for this kind.'));
}

/** Spaces and control characters made visible, so " the" and "the" differ on screen. */
function visible(token) {
  return String(token).replace(/ /g, '␣').replace(/\n/g, '↵').replace(/[\u0000-\u001f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
