// The classify playground: a task, a selector (zero-shot, one prompt, an
// ensemble), inputs one a line; per input the label, every class's
// probability, each member's vote and the agreement (the fraction of members
// that voted for the winning label).

import { api, enc } from '../api.js';
import { clear, fmt, h, statusLine, table } from '../dom.js';

/** The server's `agreement` when it sends one, else counted from the votes. */
export function agreementOf(result) {
  if (typeof result.agreement === 'number') return result.agreement;
  if (!Array.isArray(result.votes) || result.votes.length === 0) return null;
  return result.votes.filter((v) => v.label === result.label).length / result.votes.length;
}

export async function playgroundPage(root, _params, ctx) {
  const [{ tasks }, info] = await Promise.all([api('GET', '/v1/tasks'), api('GET', '/info', { quiet: true }).catch(() => null)]);
  const maxInputs = info?.limits?.max_inputs ?? null;
  const taskSel = h('select', { id: 'pg-task', name: 'task' }, tasks.map((t) => h('option', { value: t.name }, t.name)));
  const useSel = h('select', { id: 'pg-use', name: 'use' });
  const inputs = h('textarea', { id: 'pg-inputs', name: 'inputs', rows: '5', placeholder: 'one input a line' });
  const status = statusLine();
  const out = h('div', { id: 'pg-results' });

  async function loadSelectors() {
    clear(useSel).append(h('option', { value: '' }, 'zero-shot (the task\'s verbalizer)'));
    if (!taskSel.value) return;
    const [{ prompts }, { ensembles }] = await Promise.all([
      api('GET', `/v1/tasks/${enc(taskSel.value)}/prompts`),
      api('GET', `/v1/tasks/${enc(taskSel.value)}/ensembles`),
    ]);
    if (!ctx.isCurrent()) return;
    for (const e of ensembles) useSel.append(h('option', { value: `ensemble:${e.name}` }, `ensemble ${e.name} (${e.members.length} members)`));
    for (const p of prompts) useSel.append(h('option', { value: `prompt:${p.name}` }, `prompt ${p.name} (v${p.latest_version})`));
    // An ensemble shows the most: preselect the first one.
    if (ensembles.length > 0) useSel.value = `ensemble:${ensembles[0].name}`;
    else if (prompts.length > 0) useSel.value = `prompt:${prompts[0].name}`;
  }
  taskSel.addEventListener('change', () => { loadSelectors().catch((err) => status.error(err)); });

  const form = h('form', { class: 'stack', id: 'pg-form' },
    h('label', { for: 'pg-task' }, 'Task'), taskSel,
    h('label', { for: 'pg-use' }, 'Classify with'), useSel,
    h('label', { for: 'pg-inputs' }, 'Inputs'), inputs,
    h('div', { class: 'full muted small' }, maxInputs ? `At most ${maxInputs} inputs a request (the server's limit).` : ''),
    h('div', { class: 'full' }, h('button', { type: 'submit', disabled: tasks.length === 0 }, 'Classify')),
    h('div', { class: 'full' }, status.el));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const lines = inputs.value.split('\n').map((s) => s.trim()).filter((s) => s.length > 0);
    if (lines.length === 0) { status.error('Type at least one input.'); return; }
    const body = { inputs: lines };
    const [kind, name] = useSel.value.split(/:(.*)/s);
    if (kind === 'ensemble') body.ensemble = name;
    if (kind === 'prompt') body.prompt = name;
    status.busy('Classifying…');
    try {
      const r = await api('POST', `/v1/tasks/${enc(taskSel.value)}/classify`, { json: body });
      if (!ctx.isCurrent()) return;
      status.ok(`${r.results.length} result(s): ${r.usage.rows} rows, ${r.usage.tokens} tokens, queue ${fmt.num(r.timing.queue_ms, 1)} ms, inference ${fmt.num(r.timing.inference_ms, 1)} ms`);
      clear(out).append(renderResults(lines, r));
    } catch (err) { status.error(err); }
  });

  root.append(h('h1', {}, 'Classify playground'), h('div', { class: 'card' }, form), out);
  await loadSelectors();
}

function renderResults(lines, r) {
  const who = r.ensemble ? `ensemble ${r.ensemble}` : r.prompt ? `prompt ${r.prompt.name} v${r.prompt.version}` : 'zero-shot';
  return h('div', {},
    h('h2', {}, `Results (${who})`),
    table(['input', 'label', 'scores', 'votes', { text: 'agreement', class: 'num' }], r.results.map((res, i) => {
      const agreement = agreementOf(res);
      const scores = Object.entries(res.scores).sort((a, b) => b[1] - a[1]);
      return h('tr', { class: 'result', dataset: { label: res.label } },
        h('td', {}, lines[i]),
        h('td', {}, h('strong', { class: 'label' }, res.label), h('div', { class: 'muted small' }, fmt.pct(res.score)), res.abstained ? h('div', { class: 'small' }, 'abstained') : null),
        h('td', {}, scores.map(([label, p]) => {
          const bar = h('span', { class: 'bar' });
          bar.style.width = `${Math.round(p * 120)}px`;
          return h('div', { class: 'small' }, bar, `${label} ${fmt.pct(p)}`);
        })),
        h('td', { class: 'votes' }, Array.isArray(res.votes)
          ? res.votes.map((v) => h('div', { class: 'small vote' }, `${v.prompt} v${v.version}: `, h('strong', {}, v.label), ` (${fmt.pct(v.score)})`))
          : h('span', { class: 'muted' }, '–')),
        h('td', { class: 'num agreement' }, agreement === null ? '–' : fmt.pct(agreement)));
    }), { id: 'pg-table' }));
}
