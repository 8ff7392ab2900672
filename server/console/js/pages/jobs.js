// Training jobs: the list, a form that starts a job from an uploaded JSONL
// file, and a job's page that polls GET /v1/jobs/:id every second while it is
// queued or running, drawing loss and held-out accuracy as they come, with a
// cancel button.

import { api, enc } from '../api.js';
import { clear, fmt, formValues, h, statusLine, table } from '../dom.js';
import { globalStep, jobPoints, lossChart } from '../chart.js';
import { kv } from './tasks.js';

const FINAL = ['succeeded', 'failed', 'cancelled'];
const POLL_MS = 1000;

const badge = (state) => h('span', { class: `badge ${state}`, id: 'job-state', dataset: { state } }, state);

export async function jobsPage(root, _params, ctx) {
  const [{ jobs }, { tasks }] = await Promise.all([api('GET', '/v1/jobs'), api('GET', '/v1/tasks')]);
  const status = statusLine();
  const form = h('form', { class: 'stack', id: 'job-form' },
    h('label', { for: 'job-task' }, 'Task'), h('select', { id: 'job-task', name: 'task', required: true }, tasks.map((t) => h('option', { value: t.name }, t.name))),
    h('label', { for: 'job-prompt' }, 'Prompt name'), h('input', { type: 'text', id: 'job-prompt', name: 'prompt', required: true, placeholder: 'the prompt to publish (members: name-1, name-2, …)' }),
    h('label', { for: 'job-method' }, 'Method'), h('select', { id: 'job-method', name: 'method' },
      ['prompt_tuning', 'p_tuning', 'prefix_tuning', 'linear_head'].map((m) => h('option', { value: m }, m))),
    h('label', { for: 'job-epochs' }, 'Epochs'), h('input', { type: 'number', id: 'job-epochs', name: 'epochs', min: '1', placeholder: 'default' }),
    h('label', { for: 'job-tokens' }, 'Virtual tokens'), h('input', { type: 'number', id: 'job-tokens', name: 'num_virtual_tokens', min: '1', placeholder: 'default' }),
    h('label', { for: 'job-ensemble-size' }, 'Ensemble size'), h('input', { type: 'number', id: 'job-ensemble-size', name: 'ensemble_size', min: '1', value: '1' }),
    h('label', { for: 'job-ensemble' }, 'Ensemble name'), h('input', { type: 'text', id: 'job-ensemble', name: 'ensemble', placeholder: 'only for ensemble size > 1' }),
    h('label', { for: 'job-options' }, 'More options (JSON)'), h('textarea', { id: 'job-options', name: 'options', placeholder: '{"learning_rate": 0.1, "seed": 1} (docs/TRAINING.md)' }),
    h('label', { for: 'job-examples' }, 'Examples (JSONL)'), h('input', { type: 'file', id: 'job-examples', accept: '.jsonl,.ndjson,.json,application/x-ndjson' }),
    h('label', { for: 'job-validation' }, 'Validation (JSONL, optional)'), h('input', { type: 'file', id: 'job-validation', accept: '.jsonl,.ndjson,.json,application/x-ndjson' }),
    h('div', { class: 'full muted small' }, 'One example a line: {"text": "...", "label": "<one of the task\'s labels>"}.'),
    h('div', { class: 'full' }, h('button', { type: 'submit', disabled: tasks.length === 0 }, 'Start training')),
    h('div', { class: 'full' }, status.el));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = formValues(form);
    const examples = form.querySelector('#job-examples').files[0];
    const validation = form.querySelector('#job-validation').files[0];
    if (!examples) { status.error('Choose a JSONL file of examples.'); return; }
    let options;
    try {
      options = v.options.trim() ? JSON.parse(v.options) : {};
      if (typeof options !== 'object' || options === null || Array.isArray(options)) throw new Error('must be a JSON object');
    } catch (err) { status.error(`More options: ${err.message}`); return; }
    options.method = v.method;
    if (v.epochs) options.epochs = Number(v.epochs);
    if (v.num_virtual_tokens) options.num_virtual_tokens = Number(v.num_virtual_tokens);
    if (v.ensemble_size && Number(v.ensemble_size) > 1) options.ensemble_size = Number(v.ensemble_size);
    const body = new FormData();
    body.append('prompt', v.prompt.trim());
    if (v.ensemble.trim()) body.append('ensemble', v.ensemble.trim());
    body.append('options', JSON.stringify(options));
    body.append('examples', examples, examples.name);
    if (validation) body.append('validation', validation, validation.name);
    status.busy('Uploading…');
    try {
      const job = await api('POST', `/v1/tasks/${enc(v.task)}/jobs`, { form: body });
      ctx.go(`#/jobs/${enc(job.id)}`);
    } catch (err) { status.error(err); }
  });
  const jobRow = (j) => h('tr', { dataset: { job: j.id } },
    h('td', {}, h('a', { href: `#/jobs/${enc(j.id)}` }, h('code', {}, j.id))),
    h('td', {}, j.task), h('td', {}, j.ensemble ? `${j.prompt} (ensemble ${j.ensemble})` : j.prompt),
    h('td', {}, String(j.options?.method ?? '')),
    h('td', {}, h('span', { class: `badge ${j.state}` }, j.state)),
    h('td', { class: 'num' }, j.progress ? `${globalStep(j)} / ${j.progress.total_steps * j.progress.members}` : '–'),
    h('td', { class: 'num' }, fmt.pct(j.progress?.best_held_out_accuracy)),
    h('td', { class: 'small muted' }, fmt.date(j.created_at)));
  const list = jobs.length === 0
    ? h('p', { class: 'muted', id: 'no-jobs' }, 'No jobs yet.')
    : table(['job', 'task', 'prompt', 'method', 'state', { text: 'step', class: 'num' }, { text: 'best held-out', class: 'num' }, 'created'], jobs.map(jobRow), { id: 'jobs-table' });
  root.append(
    h('h1', {}, 'Training jobs'),
    list,
    h('h2', {}, 'Start a job'),
    ...(tasks.length === 0 ? [h('p', { class: 'muted' }, 'Make a task first.')] : []),
    h('div', { class: 'card' }, form));

  // While a job is queued or running, refresh the table's rows (not the form).
  let timer = null;
  const refresh = async () => {
    try {
      const fresh = await api('GET', '/v1/jobs');
      if (!ctx.isCurrent()) return;
      list.querySelector('tbody')?.replaceChildren(...fresh.jobs.map(jobRow));
      if (fresh.jobs.some((j) => !FINAL.includes(j.state))) timer = setTimeout(refresh, 2 * POLL_MS);
    } catch { /* the banner or sign-in already says what went wrong */ }
  };
  if (jobs.some((j) => !FINAL.includes(j.state))) timer = setTimeout(refresh, 2 * POLL_MS);
  ctx.onLeave(() => clearTimeout(timer));
}

export async function jobPage(root, [id], ctx) {
  let job = await api('GET', `/v1/jobs/${enc(id)}`);
  const live = new Map();
  const summary = h('div', { class: 'card grid2', id: 'job-summary' });
  const chartBox = h('div', { id: 'chart', dataset: { points: '0' } });
  const extra = h('div', { id: 'job-extra' });
  const status = statusLine();
  const cancel = h('button', { type: 'button', class: 'danger', id: 'job-cancel' }, 'Cancel job');
  const stateSlot = h('span', {});
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      job = await api('POST', `/v1/jobs/${enc(id)}/cancel`);
      status.ok('Cancel requested: the job stops at its next step and publishes nothing.');
      paint();
    } catch (err) { status.error(err); cancel.disabled = false; }
  });

  root.append(
    h('p', {}, h('a', { href: '#/jobs' }, '← jobs')),
    h('h1', {}, 'Job ', h('code', {}, job.id), ' ', stateSlot),
    summary,
    h('div', { class: 'inline' }, cancel, status.el),
    h('h2', {}, 'Curves'),
    h('div', { class: 'card' }, chartBox),
    extra);
  const chart = lossChart(chartBox);
  ctx.onLeave(() => chart.destroy());

  function paint() {
    const p = job.progress;
    if (p && p.loss !== null && p.phase === 'training') live.set(globalStep(job), p.loss);
    clear(stateSlot).append(badge(job.state));
    const totalSteps = p ? p.total_steps * p.members : null;
    const stepsLeft = p ? totalSteps - globalStep(job) : null;
    const stepsPerSec = p && p.examples_per_sec > 0 ? p.examples_per_sec / Number(job.options?.batch_size ?? 32) : 0;
    clear(summary).append(
      kv('task', h('a', { href: `#/tasks/${enc(job.task)}` }, job.task)),
      kv('prompt', job.ensemble ? `${job.prompt} (ensemble ${job.ensemble})` : job.prompt),
      kv('method', String(job.options?.method ?? '–')),
      kv('examples', fmt.int(job.examples)),
      kv('phase', p ? `${p.phase}${p.members > 1 ? `, member ${p.member} of ${p.members}` : ''}` : '–'),
      h('div', { class: 'kv' }, h('span', { class: 'k' }, 'step'), h('span', { class: 'v', id: 'job-step' }, p ? `${globalStep(job)} / ${totalSteps}` : '–')),
      kv('epoch', p ? String(p.epoch) : '–'),
      kv('training loss', fmt.num(p?.loss, 4)),
      kv('held-out accuracy', fmt.pct(p?.held_out_accuracy)),
      kv('best held-out accuracy', fmt.pct(p?.best_held_out_accuracy)),
      kv('examples / s', p ? fmt.num(p.examples_per_sec, 1) : '–'),
      kv('ETA', job.state === 'running' && stepsPerSec > 0 ? `${Math.ceil(stepsLeft / stepsPerSec)} s` : '–'),
      kv('created', fmt.date(job.created_at)),
      kv('finished', fmt.date(job.finished_at)));
    cancel.disabled = FINAL.includes(job.state) || job.cancel_requested;
    chart.update(jobPoints(job, live));
    clear(extra);
    if (job.result) {
      extra.append(h('h2', {}, 'Published'),
        table(['prompt', { text: 'version', class: 'num' }, { text: 'held-out accuracy', class: 'num' }, { text: 'steps', class: 'num' }, 'stopped early'],
          job.result.prompts.map((m) => h('tr', {},
            h('td', {}, h('a', { href: `#/tasks/${enc(job.task)}/prompts/${enc(m.name)}` }, m.name)),
            h('td', { class: 'num' }, String(m.version)),
            h('td', { class: 'num' }, fmt.pct(m.held_out_accuracy)),
            h('td', { class: 'num' }, String(m.steps)),
            h('td', {}, m.stopped_early ? 'yes' : 'no'))), { id: 'job-result' }),
        ...(job.result.ensemble ? [h('p', {}, `Ensemble ${job.result.ensemble} holds them.`)] : []));
    }
    if (job.error) extra.append(h('div', { class: 'card status error', id: 'job-error' }, `${job.error.code}: ${job.error.message}`));
    if (job.events?.length) extra.append(h('h2', {}, 'Events'), h('ul', { class: 'small' }, job.events.map((e) => h('li', {}, `${fmt.date(e.at)} — ${e.type}`, e.reason ? `: ${e.reason}` : '', Array.isArray(e.published) ? `: published ${e.published.join(', ')}` : '', e.ensemble ? ` (ensemble ${e.ensemble})` : ''))));
  }
  paint();

  // Poll while the job can still change; a page left behind stops polling.
  let timer = null;
  const tick = async () => {
    if (!ctx.isCurrent() || FINAL.includes(job.state)) return;
    try {
      job = await api('GET', `/v1/jobs/${enc(id)}`);
      if (!ctx.isCurrent()) return;
      paint();
    } catch (err) {
      if (!ctx.isCurrent()) return;
      status.error(err);
      if (err.status === 401 || err.status === 404) return;
    }
    timer = setTimeout(tick, POLL_MS);
  };
  timer = setTimeout(tick, POLL_MS);
  ctx.onLeave(() => clearTimeout(timer));
}
