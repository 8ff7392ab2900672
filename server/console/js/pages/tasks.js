// Tasks: the list and a form to make one; a task's page with its prompts
// (versions, kinds, sizes, provenance), a PEFT upload form, and its ensembles.

import { api, enc } from '../api.js';
import { fmt, formValues, h, statusLine, table } from '../dom.js';

const csv = (s) => s.split(',').map((x) => x.trim()).filter((x) => x.length > 0);

export async function tasksPage(root, _params, ctx) {
  const { tasks } = await api('GET', '/v1/tasks');
  const status = statusLine();
  const form = h('form', { class: 'stack', id: 'task-form' },
    h('label', { for: 'task-name' }, 'Name'), h('input', { type: 'text', id: 'task-name', name: 'name', required: true, placeholder: 'sentiment' }),
    h('label', { for: 'task-labels' }, 'Labels'), h('input', { type: 'text', id: 'task-labels', name: 'labels', required: true, placeholder: 'negative, positive' }),
    h('label', { for: 'task-template' }, 'Template'), h('input', { type: 'text', id: 'task-template', name: 'template', value: '{text} It was' }),
    h('label', { for: 'task-scoring' }, 'Scoring'), h('select', { id: 'task-scoring', name: 'scoring' },
      h('option', { value: 'verbalizer' }, 'verbalizer (label words)'), h('option', { value: 'head' }, 'linear head')),
    h('label', { for: 'task-words' }, 'Label words'), h('input', { type: 'text', id: 'task-words', name: 'words', placeholder: 'bad, good (one per label, verbalizer only)' }),
    h('div', { class: 'full' }, h('button', { type: 'submit' }, 'Create task')),
    h('div', { class: 'full' }, status.el));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const scoring = v.scoring === 'head' ? { type: 'head', pooling: 'last' } : { type: 'verbalizer', label_words: csv(v.words) };
    status.busy('Creating…');
    try {
      const t = await api('POST', '/v1/tasks', { json: { name: v.name.trim(), labels: csv(v.labels), template: v.template, scoring } });
      ctx.go(`#/tasks/${enc(t.name)}`);
    } catch (err) { status.error(err); }
  });
  root.append(
    h('h1', {}, 'Tasks'),
    tasks.length === 0
      ? h('p', { class: 'muted', id: 'no-tasks' }, 'No tasks yet: make one below.')
      : table(['name', 'labels', 'scoring', 'template', 'created'], tasks.map((t) => h('tr', { dataset: { task: t.name } },
        h('td', {}, h('a', { href: `#/tasks/${enc(t.name)}` }, t.name)),
        h('td', {}, t.labels.join(', ')),
        h('td', {}, t.scoring.type === 'verbalizer' ? `verbalizer: ${t.scoring.label_words.join(', ')}` : `head (${t.scoring.pooling})`),
        h('td', {}, h('code', {}, t.template)),
        h('td', { class: 'small muted' }, fmt.date(t.created_at)))), { id: 'tasks-table' }),
    h('h2', {}, 'New task'),
    h('div', { class: 'card' }, form));
}

function provenance(v) {
  return v.source_dtype ? `${v.source} (${v.source_dtype})` : v.source;
}

export async function taskPage(root, [name], ctx) {
  const t = await api('GET', `/v1/tasks/${enc(name)}`);
  const [{ prompts }, { ensembles }] = await Promise.all([
    api('GET', `/v1/tasks/${enc(name)}/prompts`),
    api('GET', `/v1/tasks/${enc(name)}/ensembles`),
  ]);
  const rows = [];
  for (const p of prompts) {
    for (const v of [...p.versions].reverse()) {
      rows.push(h('tr', { dataset: { prompt: p.name, version: String(v.version) } },
        h('td', {}, v.version === p.latest_version ? h('a', { href: `#/tasks/${enc(name)}/prompts/${enc(p.name)}` }, p.name) : h('span', { class: 'muted' }, p.name)),
        h('td', { class: 'num' }, String(v.version), v.version === p.latest_version ? h('span', { class: 'muted small' }, ' latest') : null),
        h('td', {}, v.kind),
        h('td', { class: 'num' }, String(v.num_virtual_tokens)),
        h('td', { class: 'num' }, fmt.bytes(v.tensor_bytes)),
        h('td', {}, v.has_head ? 'yes' : 'no'),
        h('td', {}, provenance(v)),
        h('td', {}, h('code', { title: v.tensor_sha256 }, v.tensor_sha256.slice(0, 12))),
        h('td', { class: 'small muted' }, fmt.date(v.created_at))));
    }
  }

  const upStatus = statusLine();
  const upload = h('form', { class: 'stack', id: 'upload-form' },
    h('label', { for: 'up-name' }, 'Prompt name'), h('input', { type: 'text', id: 'up-name', name: 'name', required: true }),
    h('label', { for: 'up-config' }, 'adapter_config.json'), h('input', { type: 'file', id: 'up-config', accept: '.json,application/json' }),
    h('label', { for: 'up-model' }, 'adapter_model.safetensors'), h('input', { type: 'file', id: 'up-model', accept: '.safetensors' }),
    h('div', { class: 'full' }, h('button', { type: 'submit' }, 'Upload')),
    h('div', { class: 'full' }, upStatus.el));
  upload.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const cfg = upload.querySelector('#up-config').files[0];
    const model = upload.querySelector('#up-model').files[0];
    if (!cfg || !model) { upStatus.error('Choose both PEFT files (what save_pretrained writes).'); return; }
    const form = new FormData();
    form.append('name', formValues(upload).name.trim());
    form.append('adapter_config', cfg, 'adapter_config.json');
    form.append('adapter_model', model, 'adapter_model.safetensors');
    upStatus.busy('Uploading…');
    try {
      const v = await api('POST', `/v1/tasks/${enc(name)}/prompts`, { form });
      ctx.go(`#/tasks/${enc(name)}/prompts/${enc(v.name)}`);
    } catch (err) { upStatus.error(err); }
  });

  const ensStatus = statusLine();
  const ensForm = h('form', { class: 'inline', id: 'ensemble-form' },
    h('input', { type: 'text', name: 'name', id: 'ens-name', placeholder: 'ensemble name', required: true }),
    h('input', { type: 'text', name: 'members', id: 'ens-members', placeholder: 'prompts, comma separated (name or name@version)', required: true }),
    h('button', { type: 'submit' }, 'Create ensemble'));
  ensForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = formValues(ensForm);
    const members = csv(v.members).map((m) => {
      const [prompt, version] = m.split('@');
      return version ? { prompt, version: Number(version) } : { prompt };
    });
    try {
      await api('POST', `/v1/tasks/${enc(name)}/ensembles/${enc(v.name.trim())}`, { json: { members } });
      ctx.go(location.hash);
    } catch (err) { ensStatus.error(err); }
  });

  root.append(
    h('h1', {}, `Task ${t.name}`),
    h('div', { class: 'card grid2', id: 'task-summary' },
      kv('labels', t.labels.join(', ')),
      kv('scoring', t.scoring.type === 'verbalizer' ? `verbalizer: ${t.scoring.label_words.join(', ')}` : `linear head (${t.scoring.pooling} pooling)`),
      kv('template', h('code', {}, t.template)),
      kv('created', fmt.date(t.created_at))),
    h('p', {}, h('a', { href: '#/jobs' }, 'Train a prompt'), ' · ', h('a', { href: '#/playground' }, 'Try it in the playground')),
    h('h2', {}, 'Prompts'),
    rows.length === 0
      ? h('p', { class: 'muted', id: 'no-prompts' }, 'No prompts yet: upload PEFT files below or train one.')
      : table(['prompt', { text: 'version', class: 'num' }, 'kind', { text: 'virtual tokens', class: 'num' }, { text: 'size', class: 'num' }, 'head', 'provenance', 'sha256', 'created'], rows, { id: 'prompts-table' }),
    h('h2', {}, 'Ensembles'),
    ensembles.length === 0
      ? h('p', { class: 'muted', id: 'no-ensembles' }, 'No ensembles.')
      : table(['name', 'members', 'created'], ensembles.map((e) => h('tr', { dataset: { ensemble: e.name } },
        h('td', {}, e.name),
        h('td', {}, e.members.map((m) => `${m.prompt}@${m.version ?? 'latest'}`).join(', ')),
        h('td', { class: 'small muted' }, fmt.date(e.created_at)))), { id: 'ensembles-table' }),
    h('div', { class: 'card' }, ensForm, ensStatus.el),
    h('h2', {}, 'Upload a prompt (PEFT files)'),
    h('div', { class: 'card' }, upload));
}

export function kv(k, v) {
  return h('div', { class: 'kv' }, h('span', { class: 'k' }, k), h('span', { class: 'v' }, v));
}
