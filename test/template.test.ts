// Task templates → engine rows: where virtual tokens, BOS/CLS/SEP and the mask
// go, where the score is read, truncation, and which token a label word scores.

import { test } from 'node:test';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { loadTokenizer } from '../models/tokenizer.ts';
import { loadCheckpoint } from '../models/checkpoint.ts';
import { familyOf } from '../models/families.ts';
import { buildRow, labelTokenId, parseTemplate, specialTokens } from '../prompts/template.ts';
import { SoftserveError } from '../kernels/errors.ts';
import { STORIES_DIR } from './serving-helpers.ts';
import { writeRandomCheckpoint } from './fixtures/random-checkpoint.ts';

function setup(dir: string) {
  const ckpt = loadCheckpoint(dir);
  const spec = familyOf(ckpt).spec(ckpt);
  const tok = loadTokenizer(dir);
  return { spec, tok, special: specialTokens(spec, tok, tok.addBos) };
}

test('llama: soft prompt first (PEFT), then BOS, then text and template, read at the last token', () => {
  const { spec, tok, special } = setup(STORIES_DIR);
  const pieces = parseTemplate('{text} It was');
  const row = buildRow(pieces, 'a great film', tok, spec, special, 3, 256);
  const V = spec.vocabSize;
  assert.deepEqual(row.ids.slice(0, 4), [V, V + 1, V + 2, spec.bosTokenId]);
  assert.deepEqual(row.ids.slice(4), tok.encode('a great film It was'), 'template and text tokenised together');
  assert.equal(row.scorePosition, row.ids.length - 1);
  const plain = buildRow(pieces, 'a great film', tok, spec, special, 0, 256);
  assert.deepEqual(plain.ids, [spec.bosTokenId, ...tok.encode('a great film It was')]);
});

test('{soft:a-b} splits a prompt around the input (P-tuning); {soft} places all of it', () => {
  const { spec, tok, special } = setup(STORIES_DIR);
  const V = spec.vocabSize;
  const row = buildRow(parseTemplate('{soft:0-2} {text} {soft:2-4} It was'), 'hello', tok, spec, special, 4, 256);
  assert.deepEqual(row.ids, [spec.bosTokenId, V, V + 1, ...tok.encode('hello'), V + 2, V + 3, ...tok.encode('It was')]);
  const all = buildRow(parseTemplate('Review: {soft} {text}'), 'hello', tok, spec, special, 2, 256);
  assert.deepEqual(all.ids, [spec.bosTokenId, ...tok.encode('Review:'), V, V + 1, ...tok.encode('hello')]);
});

test('inputs are cut to the token limit and the row says so', () => {
  const { spec, tok, special } = setup(STORIES_DIR);
  const long = 'once upon a time there was a little girl '.repeat(20);
  const row = buildRow(parseTemplate('{text} It was'), long, tok, spec, special, 0, 16);
  assert.ok(row.truncated);
  // The text is cut to its first 16 tokens, then tokenised with the template's words.
  const cut = tok.decode(tok.encode(long).slice(0, 16));
  assert.deepEqual(row.ids, [...special.start, ...tok.encode(`${cut} It was`.replace(/^ +| +$/g, '')), ...special.end]);
});

test("the tokenizer's bound only skips encoding a text that would not be cut: rows are the same without it", () => {
  const { spec, tok, special } = setup(STORIES_DIR);
  const unbounded = { encode: (t: string) => tok.encode(t), decode: (ids: number[]) => tok.decode(ids), tokenId: (t: string) => tok.tokenId(t) };
  const pieces = parseTemplate('Review: {text} It was');
  const texts = ['a great film', 'once upon a time there was a little girl named Lily .', 'ça ne va pas 😀 中文', ' spaced  out '];
  for (const text of texts) {
    const n = tok.encode(text).length;
    assert.ok(tok.tokenBound(text) >= n && tok.tokenBound(text) < Infinity, text);
    // Limits around the text's length, and between its length and the bound (where the bound alone cannot tell).
    for (const limit of [1, n - 1, n, n + 1, tok.tokenBound(text), tok.tokenBound(text) + 1].filter((l) => l >= 1)) {
      const bounded = buildRow(pieces, text, tok, spec, special, 2, limit);
      assert.deepEqual(bounded, buildRow(pieces, text, unbounded, spec, special, 2, limit), `${text} at ${limit}`);
      assert.equal(bounded.truncated, n > limit, `${text} at ${limit}`);
    }
  }
});

test('bert: [CLS] … [SEP] with the score read at [MASK], after virtual tokens', () => {
  const ckpt = writeRandomCheckpoint({ family: 'bert', seed: 1 });
  try {
    const { spec, tok, special } = setup(ckpt.dir);
    const row = buildRow(parseTemplate('{text} it was {mask} .'), 'a good movie', tok, spec, special, 2, 64);
    const V = spec.vocabSize;
    assert.equal(row.ids[0], V);
    assert.equal(row.ids[2], ckpt.special.cls);
    assert.equal(row.ids.at(-1), ckpt.special.sep);
    assert.equal(row.ids[row.scorePosition], ckpt.special.mask);
  } finally {
    ckpt.cleanup();
  }
});

test('label words score their first in-context token', () => {
  const { tok } = setup(STORIES_DIR);
  assert.equal(tok.tokenText(labelTokenId('happy', tok)), '▁happy');
  assert.equal(tok.tokenText(labelTokenId(' happy', tok)), '▁happy', 'a leading space means the same word');
  assert.equal(tok.tokenText(labelTokenId('sad', tok)), '▁sa', 'a multi-token word scores its first token');
});

test('templates need {text} exactly once; {mask} needs a mask token', () => {
  assert.throws(() => parseTemplate('no slot'), (e: unknown) => e instanceof SoftserveError && e.code === 'INVALID_TASK');
  assert.throws(() => parseTemplate('{text} {text}'), (e: unknown) => e instanceof SoftserveError && e.code === 'INVALID_TASK');
  const { spec, tok, special } = setup(STORIES_DIR);
  assert.throws(() => buildRow(parseTemplate('{text} {mask}'), 'x', tok, spec, special, 0, 8),
    (e: unknown) => e instanceof SoftserveError && e.code === 'INVALID_TASK');
});

test('words a word-level tokenizer lacks become its unknown token, never undefined', () => {
  // The llama fixture's tokenizer is word-level; without tokenizer_config.json naming
  // the unknown token, the library gives `undefined` for words it lacks.
  const ckpt = writeRandomCheckpoint({ family: 'llama', seed: 2 });
  rmSync(join(ckpt.dir, 'tokenizer_config.json'));
  try {
    const tok = loadTokenizer(ckpt.dir);
    const ids = tok.encode('the zzzqqq movie');
    assert.ok(ids.every((id) => Number.isInteger(id)), JSON.stringify(ids));
    assert.ok(ids.includes(ckpt.special.unk!));
  } finally {
    ckpt.cleanup();
  }
});
