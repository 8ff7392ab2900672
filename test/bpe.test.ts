// The fast BPE encoder (models/bpe.ts) against @huggingface/tokenizers, the
// reference it replaces on the hot path: the same ids for every dataset text
// and for random strings (unicode, surrogates, byte fallback, added tokens),
// on stories260k's tokenizer and on small hand-made ones that exercise equal
// ranks, duplicate merges and fused unknown tokens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { Tokenizer } from '@huggingface/tokenizers';

import { bpeEncoder } from '../models/bpe.ts';
import { loadTokenizer } from '../models/tokenizer.ts';
import { STORIES_DIR } from './serving-helpers.ts';

const DATA = fileURLToPath(new URL('../../shared/data', import.meta.url));

function datasetTexts(): string[] {
  const texts: string[] = [];
  for (const set of readdirSync(DATA, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const file of readdirSync(join(DATA, set.name)).filter((f) => f.endsWith('.jsonl') && !f.startsWith('train'))) {
      for (const line of readFileSync(join(DATA, set.name, file), 'utf8').split('\n')) {
        if (line.trim()) texts.push(String((JSON.parse(line) as { text: unknown }).text));
      }
    }
  }
  return texts;
}

/** Library ids without special tokens: what TextTokenizer.encode returned before the fast path. */
function reference(json: Record<string, unknown>, config: Record<string, unknown> = {}) {
  const tok = new Tokenizer(json, config);
  return (text: string) => tok.encode(text, { add_special_tokens: false }).ids as number[];
}

/** Strings over `alphabet` (single code points or longer pieces), up to `max` pieces. */
const stringsOf = (alphabet: string[], max: number) => fc.array(fc.constantFrom(...alphabet), { maxLength: max }).map((a) => a.join(''));

test('stories260k: the fast encoder is used and gives the library ids for every dataset text and random strings', () => {
  const files = {
    json: JSON.parse(readFileSync(join(STORIES_DIR, 'tokenizer.json'), 'utf8')) as Record<string, unknown>,
    config: JSON.parse(readFileSync(join(STORIES_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>,
  };
  const fast = bpeEncoder(files.json, files.config);
  assert.ok(fast, 'stories260k tokenizer.json is the supported shape');
  const lib = reference(files.json, files.config);
  const texts = datasetTexts();
  assert.ok(texts.length > 1000, `${texts.length} dataset texts`);
  for (const t of texts) {
    const ids = fast.encode(t);
    assert.deepEqual(ids, lib(t), t);
    assert.ok(fast.tokenBound(t) >= ids!.length, `bound ${fast.tokenBound(t)} < ${ids!.length} ids: ${t}`);
  }

  // Through TextTokenizer: texts holding added tokens go to the library and still match.
  const tokenizer = loadTokenizer(STORIES_DIR);
  const alphabet = ['a', 'b', 'e', 't', 'h', ' ', '  ', '.', ',', 'The', ' the', 'é', 'ß', '中', '😀', '\u{1F600}\u{1F600}', '\ud800', '\t', '\n', '▁', '<s>', '</s>', '<unk>', '<', '>', 'x'];
  // The bound holds for every text (Infinity for those left to the library).
  const matchesLibrary = (s: string) => {
    const ids = tokenizer.encode(s);
    assert.deepEqual(ids, tokenizer.libraryEncode(s), JSON.stringify(s));
    assert.ok(tokenizer.tokenBound(s) >= ids.length, `bound ${tokenizer.tokenBound(s)} < ${ids.length} ids: ${JSON.stringify(s)}`);
  };
  fc.assert(fc.property(stringsOf(alphabet, 40), matchesLibrary), { numRuns: 500, seed: 7 });
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 60 }), matchesLibrary), { numRuns: 300, seed: 8 });
  assert.equal(fast.encode('<s> hi'), null, 'a text with an added token is left to the library');
  assert.equal(fast.tokenBound('<s> hi'), Infinity);
  // The encoder reuses its work arrays: a long text grows them, and shorter texts after it read nothing stale.
  const long = texts.slice(0, 60).join(' ');
  assert.ok(long.length > 2000);
  for (const t of [texts[0]!, long, texts[1]!, long.slice(0, 700), texts[2]!, 'a']) assert.deepEqual(fast.encode(t), lib(t), t.slice(0, 80));
});

/** A small BPE tokenizer.json with the given vocabulary, merges and options. */
function tinyBpe(vocab: string[], merges: string[] | string[][], model: Record<string, unknown> = {}, added: string[] = []): Record<string, unknown> {
  const ids = Object.fromEntries(vocab.map((t, i) => [t, i]));
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: added.map((content) => ({ id: ids[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '_' }, { type: 'Replace', pattern: { String: ' ' }, content: '_' }] },
    pre_tokenizer: null, post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: ids, merges, ...model },
  };
}

test('hand-made BPE tokenizers: equal ranks, overlapping pairs, a pair listed twice, fused unknowns, no byte fallback', () => {
  const vocab = ['<unk>', '<s>', 'a', 'b', 'c', '_', 'aa', 'ab', 'ba', 'aaa', 'bc', '_a', '_b', 'aab', 'abc', '_ab', '<0x41>'];
  // 'a a' competes with 'a b' and 'b a'; 'a b' is listed twice (the last rank counts); 'aa b' builds on an earlier merge.
  const merges = ['a a', 'b a', 'a b', 'b c', '_ a', 'aa a', 'aa b', 'a bc', '_ ab', 'a b', '_ b'];
  const alphabet = ['a', 'b', 'c', ' ', '_', 'd', 'é', 'A', '<s>'];
  for (const model of [{}, { fuse_unk: true }, { byte_fallback: true }, { byte_fallback: true, fuse_unk: true }]) {
    const json = tinyBpe(vocab, merges, model, ['<unk>', '<s>']);
    const fast = bpeEncoder(json, {});
    assert.ok(fast, JSON.stringify(model));
    const lib = reference(json);
    fc.assert(fc.property(stringsOf(alphabet, 30), (s) => {
      const mine = fast.encode(s);
      if (mine !== null) {
        assert.deepEqual(mine, lib(s), `${JSON.stringify(model)} ${JSON.stringify(s)}`);
        assert.ok(fast.tokenBound(s) >= mine.length, `${JSON.stringify(model)} bound ${fast.tokenBound(s)} < ${mine.length}: ${JSON.stringify(s)}`);
      } else assert.ok(s.includes('<s>') || s.includes('<unk>'));
    }), { numRuns: 400, seed: 3 });
  }
  // An added token matched after normalization (normalized: true): texts holding either form go to the library.
  const withNormalized = tinyBpe(vocab, merges);
  (withNormalized.added_tokens as object[]).push({ id: vocab.length, content: ' ab', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false });
  const fastNormalized = bpeEncoder(withNormalized, {})!;
  const libNormalized = reference(withNormalized);
  for (const text of ['_ab', 'x ab', 'ab', 'b_a b', ' ab ab']) {
    const mine = fastNormalized.encode(text);
    if (mine !== null) assert.deepEqual(mine, libNormalized(text), text);
  }
  assert.equal(fastNormalized.encode('_ab'), null);
  // Merges written as pairs (the newer tokenizer.json format) read the same.
  const pairs = tinyBpe(vocab, merges.map((m) => m.split(' ')));
  assert.deepEqual(bpeEncoder(pairs, {})!.encode('aab abc  ba'), reference(pairs)('aab abc  ba'));
  // A Replace's content holding `$&` reads as the library reads it (its replaceAll inserts the match).
  const dollar = tinyBpe([...vocab, '$', '&'], merges);
  (dollar.normalizer as { normalizers: Array<{ content?: string }> }).normalizers[1]!.content = '$&';
  assert.deepEqual(bpeEncoder(dollar, {})!.encode('ab ba  c'), reference(dollar)('ab ba  c'));
});

test('shapes the fast encoder does not reproduce are left to the library', () => {
  const base = tinyBpe(['<unk>', 'a', 'b', 'ab'], ['a b']);
  const variants: Array<[string, Record<string, unknown>]> = [
    ['a pre-tokenizer', { ...base, pre_tokenizer: { type: 'Whitespace' } }],
    ['another normalizer', { ...base, normalizer: { type: 'NFKC' } }],
    ['a regex Replace', { ...base, normalizer: { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' } }],
    ['dropout', { ...base, model: { ...(base.model as object), dropout: 0.1 } }],
    ['a word suffix', { ...base, model: { ...(base.model as object), end_of_word_suffix: '</w>' } }],
    ['a merge of non-tokens', { ...base, model: { ...(base.model as object), merges: ['a c'] } }],
    ['a WordPiece model', { ...base, model: { type: 'WordPiece', vocab: { a: 0 }, unk_token: 'a' } }],
    ['a subword suffix', { ...base, model: { ...(base.model as object), continuing_subword_suffix: '@@' } }],
    ['a Replace of the empty string', { ...base, normalizer: { type: 'Replace', pattern: { String: '' }, content: '_' } }],
    ['an unknown token outside the vocabulary', { ...base, model: { ...(base.model as object), unk_token: '<none>' } }],
    ['merges in two formats', { ...base, model: { ...(base.model as object), merges: [['a', 'b'], 'a b'] } }],
  ];
  for (const [what, json] of variants) assert.equal(bpeEncoder(json, {}), null, what);
  assert.equal(bpeEncoder(base, { remove_space: true }), null, 'remove_space in tokenizer_config');
  assert.ok(bpeEncoder(base, {}));
});
