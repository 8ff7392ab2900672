// One property per parser that takes client bytes, shared by the quick run in
// `npm test` (test/fuzz.test.ts) and the long one (`npm run fuzz`,
// test/fuzz/run.ts). A case fails the property when the parser throws
// anything but a SoftserveError of a 4xx status, when a server answers 5xx or
// drops the connection, when input that can never be valid is accepted, or
// when an accepted input breaks the parser's own promises (tensors inside the
// file, every virtual token placed once, ...).

import fc from 'fast-check';

import { isSoftserveError } from '../../kernels/errors.ts';
import { httpStatus } from '../../server/errors.ts';
import { loadCheckpoint } from '../../models/checkpoint.ts';
import { familyOf } from '../../models/families.ts';
import { DTYPE_BYTES, parseSafetensors, toFloat32, type SafetensorsDtype } from '../../models/safetensors.ts';
import { loadTokenizer } from '../../models/tokenizer.ts';
import { checkAdapterConfig, importPeft, parseAdapterConfig } from '../../prompts/peft.ts';
import { validateTaskDefinition } from '../../prompts/store.ts';
import { buildRow, parseTemplate, softPlacement, specialTokens } from '../../prompts/template.ts';
import { parseArray, parseJsonl } from '../../prompts/training/data.ts';
import { DEFAULT_PROMPT_LIMITS as LIMITS } from '../../prompts/kinds.ts';
import { ADMIN_KEY, adapterConfig, api, SPEC, startServer, type TestServer } from '../store-helpers.ts';
import { createTask, createTenant, nested, startServingServer, STORIES_DIR, uploadPrompt, type ServingTestServer } from '../serving-helpers.ts';
import { adapterConfigCase, classifyCase, jsonlCase, LABELS, multipartCase, safetensorsCase, templateCase, type Case, type RawRequest } from './generators.ts';

export interface Tally {
  cases: number;
  /** Taken as valid (2xx, or parsed). */
  accepted: number;
  /** Refused with a SoftserveError / a 4xx answer. */
  refused: number;
  /** Failures of the property (crash, 5xx, dropped connection, malformed input accepted, broken invariant). */
  failures: number;
  /** 5xx answers or dropped connections (part of failures). */
  non4xx: number;
  /** Non-SoftserveError throws (part of failures). */
  crashes: number;
}

const tally = (): Tally => ({ cases: 0, accepted: 0, refused: 0, failures: 0, non4xx: 0, crashes: 0 });

class PropertyFailure extends Error {}

/** Runs a parser: a SoftserveError of 4xx is a refusal; anything else thrown is a crash. */
function outcome(t: Tally, c: Case<unknown>, run: () => void | 'refused'): 'accepted' | 'refused' {
  t.cases++;
  try {
    if (run() === 'refused') { t.refused++; return 'refused'; }
  } catch (err) {
    if (err instanceof PropertyFailure) { t.failures++; throw err; }
    if (isSoftserveError(err) && httpStatus(err) >= 400 && httpStatus(err) < 500) { t.refused++; return 'refused'; }
    t.failures++;
    t.crashes++;
    throw new PropertyFailure(`crash (${c.how}): ${isSoftserveError(err) ? `${err.code} ${httpStatus(err)}` : (err as Error)?.stack ?? String(err)}`);
  }
  if (c.mustRefuse) { t.failures++; throw new PropertyFailure(`malformed input accepted (${c.how})`); }
  t.accepted++;
  return 'accepted';
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new PropertyFailure(what);
}

export interface FuzzTarget {
  name: string;
  tally: Tally;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  property(): fc.IAsyncPropertyWithHooks<any> | fc.IPropertyWithHooks<any>;
  close?(): Promise<void>;
}

// --- in-process parsers -----------------------------------------------------------

export function safetensorsTarget(): FuzzTarget {
  const t = tally();
  const cfgFor = (prefix: boolean) => new TextEncoder().encode(JSON.stringify(adapterConfig(SPEC, prefix ? 'PREFIX_TUNING' : 'PROMPT_TUNING', 1)));
  return {
    name: 'safetensors', tally: t,
    property: () => fc.property(safetensorsCase as fc.Arbitrary<unknown>, (raw) => {
      const c = raw as Case<Uint8Array>;
      outcome(t, c, () => {
        const parsed = parseSafetensors(c.input, { maxHeaderBytes: 64 * 1024 });
        let total = 0;
        for (const v of parsed.tensors.values()) {
          const n = v.shape.reduce((a, b) => a * b, 1);
          check(v.bytes.byteLength === n * DTYPE_BYTES[v.dtype as SafetensorsDtype], `tensor ${v.name}: byte count disagrees with its shape`);
          check(v.bytes.buffer === c.input.buffer && v.bytes.byteOffset >= 8 && v.bytes.byteOffset + v.bytes.byteLength <= c.input.byteOffset + c.input.byteLength, `tensor ${v.name} outside the file`);
          total += v.bytes.byteLength;
          if (['F32', 'F64', 'F16', 'BF16'].includes(v.dtype)) check(toFloat32(v).length === n, 'toFloat32 length');
        }
        const headerLen = Number(new DataView(c.input.buffer, c.input.byteOffset).getBigUint64(0, true));
        check(total === c.input.byteLength - 8 - headerLen, 'tensors do not tile the data section');
      });
      // The upload path: the same bytes as a PEFT adapter.
      for (const prefix of [false, true]) {
        try {
          importPeft({ config: cfgFor(prefix), model: c.input }, SPEC, LIMITS);
        } catch (err) {
          if (!(isSoftserveError(err) && httpStatus(err) < 500)) { t.failures++; t.crashes++; throw new PropertyFailure(`importPeft crash (${c.how}): ${(err as Error)?.stack ?? String(err)}`); }
        }
      }
    }),
  };
}

export function adapterConfigTarget(): FuzzTarget {
  const t = tally();
  return {
    name: 'adapter_config.json', tally: t,
    property: () => fc.property(adapterConfigCase as fc.Arbitrary<unknown>, (raw) => {
      const c = raw as Case<Uint8Array>;
      outcome(t, c, () => {
        const cfg = parseAdapterConfig(c.input, LIMITS);
        const { numVirtualTokens } = checkAdapterConfig(cfg, SPEC, LIMITS);
        check(Number.isSafeInteger(numVirtualTokens) && numVirtualTokens >= 1 && numVirtualTokens <= LIMITS.maxVirtualTokens, 'num_virtual_tokens out of bounds');
      });
    }),
  };
}

export function jsonlTarget(): FuzzTarget {
  const t = tally();
  const limits = { maxExamples: 20, maxTextChars: 30, maxErrors: 5 };
  return {
    name: 'JSONL examples', tally: t,
    property: () => fc.property(jsonlCase as fc.Arbitrary<unknown>, (raw) => {
      const c = raw as Case<string>;
      outcome(t, c, () => {
        let bad = 0;
        for (const parsed of [parseJsonl(c.input, LABELS, limits), parseArray(c.input.split('\n').map((l) => { try { return JSON.parse(l) as unknown; } catch { return l; } }), LABELS, limits)]) {
          check(parsed.errors.length <= limits.maxErrors + 1, 'errors not bounded');
          check(parsed.errorCount >= parsed.errors.length, 'errorCount below the listed errors');
          for (const e of parsed.examples) {
            check(typeof e.text === 'string' && e.text.trim().length > 0 && e.text.length <= limits.maxTextChars, 'bad example text accepted');
            check(Number.isInteger(e.label) && e.label >= 0 && e.label < LABELS.length, 'label index out of range');
          }
          bad += parsed.errorCount;
        }
        // Bad rows are reported, not thrown: the job route turns them into 422 INVALID_EXAMPLES.
        return bad > 0 ? 'refused' : undefined;
      });
    }),
  };
}

export function templateTarget(): FuzzTarget {
  const t = tally();
  const ckpt = loadCheckpoint(STORIES_DIR);
  const spec = familyOf(ckpt).spec(ckpt);
  const tok = loadTokenizer(STORIES_DIR);
  const special = specialTokens(spec, tok, tok.addBos);
  return {
    name: 'templates', tally: t,
    property: () => fc.property(templateCase as fc.Arbitrary<unknown>, fc.integer({ min: 0, max: 6 }) as fc.Arbitrary<unknown>, (raw, pRaw) => {
      const c = raw as Case<{ template: string; text: string }>;
      outcome(t, c, () => {
        const def = validateTaskDefinition({ name: 't', labels: ['a', 'b'], template: c.input.template, scoring: { type: 'verbalizer', labelWords: ['sad', 'happy'] } }, spec, LIMITS, tok);
        const pieces = parseTemplate(def.template);
        const placement = softPlacement(def.template, pieces, LIMITS.maxVirtualTokens);
        const p = placement.kind === 'ranged' ? placement.count : (pRaw as number);
        const row = buildRow(pieces, c.input.text, tok, spec, special, p, 16);
        const virtual = row.ids.filter((id) => id >= spec.vocabSize);
        check(virtual.length === p, `placed ${virtual.length} virtual tokens of ${p}`);
        check(new Set(virtual).size === p && virtual.every((id) => id < spec.vocabSize + p), 'a virtual token twice or out of range');
        check(row.scorePosition >= 0 && row.scorePosition < row.ids.length, 'score position outside the row');
        check(row.ids.every((id) => Number.isInteger(id) && id >= 0), 'bad token id');
        check(tok.tokenBound(c.input.text) >= tok.encode(c.input.text).length, 'a text with more ids than its bound');
      });
    }),
  };
}

// --- HTTP parsers (a real server on 127.0.0.1) -------------------------------------------

async function send(url: string, key: string, r: RawRequest): Promise<{ status: number; code: unknown } | { error: string }> {
  try {
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (r.contentType !== '') headers['content-type'] = r.contentType;
    const res = await fetch(url, { method: 'POST', headers, body: Buffer.from(r.body) });
    const text = await res.text();
    let code: unknown;
    try { code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code; } catch { code = undefined; }
    return { status: res.status, code };
  } catch (err) {
    return { error: String((err as Error).cause ?? err) };
  }
}

function httpOutcome(t: Tally, c: Case<RawRequest>, r: { status: number; code: unknown } | { error: string }, okStatus: number): void {
  t.cases++;
  if ('error' in r) { t.failures++; t.non4xx++; throw new PropertyFailure(`no answer (${c.how}): ${r.error}`); }
  if (r.status === okStatus) {
    if (c.mustRefuse) { t.failures++; throw new PropertyFailure(`malformed input accepted with ${r.status} (${c.how})`); }
    t.accepted++;
    return;
  }
  if (r.status >= 400 && r.status < 500 && typeof r.code === 'string') { t.refused++; return; }
  t.failures++;
  t.non4xx++;
  throw new PropertyFailure(`answered ${r.status} ${String(r.code)} (${c.how})`);
}

export async function multipartTarget(): Promise<FuzzTarget> {
  const t = tally();
  const s: TestServer = await startServer();
  const r = await api(s.url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name: 'fuzz' } });
  const key = r.json.api_key as string;
  await api(s.url, 'POST', '/v1/tasks', { key, json: { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' bad', ' good'] } } });
  return {
    name: 'multipart uploads (HTTP)', tally: t,
    property: () => fc.asyncProperty(multipartCase as fc.Arbitrary<unknown>, async (raw) => {
      const c = raw as Case<RawRequest>;
      httpOutcome(t, c, await send(`${s.url}/v1/tasks/sentiment/prompts`, key, c.input), 201);
    }),
    async close() {
      const h = await api(s.url, 'GET', '/healthz');
      if (h.status !== 200) throw new Error('the server stopped answering');
      await s.close();
    },
  };
}

export async function classifyTarget(): Promise<FuzzTarget> {
  const t = tally();
  const srv: ServingTestServer = await startServingServer({ scheduler: { maxWaitMs: 1 } });
  const key = await createTenant(srv.url, 'fuzz');
  await createTask(srv.url, key, { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: ['sad', 'happy'] } });
  await uploadPrompt(srv.url, key, 'sentiment', { name: 'p1', kind: 'soft', tensor: nested([2, 64], 1) });
  await uploadPrompt(srv.url, key, 'sentiment', { name: 'p2', kind: 'soft', tensor: nested([3, 64], 2) });
  await api(srv.url, 'POST', '/v1/tasks/sentiment/ensembles/duo', { key, json: { members: ['p1', 'p2'] } });
  return {
    name: 'classify bodies (HTTP)', tally: t,
    property: () => fc.asyncProperty(classifyCase as fc.Arbitrary<unknown>, async (raw) => {
      const c = raw as Case<RawRequest>;
      httpOutcome(t, c, await send(`${srv.url}/v1/tasks/sentiment/classify`, key, c.input), 200);
    }),
    async close() {
      const h = await api(srv.url, 'GET', '/readyz');
      if (h.status !== 200) throw new Error('the server stopped answering');
      await srv.close();
    },
  };
}

export const IN_PROCESS = [safetensorsTarget, adapterConfigTarget, jsonlTarget, templateTarget];
export const OVER_HTTP = [multipartTarget, classifyTarget];
