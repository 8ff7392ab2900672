// fast-check generators for client bytes: each starts from a valid structure
// (a safetensors file, an adapter_config.json, a multipart upload, JSONL
// rows, a template, a classify body) and applies targeted corruption
// (truncation, trailing bytes, bad offsets, wrong dtypes, huge shapes,
// duplicate keys, invalid UTF-8, unicode, deep nesting) or none. A case says
// `mustRefuse` when its corruption can never leave the input valid, so the
// properties can insist on a refusal and not only on the absence of a crash.

import fc from 'fast-check';

import { SPEC, adapterConfig, peftWidth } from '../peft-builders.ts';

export interface Case<T> {
  input: T;
  /** What was done to it (for the report). */
  how: string;
  /** The corruption always makes the input invalid: it must be refused (4xx). */
  mustRefuse: boolean;
}

const enc = new TextEncoder();
const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const;
const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** Odd JSON values: huge, negative, fractional, wrong types, unicode, nested. */
export const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(0, -1, 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, -1e308, 0.5, Number.MAX_SAFE_INTEGER, null, true, false, '', '1', 'F32', 'PROMPT_TUNING', [], {}, [0], [1, 2], [-1, 5], [0, 2 ** 60]),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 12, unit: 'grapheme' }),
  fc.array(fc.integer({ min: -2, max: 2 ** 40 }), { maxLength: 4 }),
  fc.jsonValue({ maxDepth: 3 }),
);

const tensorName = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('prompt_embeddings', 'base_model.score.weight', 'base_model.score.bias', '__metadata__') },
  { weight: 1, arbitrary: fc.string({ maxLength: 16, unit: 'binary' }) },
);

export interface TensorSpec { name: string; dtype: string; shape: number[] }

/** A well-formed safetensors file (tensors tile the data section in order). */
export function safetensorsBytes(tensors: TensorSpec[], fill: number, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES[t.dtype] ?? 1);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  const h = enc.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  let s = fill >>> 0;
  for (let i = 8 + h.length; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

const validPeftTensors: fc.Arbitrary<TensorSpec[]> = fc.record({
  p: fc.integer({ min: 1, max: 4 }), dtype: fc.constantFrom('F32', 'F16', 'BF16', 'F64', 'I8'), prefix: fc.boolean(), head: fc.boolean(),
}).map(({ p, dtype, prefix, head }) => {
  const t: TensorSpec[] = [{ name: 'prompt_embeddings', dtype, shape: [p, peftWidth(SPEC, prefix ? 'PREFIX_TUNING' : 'PROMPT_TUNING')] }];
  if (head) t.push({ name: 'base_model.score.weight', dtype: 'F32', shape: [2, SPEC.hiddenSize] }, { name: 'base_model.score.bias', dtype: 'F32', shape: [2] });
  return t;
});

const randomTensors: fc.Arbitrary<TensorSpec[]> = fc.uniqueArray(
  fc.record({ name: tensorName, dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 0, max: 6 }), { maxLength: 3 }) }),
  { maxLength: 4, selector: (t) => t.name },
).map((ts) => ts.filter((t) => t.name !== '__metadata__'));

/** Replaces the JSON header of a file, keeping its data section. */
function withHeader(file: Uint8Array, headerText: string): Uint8Array {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const data = file.subarray(8 + n);
  const h = enc.encode(headerText);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function headerOf(file: Uint8Array): Record<string, Record<string, unknown>> {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  return JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))) as Record<string, Record<string, unknown>>;
}

type Mutation = (file: Uint8Array) => { bytes: Uint8Array; how: string; mustRefuse: boolean };

const safetensorsMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.constant<Mutation>((b) => ({ bytes: b, how: 'valid', mustRefuse: false })),
  fc.double({ min: 0, max: 0.9999, noNaN: true }).map<Mutation>((f) => (b) => ({ bytes: b.slice(0, Math.floor(b.length * f)), how: 'truncated', mustRefuse: true })),
  fc.uint8Array({ minLength: 1, maxLength: 16 }).map<Mutation>((extra) => (b) => ({ bytes: new Uint8Array([...b, ...extra]), how: 'trailing bytes', mustRefuse: true })),
  fc.tuple(fc.nat(), fc.constantFrom('dtype', 'shape', 'data_offsets', 'extra'), oddValue).map<Mutation>(([i, field, v]) => (b) => {
    const h = headerOf(b);
    const names = Object.keys(h).filter((k) => k !== '__metadata__');
    if (names.length === 0) return { bytes: withHeader(b, JSON.stringify({ [String(field)]: v })), how: `header ${field} only`, mustRefuse: false };
    const name = names[i % names.length]!;
    h[name] = { ...h[name], [field]: v };
    return { bytes: withHeader(b, JSON.stringify(h)), how: `${field} = ${JSON.stringify(v)?.slice(0, 40)}`, mustRefuse: false };
  }),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 64 })).map<Mutation>(([i, shift]) => (b) => {
    const h = headerOf(b);
    const names = Object.keys(h).filter((k) => k !== '__metadata__');
    if (names.length === 0) return { bytes: b, how: 'valid', mustRefuse: false };
    const t = h[names[i % names.length]!]!;
    const [s, e] = t.data_offsets as [number, number];
    t.data_offsets = [s + shift, e + shift];
    return { bytes: withHeader(b, JSON.stringify(h)), how: 'offsets shifted', mustRefuse: e > s };
  }),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map<Mutation>((len) => (b) => {
    const out = b.slice();
    if (out.length >= 8) new DataView(out.buffer).setBigUint64(0, len, true);
    return { bytes: out, how: `header length ${len}`, mustRefuse: false };
  }),
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map<Mutation>((flips) => (b) => {
    const out = b.slice();
    for (const [i, v] of flips) if (out.length > 0) out[i % out.length] = v;
    return { bytes: out, how: 'bytes flipped', mustRefuse: false };
  }),
  fc.constant<Mutation>((b) => {
    const h = headerOf(b);
    const names = Object.keys(h);
    if (names.length === 0) return { bytes: b, how: 'valid', mustRefuse: false };
    const text = JSON.stringify(h);
    const dup = `${text.slice(0, -1)},${JSON.stringify(names[0])}:${JSON.stringify(h[names[0]!])}}`;
    return { bytes: withHeader(b, dup), how: 'duplicate key', mustRefuse: true };
  }),
  fc.integer({ min: 1, max: 20000 }).map<Mutation>((d) => (b) => ({ bytes: withHeader(b, `{"__metadata__":${'['.repeat(d)}${']'.repeat(d)}}`), how: `nested ${d}`, mustRefuse: true })),
  fc.nat().map<Mutation>((i) => (b) => {
    const out = b.slice();
    const n = Number(new DataView(out.buffer).getBigUint64(0, true));
    if (n > 0) out[8 + (i % n)] = 0xff;
    return { bytes: out, how: 'invalid UTF-8 in header', mustRefuse: n > 0 };
  }),
  fc.integer({ min: 70_000, max: 200_000 }).map<Mutation>((pad) => (b) => {
    const h = new TextDecoder().decode(b.subarray(8, 8 + Number(new DataView(b.buffer).getBigUint64(0, true))));
    return { bytes: withHeader(b, h + ' '.repeat(pad)), how: 'header over the limit', mustRefuse: true };
  }),
);

/** safetensors files: PEFT-shaped or arbitrary tensors, then one corruption (or none). */
export const safetensorsCase: fc.Arbitrary<Case<Uint8Array>> = fc.tuple(
  fc.oneof(validPeftTensors, randomTensors), fc.nat(), fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }), { nil: undefined }), safetensorsMutation,
).map(([tensors, fill, metadata, mutate]) => {
  const r = mutate(safetensorsBytes(tensors, fill, metadata));
  return { input: r.bytes, how: r.how, mustRefuse: r.mustRefuse };
});

// --- adapter_config.json ------------------------------------------------------

const PEFT_KEYS = ['peft_type', 'num_virtual_tokens', 'token_dim', 'num_layers', 'num_attention_heads', 'num_transformer_submodules', 'task_type', 'inference_mode', 'prefix_projection', 'base_model_name_or_path'];

export const adapterConfigCase: fc.Arbitrary<Case<Uint8Array>> = fc.tuple(
  fc.constantFrom('PROMPT_TUNING', 'P_TUNING', 'PREFIX_TUNING') as fc.Arbitrary<'PROMPT_TUNING' | 'P_TUNING' | 'PREFIX_TUNING'>,
  fc.integer({ min: 1, max: 300 }),
  fc.oneof(
    fc.constant({ kind: 'valid' as const }),
    fc.tuple(fc.constantFrom(...PEFT_KEYS, '__proto__', 'constructor'), oddValue).map(([k, v]) => ({ kind: 'set' as const, k, v })),
    fc.constantFrom(...PEFT_KEYS).map((k) => ({ kind: 'delete' as const, k })),
    fc.constantFrom(...PEFT_KEYS).map((k) => ({ kind: 'dup' as const, k })),
    fc.jsonValue({ maxDepth: 4 }).map((v) => ({ kind: 'replace' as const, v })),
    fc.integer({ min: 1, max: 50000 }).map((d) => ({ kind: 'nest' as const, d })),
    fc.uint8Array({ maxLength: 64 }).map((b) => ({ kind: 'bytes' as const, b })),
    fc.double({ min: 0, max: 0.999, noNaN: true }).map((f) => ({ kind: 'truncate' as const, f })),
  ),
).map(([type, p, m]) => {
  const cfg = adapterConfig(SPEC, type, p);
  let text = JSON.stringify(cfg);
  let mustRefuse = false;
  switch (m.kind) {
    case 'valid': break;
    case 'set': text = `${text.slice(0, -1)},${JSON.stringify(m.k)}:${JSON.stringify(m.v) ?? 'null'}}`; mustRefuse = Object.hasOwn(cfg, m.k); break;
    case 'delete': { const c = { ...cfg }; delete c[m.k]; text = JSON.stringify(c); break; }
    case 'dup': if (Object.hasOwn(cfg, m.k)) { text = `${text.slice(0, -1)},${JSON.stringify(m.k)}:${JSON.stringify(cfg[m.k])}}`; mustRefuse = true; } break;
    case 'replace': text = JSON.stringify(m.v); mustRefuse = typeof m.v !== 'object' || m.v === null || Array.isArray(m.v); break;
    case 'nest': text = `${'{"a":'.repeat(m.d)}1${'}'.repeat(m.d)}`; mustRefuse = true; break;
    case 'bytes': return { input: m.b, how: 'random bytes', mustRefuse: false };
    case 'truncate': text = text.slice(0, Math.floor(text.length * m.f)); mustRefuse = true; break;
  }
  return { input: enc.encode(text), how: m.kind, mustRefuse };
});

// --- JSONL training examples ---------------------------------------------------

export const LABELS = ['negative', 'positive', 'ünïcødé 标签'];

const jsonlLine: fc.Arbitrary<{ line: string; valid: boolean }> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }).filter((s) => s.trim().length > 0), fc.constantFrom(...LABELS)).map(([text, label]) => ({ line: JSON.stringify({ text, label }), valid: true })) },
  { weight: 1, arbitrary: fc.record({ text: oddValue, label: oddValue }, { requiredKeys: [] }).map((o) => ({ line: JSON.stringify(o), valid: false })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 60, unit: 'binary' }).map((line) => ({ line, valid: false })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20000 }).map((d) => ({ line: `${'['.repeat(d)}${']'.repeat(d)}`, valid: false })) },
  { weight: 1, arbitrary: fc.constantFrom('{"text":"a","label":"negative"', '{"__proto__":{"text":"x"},"label":"negative"}', '{"text":"\\ud800","label":"positive"}', 'null', '[]', '"text"', '{"text":"a","label":"negative","text":"b"}', '\r', '  ').map((line) => ({ line, valid: false })) },
);

export const jsonlCase: fc.Arbitrary<Case<string>> = fc.tuple(fc.array(jsonlLine, { maxLength: 30 }), fc.constantFrom('\n', '\r\n'), fc.boolean()).map(([lines, eol, finalEol]) => ({
  input: lines.map((l) => l.line).join(eol) + (finalEol ? eol : ''),
  how: `${lines.length} lines`,
  mustRefuse: false,
}));

// --- templates ------------------------------------------------------------------

const templatePiece: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12, unit: 'grapheme' }) },
  { weight: 2, arbitrary: fc.constantFrom('{text}', '{mask}', '{soft}', ' It was', ' ', '{', '}', '{soft:', '{ text }', '{soft:1}', '{soft:-1-2}', '{soft:a-b}', '{texts}') },
  { weight: 3, arbitrary: fc.tuple(fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 12 })).map(([a, b]) => `{soft:${a}-${b}}`) },
  { weight: 1, arbitrary: fc.constantFrom('{soft:0-99999999999}', '{soft:0-257}', '{soft:0-256}', `{soft:0-${'9'.repeat(400)}}`) },
);

export const templateCase: fc.Arbitrary<Case<{ template: string; text: string }>> = fc.tuple(
  fc.array(templatePiece, { maxLength: 8 }), fc.nat(), fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }),
).map(([pieces, at, text]) => {
  const withText = [...pieces];
  if (at % 4 !== 0) withText.splice(at % (pieces.length + 1), 0, '{text}');
  return { input: { template: withText.join(''), text }, how: 'template', mustRefuse: false };
});

// --- multipart uploads ------------------------------------------------------------

export interface RawRequest { contentType: string; body: Uint8Array }

interface Part { headers: string[]; data: Uint8Array }

function multipartBody(boundary: string, parts: Part[], eol: string, closing: boolean): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    chunks.push(enc.encode(`--${boundary}${eol}${p.headers.join(eol)}${eol}${eol}`), p.data, enc.encode(eol));
  }
  if (closing) chunks.push(enc.encode(`--${boundary}--${eol}`));
  return Buffer.concat(chunks);
}

const filename = fc.oneof(
  fc.constantFrom('adapter_config.json', 'adapter_model.safetensors', 'adapter_model.bin', 'x.json', '../../etc/passwd', 'ünï.safetensors', 'X.JSON', ''),
  // Quotes, backslashes and line breaks would change how the header itself parses.
  fc.string({ maxLength: 20, unit: 'grapheme' }).map((s) => s.replace(/["\\\r\n]/g, '')),
);

/** A matching, valid adapter_config.json + adapter_model.safetensors pair. */
const validPeftPair: fc.Arbitrary<[Case<Uint8Array>, Case<Uint8Array>]> = fc.record({
  type: fc.constantFrom('PROMPT_TUNING', 'P_TUNING', 'PREFIX_TUNING') as fc.Arbitrary<'PROMPT_TUNING' | 'P_TUNING' | 'PREFIX_TUNING'>,
  p: fc.integer({ min: 1, max: 4 }), dtype: fc.constantFrom('F32', 'F16', 'BF16'), fill: fc.nat(),
}).map(({ type, p, dtype, fill }) => {
  // Floats from random bits can be NaN/Inf (refused as PROMPT_NOT_FINITE): keep the exponent small.
  const model = safetensorsBytes([{ name: 'prompt_embeddings', dtype, shape: [p, peftWidth(SPEC, type)] }], fill);
  const h = Number(new DataView(model.buffer).getBigUint64(0, true));
  const width = dtype === 'F32' ? 4 : 2;
  for (let i = 8 + h + width - 1; i < model.length; i += width) model[i] = model[i]! & 0x3f;
  return [
    { input: model, how: 'valid', mustRefuse: false },
    { input: enc.encode(JSON.stringify(adapterConfig(SPEC, type, p))), how: 'valid', mustRefuse: false },
  ];
});

export const multipartCase: fc.Arbitrary<Case<RawRequest>> = fc.tuple(
  fc.oneof({ weight: 2, arbitrary: validPeftPair }, { weight: 1, arbitrary: fc.tuple(safetensorsCase, adapterConfigCase) }),
  fc.oneof(
    fc.constant({ kind: 'valid' as const }),
    fc.tuple(filename, filename).map(([a, b]) => ({ kind: 'filenames' as const, a, b })),
    fc.double({ min: 0, max: 0.999, noNaN: true }).map((f) => ({ kind: 'truncate' as const, f })),
    fc.constant({ kind: 'no-boundary' as const }),
    fc.constant({ kind: 'wrong-boundary' as const }),
    fc.constant({ kind: 'no-closing' as const }),
    fc.constant({ kind: 'lf-only' as const }),
    fc.tuple(fc.constantFrom('name', 'extra', 'adapter_model', 'options'), fc.string({ maxLength: 2000, unit: 'grapheme' })).map(([k, v]) => ({ kind: 'field' as const, k, v })),
    fc.constant({ kind: 'three-files' as const }),
    fc.integer({ min: 100, max: 20000 }).map((n) => ({ kind: 'long-header' as const, n })),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((flips) => ({ kind: 'flip' as const, flips })),
  ),
).map(([[model, config], m]) => {
  const boundary = 'fuzzBoundary7MA4YWxkTrZu0gW';
  let cfgName = 'adapter_config.json';
  let modelName = 'adapter_model.safetensors';
  if (m.kind === 'filenames') { cfgName = m.a; modelName = m.b; }
  const fileHeaders = (field: string, fname: string, extra: string[] = []) => [`Content-Disposition: form-data; name="${field}"; filename="${fname.replace(/[\r\n]/g, '')}"`, 'Content-Type: application/octet-stream', ...extra];
  const parts: Part[] = [
    { headers: ['Content-Disposition: form-data; name="name"'], data: enc.encode('fz') },
    { headers: fileHeaders('adapter_config', cfgName), data: config.input },
    { headers: fileHeaders('adapter_model', modelName, m.kind === 'long-header' ? [`X-Pad: ${'a'.repeat(m.n)}`] : []), data: model.input },
  ];
  if (m.kind === 'field') parts.push({ headers: [`Content-Disposition: form-data; name="${m.k}"`], data: enc.encode(m.v) });
  if (m.kind === 'three-files') parts.push({ headers: fileHeaders('adapter_model', 'adapter_model.safetensors'), data: model.input });
  let body = multipartBody(m.kind === 'wrong-boundary' ? 'otherBoundary' : boundary, parts, m.kind === 'lf-only' ? '\n' : '\r\n', m.kind !== 'no-closing');
  // The CRLF after the close delimiter is optional (RFC 2046): cut into the delimiter itself at least.
  if (m.kind === 'truncate') body = body.slice(0, Math.min(Math.floor(body.length * m.f), body.length - 3));
  if (m.kind === 'flip') { body = body.slice(); for (const [i, v] of m.flips) body[i % body.length] = v; }
  const contentType = m.kind === 'no-boundary' ? 'multipart/form-data' : `multipart/form-data; boundary=${boundary}`;
  // An empty filename is no filename (busboy reports none): the field name decides.
  const fits = (name: string, ext: string) => name === '' || (name.toLowerCase().endsWith(ext) && !name.includes('/'));
  const badFilename = m.kind === 'filenames' && !(fits(m.a, '.json') && fits(m.b, '.safetensors'));
  const mustRefuse = model.mustRefuse || config.mustRefuse || badFilename
    || ['truncate', 'no-boundary', 'wrong-boundary', 'three-files', 'field'].includes(m.kind);
  return { input: { contentType, body }, how: `${m.kind}; model ${model.how}; config ${config.how}`, mustRefuse };
});

// --- classify bodies -----------------------------------------------------------------

const input = fc.oneof(
  { weight: 4, arbitrary: fc.string({ minLength: 1, maxLength: 80, unit: 'grapheme' }).filter((s) => s.trim().length > 0) },
  { weight: 1, arbitrary: oddValue },
  { weight: 1, arbitrary: fc.constantFrom('', '   ', '\u0000', '\ud800', 'x'.repeat(4001), '🙂'.repeat(500)) },
);

const validText = fc.string({ minLength: 1, maxLength: 80, unit: 'grapheme' }).filter((s) => s.trim().length > 0);
const validClassify = fc.record({
  inputs: fc.array(validText, { minLength: 1, maxLength: 8 }),
  selector: fc.constantFrom({}, { prompt: 'p1' }, { prompt: 'p2', version: 1 }, { ensemble: 'duo' }, { prompts: ['p1', { name: 'p2', version: 1 }] }),
  deadline: fc.option(fc.integer({ min: 10_000, max: 10 ** 9 }), { nil: undefined }),
}).map(({ inputs, selector, deadline }) => ({ inputs, ...selector, ...(deadline !== undefined ? { deadline_ms: deadline } : {}) }));

export const classifyCase: fc.Arbitrary<Case<RawRequest>> = fc.oneof(
  { weight: 3, arbitrary: validClassify.map((b) => ({ input: { contentType: 'application/json', body: enc.encode(JSON.stringify(b)) }, how: 'valid body', mustRefuse: false })) },
  { weight: 6, arbitrary: fc.record({
    inputs: fc.oneof({ weight: 5, arbitrary: fc.array(input, { minLength: 1, maxLength: 8 }) }, { weight: 1, arbitrary: oddValue }, { weight: 1, arbitrary: fc.array(fc.constant('a'), { minLength: 65, maxLength: 70 }) }),
    prompt: fc.oneof(fc.constantFrom('p1', 'p2', 'nope', '../p1', ''), oddValue),
    version: fc.oneof(fc.constantFrom(1, 2, 99), oddValue),
    ensemble: fc.oneof(fc.constantFrom('duo', 'nope'), oddValue),
    prompts: fc.oneof(fc.array(fc.oneof(fc.constantFrom('p1', 'p2'), fc.record({ name: fc.constantFrom('p1', 'p2', 'x'), version: fc.oneof(fc.constant(1), oddValue) }, { requiredKeys: ['name'] }), oddValue), { maxLength: 20 }), oddValue),
    deadline_ms: fc.oneof(fc.constantFrom(10_000, 30_000, 10 ** 12), oddValue.filter((v) => typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)),
    [String('extra')]: oddValue,
  }, { requiredKeys: [] }).map((b) => ({ input: { contentType: 'application/json', body: enc.encode(JSON.stringify(b)) }, how: `body ${Object.keys(b).join(',')}`, mustRefuse: false })) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => ({ input: { contentType: 'application/json', body: enc.encode(JSON.stringify(v)) }, how: 'any JSON', mustRefuse: typeof v !== 'object' || v === null || Array.isArray(v) })) },
  { weight: 1, arbitrary: fc.tuple(fc.uint8Array({ maxLength: 200 }), fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', '')).map(([b, t]) => ({ input: { contentType: t, body: b }, how: `bytes as ${t}`, mustRefuse: true })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 100_000 }).map((d) => ({ input: { contentType: 'application/json', body: enc.encode(`{"inputs":${'['.repeat(d)}${']'.repeat(d)}}`) }, how: `nested ${d}`, mustRefuse: true })) },
);
