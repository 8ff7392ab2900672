// A tiny element builder. Text always goes in as text nodes (never innerHTML),
// so names and labels that come from the API cannot inject markup.

/**
 * h('a', {href: '#/x', class: 'y', onclick: fn, dataset: {k: 'v'}}, 'text', child, [more])
 * Attributes with value null/undefined/false are left out.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function table(headers, rows, attrs) {
  return h('table', attrs ?? {},
    h('thead', {}, h('tr', {}, headers.map((x) => (typeof x === 'string' ? h('th', {}, x) : h('th', { class: x.class }, x.text))))),
    h('tbody', {}, rows));
}

export const fmt = {
  bytes(n) {
    if (typeof n !== 'number') return '–';
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  },
  num(x, digits = 3) { return typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : '–'; },
  pct(x) { return typeof x === 'number' && Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : '–'; },
  date(s) { return s ? new Date(s).toLocaleString() : '–'; },
  int(x) { return typeof x === 'number' ? x.toLocaleString() : '–'; },
};

/** The values of a form's named controls. */
export function formValues(form) {
  const out = {};
  for (const el of form.elements) if (el.name && el.type !== 'file') out[el.name] = el.value;
  return out;
}

/** A small "what happened" line next to a form. */
export function statusLine() {
  const el = h('div', { class: 'status', role: 'status' });
  return {
    el,
    ok(msg) { el.className = 'status ok'; el.textContent = msg; },
    error(err) { el.className = 'status error'; el.textContent = describeError(err); },
    busy(msg) { el.className = 'status muted'; el.textContent = msg; },
    clear() { el.className = 'status'; el.textContent = ''; },
  };
}

export function describeError(err) {
  if (err && typeof err.status === 'number') {
    let s = `${err.status} ${err.code}: ${err.message}`;
    if (err.retryAfter !== null && err.retryAfter !== undefined) s += ` — retry after ${err.retryAfter} s`;
    const details = err.details?.errors;
    if (Array.isArray(details) && details.length > 0) {
      s += ' — ' + details.slice(0, 5).map((d) => `${d.line !== undefined ? `line ${d.line}` : `#${d.index}`}: ${d.message}`).join('; ');
    }
    return s;
  }
  return String(err?.message ?? err);
}
