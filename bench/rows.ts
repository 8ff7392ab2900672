// What building a row costs the HTTP thread: prompts/template.ts `buildRow`
// on every SST-2 dev sentence with stories260k's tokenizer, the classify
// route's shape (a template around the text, a soft prompt placed before
// it). Two ways: as served (the tokenizer's bound settles that a text need
// not be cut, so the text is encoded once, inside the template) and without
// the bound (the text is also encoded alone). Time per row in interleaved
// rounds; then bytes allocated per row (the row itself included) over one
// pass of each, from the inspector's sampling heap profiler with collected
// objects counted.
//
// npm run bench:rows

import { Session } from 'node:inspector/promises';
import { fileURLToPath } from 'node:url';

import { loadTexts } from '../loadtest/scenarios.ts';
import { loadCheckpoint } from '../models/checkpoint.ts';
import { familyOf } from '../models/families.ts';
import { loadTokenizer } from '../models/tokenizer.ts';
import { buildRow, parseTemplate, specialTokens, type Tokenizes } from '../prompts/template.ts';

const MODEL = process.env.SOFTSERVE_MODEL_DIR ?? fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));
const ROUNDS = 5;
const PASSES = 20;
const MAX_TEXT_TOKENS = 256; // the server's default (SOFTSERVE_MAX_TEXT_TOKENS)
const VIRTUAL_TOKENS = 8;

const ckpt = loadCheckpoint(MODEL);
const spec = familyOf(ckpt).spec(ckpt);
const tokenizer = loadTokenizer(MODEL);
const special = specialTokens(spec, tokenizer, tokenizer.addBos);
const withoutBound: Tokenizes = { encode: (t) => tokenizer.encode(t), decode: (ids) => tokenizer.decode(ids), tokenId: (t) => tokenizer.tokenId(t) };
const texts = loadTexts({ split: 'dev' });
const pieces = parseTemplate('{text} It was');

function usPerRow(tok: Tokenizes): number {
  const t0 = performance.now();
  for (let p = 0; p < PASSES; p++) for (const text of texts) buildRow(pieces, text, tok, spec, special, VIRTUAL_TOKENS, MAX_TEXT_TOKENS);
  return ((performance.now() - t0) * 1000) / (PASSES * texts.length);
}

/** Bytes allocated per row over one pass, from V8's sampling heap profiler (every 1 KiB allocated, on average). */
async function bytesPerRow(session: Session, tok: Tokenizes): Promise<number> {
  await session.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  for (const text of texts) buildRow(pieces, text, tok, spec, special, VIRTUAL_TOKENS, MAX_TEXT_TOKENS);
  const { profile } = await session.post('HeapProfiler.stopSampling');
  let total = 0;
  const walk = (node: typeof profile.head): void => {
    total += node.selfSize;
    node.children.forEach(walk);
  };
  walk(profile.head);
  return total / texts.length;
}

const served: number[] = [];
const unbounded: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  served.push(usPerRow(tokenizer));
  unbounded.push(usPerRow(withoutBound));
}
const session = new Session();
session.connect();
await session.post('HeapProfiler.enable');
const servedBytes = await bytesPerRow(session, tokenizer);
const unboundedBytes = await bytesPerRow(session, withoutBound);
session.disconnect();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const bounded = texts.filter((t) => tokenizer.tokenBound(t) <= MAX_TEXT_TOKENS).length;
console.log(`${texts.length} SST-2 dev sentences, ${ROUNDS} interleaved rounds of ${PASSES} passes; the bound settles ${bounded} of them`);
console.log('| buildRow | µs per row, median | rounds | bytes allocated per row |');
console.log('|---|---:|---|---:|');
console.log(`| as served (the bound first) | ${median(served).toFixed(1)} | ${served.map((x) => x.toFixed(1)).join(', ')} | ${servedBytes.toFixed(0)} |`);
console.log(`| text also encoded alone | ${median(unbounded).toFixed(1)} | ${unbounded.map((x) => x.toFixed(1)).join(', ')} | ${unboundedBytes.toFixed(0)} |`);
