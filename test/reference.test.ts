// Self-checks of the float64 reference forward (test/reference/forward.ts) and of
// the random-checkpoint fixture, without the ONNX engine: properties that hold
// for a correct transformer whatever its weights, checks of the PEFT
// conventions (soft prompts, prefixes, positions), and a real pretrained model
// (stories260k) that must write its well-known first sentence.

import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';
import {
  loadReferenceModel, buildReferenceModel, referenceForward, erf, gelu, geluTanh,
  type RefModel, type RefRow, type RefTensor,
} from './reference/forward.ts';
import {
  writeRandomCheckpoint, randomPrefix, randomSoftPrompt, toHalfBits, toBf16Bits,
  type FixtureFamily, type RandomCheckpoint, type RandomCheckpointOptions,
} from './fixtures/random-checkpoint.ts';

const STORIES = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));

const made: RandomCheckpoint[] = [];
after(() => { for (const c of made) c.cleanup(); });

function checkpoint(opts: RandomCheckpointOptions): { ckpt: RandomCheckpoint; model: RefModel } {
  const ckpt = writeRandomCheckpoint(opts);
  made.push(ckpt);
  return { ckpt, model: loadReferenceModel(ckpt.dir) };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths differ');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  const d = maxAbsDiff(a, b);
  assert.ok(d <= tol, `${what}: max |diff| ${d} > ${tol}`);
}

function spec(m: RefModel) {
  const c = m.config;
  return { hiddenSize: c.hidden, numLayers: c.layers, numKvHeads: c.kvHeads, headDim: c.headDim };
}

function ids(ckpt: RandomCheckpoint, text: string): number[] {
  return text.split(' ').map((w) => {
    const id = ckpt.vocab.get(w);
    assert.ok(id !== undefined, `fixture vocabulary lacks ${w}`);
    return id;
  });
}

const FAMILIES: FixtureFamily[] = ['llama', 'gpt2', 'bert', 'roberta'];
const CAUSAL: FixtureFamily[] = ['llama', 'gpt2'];

describe('activations', () => {
  test('erf matches known values to 1e-14', () => {
    const known: Array<[number, number]> = [
      [0, 0], [0.1, 0.1124629160182849], [0.5, 0.5204998778130465], [1, 0.8427007929497149],
      [1.5, 0.9661051464753108], [2, 0.9953222650189527], [3, 0.9999779095030014],
      [4, 0.9999999845827421], [-0.7, -0.6778011938374184], [-2.5, -0.9995930479825550],
    ];
    for (const [x, y] of known) assert.ok(Math.abs(erf(x) - y) < 1e-14, `erf(${x}) = ${erf(x)}, expected ${y}`);
  });
  test('gelu and its tanh approximation', () => {
    // gelu(1) = Phi(1) = 0.8413447460685429; gelu(-1) = -(1 - Phi(1)).
    assert.ok(Math.abs(gelu(1) - 0.8413447460685429) < 1e-14);
    assert.ok(Math.abs(gelu(-1) + 0.15865525393145707) < 1e-14);
    assert.ok(Math.abs(gelu(-8)) < 1e-13);
    for (const x of [-3, -1, -0.3, 0.2, 1, 2.5]) assert.ok(Math.abs(gelu(x) - geluTanh(x)) < 2e-3);
  });
});

describe('fixture', () => {
  test('half and bfloat16 encoders round to nearest even', () => {
    assert.equal(toHalfBits(1), 0x3c00);
    assert.equal(toHalfBits(-2), 0xc000);
    assert.equal(toHalfBits(65504), 0x7bff);
    assert.equal(toHalfBits(1e6), 0x7c00);
    assert.equal(toHalfBits(2 ** -24), 0x0001);
    assert.equal(toHalfBits(1 + 2 ** -11), 0x3c00);            // tie, to even
    assert.equal(toHalfBits(1 + 3 * 2 ** -11), 0x3c02);        // tie, to even (up)
    assert.equal(toHalfBits(0.1), 0x2e66);
    assert.equal(toBf16Bits(1), 0x3f80);
    assert.equal(toBf16Bits(-3.5), 0xc060);
    assert.equal(toBf16Bits(1 + 2 ** -8), 0x3f80);            // tie, to even
    assert.equal(toBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
  });

  for (const family of FAMILIES) {
    test(`${family}: tokenizer.json loads in @huggingface/tokenizers and adds the family's specials`, () => {
      const ckpt = writeRandomCheckpoint({ family, seed: 3 });
      made.push(ckpt);
      const tk = new Tokenizer(
        JSON.parse(readFileSync(`${ckpt.dir}/tokenizer.json`, 'utf8')),
        JSON.parse(readFileSync(`${ckpt.dir}/tokenizer_config.json`, 'utf8')),
      );
      const enc = tk.encode('the movie was great .');
      const words = ids(ckpt, 'the movie was great .');
      const s = ckpt.special;
      const expected = family === 'llama' ? [s.bos!, ...words]
        : family === 'gpt2' ? words
        : [s.cls!, ...words, s.sep!];
      assert.deepEqual(enc.ids, expected);
      assert.equal(tk.decode(words), 'the movie was great.');
      const unknown = tk.encode('zebra', { add_special_tokens: false }).ids;
      assert.deepEqual(unknown, [s.unk!]);
    });
  }

  test('sharded checkpoints load to the same tensors; F16/BF16 load their rounded values', () => {
    for (const family of FAMILIES) {
      const one = checkpoint({ family, seed: 11 });
      const sharded = checkpoint({ family, seed: 11, sharded: true });
      assert.ok(existsSync(`${sharded.ckpt.dir}/model.safetensors.index.json`));
      assert.ok(!existsSync(`${sharded.ckpt.dir}/model.safetensors`));
      assert.deepEqual([...sharded.model.tensors.keys()].sort(), [...one.model.tensors.keys()].sort());
      for (const [name, t] of one.model.tensors) {
        assert.equal(maxAbsDiff(t.data, sharded.model.tensors.get(name)!.data), 0, name);
      }
      for (const [dtype, rel] of [['F16', 2 ** -11], ['BF16', 2 ** -8]] as const) {
        const low = checkpoint({ family, seed: 11, dtype });
        for (const [name, t] of one.model.tensors) {
          const lt = low.model.tensors.get(name)!;
          for (let i = 0; i < t.data.length; i++) {
            const a = t.data[i]!;
            assert.ok(Math.abs(lt.data[i]! - a) <= rel * Math.abs(a) + 1e-7, `${dtype} ${name}[${i}]: ${lt.data[i]} vs ${a}`);
          }
        }
      }
    }
  });
});

describe('reference forward: invariants', () => {
  for (const family of ['gpt2', 'bert', 'roberta'] as const) {
    test(`${family}: tensor names with and without the base-model prefix load alike`, () => {
      const a = checkpoint({ family, seed: 4, basePrefix: true, mlmHead: false });
      const b = checkpoint({ family, seed: 4, basePrefix: false, mlmHead: false });
      const prefixName = family === 'gpt2' ? 'transformer.' : `${family}.`;
      assert.ok([...a.model.tensors.keys()].every((n) => n.startsWith(prefixName)));
      assert.ok([...b.model.tensors.keys()].every((n) => !n.startsWith(prefixName)));
      const row: RefRow = { ids: ids(a.ckpt, 'the film was good'), pooling: 'mean' };
      assertClose(referenceForward(b.model, row).pooled, referenceForward(a.model, row).pooled, 0, 'pooled');
    });
  }

  for (const family of CAUSAL) {
    test(`${family}: appending a token leaves earlier positions unchanged (causal)`, () => {
      const { ckpt, model } = checkpoint({ family, seed: 5 });
      const short = ids(ckpt, 'this movie was not very good');
      const a = referenceForward(model, { ids: short });
      const b = referenceForward(model, { ids: [...short, ckpt.vocab.get('!')!] });
      for (let t = 0; t < short.length; t++) assertClose(a.hidden[t]!, b.hidden[t]!, 1e-12, `position ${t}`);
      assert.ok(maxAbsDiff(a.hidden[short.length - 1]!, b.hidden[short.length]!) > 1e-3);
    });
  }

  for (const family of ['bert', 'roberta'] as const) {
    test(`${family}: attention is bidirectional (a later token changes earlier states)`, () => {
      const { ckpt, model } = checkpoint({ family, seed: 5 });
      const short = ids(ckpt, 'this movie was not very good');
      const a = referenceForward(model, { ids: short, pooling: 'mean' });
      const b = referenceForward(model, { ids: [...short, ckpt.vocab.get('!')!], pooling: 'mean' });
      assert.ok(maxAbsDiff(a.hidden[0]!, b.hidden[0]!) > 1e-4);
      assert.throws(() => referenceForward(model, { ids: short, labelIds: [5] }), /scorePosition/);
    });
  }

  for (const family of FAMILIES) {
    test(`${family}: a soft prompt equal to embedding rows reproduces those tokens`, () => {
      const { ckpt, model } = checkpoint({ family, seed: 7 });
      const V = model.config.vocabSize;
      const H = model.config.hidden;
      const text = ids(ckpt, 'i love this film , it was awesome');
      const word = model.tensors.get(
        family === 'llama' ? 'model.embed_tokens.weight' : family === 'gpt2' ? 'wte.weight' : `${family}.embeddings.word_embeddings.weight`)!;
      // Soft tokens 0..2 stand for text[1], text[2], text[5]; a padded 4th row is never read.
      const picks = [1, 2, 5];
      const soft = new Float64Array(4 * H).fill(7);
      picks.forEach((p, j) => soft.set(word.data.subarray(text[p]! * H, (text[p]! + 1) * H), j * H));
      const virtualIds = text.map((id, t) => (picks.includes(t) ? V + picks.indexOf(t) : id));
      const s = text.length - 2;
      const labelIds = ids(ckpt, 'great terrible good');
      const plain = referenceForward(model, { ids: text, scorePosition: s, labelIds });
      const virt = referenceForward(model, { ids: virtualIds, softPrompt: soft, softPromptLength: 3, scorePosition: s, labelIds });
      for (let t = 0; t < text.length; t++) assertClose(virt.hidden[t]!, plain.hidden[t]!, 1e-12, `position ${t}`);
      assertClose(virt.scores, plain.scores, 1e-11, 'scores');
      assert.throws(() => referenceForward(model, { ids: [V + 3], softPrompt: soft, softPromptLength: 3, scorePosition: 0 }), /out of range/);
    });

    test(`${family}: prefixLength reads only the first positions of a longer stored prefix`, () => {
      const { ckpt, model } = checkpoint({ family, seed: 8 });
      const sp = spec(model);
      const P = 3;
      const Pstored = 5;
      const short = randomPrefix(sp, P, 21);
      // Copy it into a [L,2,KV,5,D] buffer with garbage in the two extra positions.
      const long = randomPrefix(sp, Pstored, 22);
      const { numLayers: L, numKvHeads: KV, headDim: D } = sp;
      for (let b = 0; b < L * 2 * KV; b++) long.set(short.subarray(b * P * D, (b + 1) * P * D), b * Pstored * D);
      const text = ids(ckpt, 'the plot was bad but the music was good');
      const row = { ids: text, scorePosition: 4, labelIds: ids(ckpt, 'yes no'), pooling: 'mean' as const };
      const a = referenceForward(model, { ...row, prefix: short });
      const b = referenceForward(model, { ...row, prefix: long, prefixLength: P });
      assertClose(b.pooled, a.pooled, 1e-12, 'pooled');
      assertClose(b.scores, a.scores, 1e-12, 'scores');
      assert.deepEqual(a.positions, text.map((_, t) => model.config.positionOffset + P + t));
      const none = referenceForward(model, row);
      assert.ok(maxAbsDiff(none.pooled, a.pooled) > 1e-4, 'a prefix must change the result');
    });
  }

  for (const opts of [
    { family: 'llama' as const, seed: 9 },
    { family: 'llama' as const, seed: 10, attentionBias: true, tieWordEmbeddings: false, headDim: 12, kvHeads: 1 },
    { family: 'gpt2' as const, seed: 9 },
  ]) {
    test(`${JSON.stringify(opts)}: the cache of P tokens, used as a prefix, continues the same sequence`, () => {
      const { ckpt, model } = checkpoint(opts);
      const all = ids(ckpt, 'the story was very good and the actor was great !');
      const P = 4;
      const labelIds = ids(ckpt, 'positive negative');
      const full = referenceForward(model, { ids: all, labelIds });
      const head = referenceForward(model, { ids: all.slice(0, P) });
      const tail = referenceForward(model, { ids: all.slice(P), prefix: head.cache, labelIds });
      for (let t = P; t < all.length; t++) assertClose(tail.hidden[t - P]!, full.hidden[t]!, 1e-12, `position ${t}`);
      assertClose(tail.scores, full.scores, 1e-11, 'scores');
      // The tail's own cache is the full run's cache after P (keys rotated at their true positions).
      const { layers: L, kvHeads: KV, headDim: D } = model.config;
      const T = all.length;
      for (let b = 0; b < L * 2 * KV; b++) {
        for (let t = P; t < T; t++) {
          assertClose(tail.cache.subarray(((b * (T - P)) + t - P) * D, ((b * (T - P)) + t - P + 1) * D),
            full.cache.subarray((b * T + t) * D, (b * T + t + 1) * D), 1e-12, `cache block ${b} position ${t}`);
        }
      }
      // Without the prefix the text alone starts at position 0 and differs.
      const alone = referenceForward(model, { ids: all.slice(P), labelIds });
      assert.ok(maxAbsDiff(alone.scores, full.scores) > 1e-4);
    });
  }

  test('llama: grouped-query attention equals multi-head attention with repeated kv heads', () => {
    const { ckpt, model } = checkpoint({ family: 'llama', seed: 12, heads: 4, kvHeads: 2 });
    const c = model.config;
    const group = c.heads / c.kvHeads;
    const tensors = new Map<string, RefTensor>(model.tensors);
    for (let l = 0; l < c.layers; l++) {
      for (const m of ['k_proj', 'v_proj']) {
        const name = `model.layers.${l}.self_attn.${m}.weight`;
        const w = model.tensors.get(name)!;
        const rows = c.headDim * c.hidden;
        const data = new Float64Array(c.heads * rows);
        for (let h = 0; h < c.heads; h++) data.set(w.data.subarray(Math.floor(h / group) * rows, (Math.floor(h / group) + 1) * rows), h * rows);
        tensors.set(name, { shape: [c.heads * c.headDim, c.hidden], data });
      }
    }
    const mha = buildReferenceModel({ ...model.raw, num_key_value_heads: c.heads }, tensors);
    const row: RefRow = { ids: ids(ckpt, 'i hate this movie'), labelIds: ids(ckpt, 'bad good awful') };
    const a = referenceForward(model, row);
    const b = referenceForward(mha, row);
    for (let t = 0; t < row.ids.length; t++) assertClose(b.hidden[t]!, a.hidden[t]!, 1e-12, `position ${t}`);
    assertClose(b.scores, a.scores, 1e-12, 'scores');
  });

  test('roberta equals bert with the position table shifted by pad_token_id + 1', () => {
    const { ckpt, model } = checkpoint({ family: 'roberta', seed: 13 });
    const c = model.config;
    const offset = c.positionOffset;
    assert.equal(offset, ckpt.special.pad! + 1);
    const tensors = new Map<string, RefTensor>();
    for (const [name, t] of model.tensors) {
      let n = name.replace(/^roberta\./, 'bert.')
        .replace(/^lm_head\.dense\./, 'cls.predictions.transform.dense.')
        .replace(/^lm_head\.layer_norm\./, 'cls.predictions.transform.LayerNorm.')
        .replace(/^lm_head\.bias$/, 'cls.predictions.bias');
      if (n === 'bert.embeddings.position_embeddings.weight') {
        tensors.set(n, { shape: [t.shape[0]! - offset, c.hidden], data: t.data.slice(offset * c.hidden) });
        continue;
      }
      tensors.set(n, t);
    }
    const bert = buildReferenceModel({
      ...model.raw, model_type: 'bert', pad_token_id: 0, max_position_embeddings: c.maxPositions - offset,
      layer_norm_eps: c.eps, hidden_act: 'gelu',
    }, tensors);
    const text = [ckpt.special.cls!, ...ids(ckpt, 'it was a great film'), ckpt.special.mask!, ckpt.special.sep!];
    const row: RefRow = { ids: text, scorePosition: text.length - 2, labelIds: ids(ckpt, 'great terrible') };
    const a = referenceForward(model, row);
    const b = referenceForward(bert, row);
    assertClose(b.scores, a.scores, 1e-12, 'scores');
    assertClose(b.pooled, a.pooled, 1e-12, 'pooled');
    assert.deepEqual(a.positions, text.map((_, t) => t + offset));
  });

  for (const family of CAUSAL) {
    test(`${family}: a linear head holding the output embeddings equals the verbalizer; pooling and masks`, () => {
      const untied = family === 'llama';
      const { ckpt, model } = checkpoint({ family, seed: 14, ...(untied ? { tieWordEmbeddings: false } : {}) });
      const H = model.config.hidden;
      const out = model.tensors.get(untied ? 'lm_head.weight' : 'wte.weight')!;
      const labelIds = ids(ckpt, 'sports politics science world');
      const weight = new Float32Array(labelIds.length * H);
      const w64 = new Float64Array(labelIds.length * H);
      labelIds.forEach((id, k) => { w64.set(out.data.subarray(id * H, (id + 1) * H), k * H); });
      weight.set(w64);
      // The head is float32; compare to the verbalizer on float32-rounded weights via tolerance.
      const text = ids(ckpt, 'the question is science');
      const verb = referenceForward(model, { ids: text, labelIds });
      const head = referenceForward(model, {
        ids: text, head: { weight, bias: new Float32Array(labelIds.length), numClasses: labelIds.length },
      });
      assertClose(head.scores, verb.scores, 1e-12, 'head vs verbalizer'); // fixture weights are float32 already
      assertClose(verb.pooled, verb.hidden[text.length - 1]!, 0, 'last pooling');
      const mean = referenceForward(model, { ids: text, pooling: 'mean', labelIds });
      const m = new Float64Array(H);
      for (const h of mean.hidden) for (let i = 0; i < H; i++) m[i] += h[i]! / text.length;
      assertClose(mean.pooled, m, 1e-15, 'mean pooling');
      const masked = referenceForward(model, { ids: text, labelIds, classMask: [true, false, true, true], numClasses: 6 });
      assert.deepEqual([...masked.scores].map((v) => v === -Infinity), [false, true, false, false, true, true]);
      assert.equal(masked.scores[2], verb.scores[2]);
      // A bias moves the head's scores by exactly the bias.
      const bias = new Float32Array([0.5, -1, 0.25, 2]);
      const biased = referenceForward(model, { ids: text, head: { weight, bias, numClasses: 4 } });
      for (let k = 0; k < 4; k++) assert.ok(Math.abs(biased.scores[k]! - head.scores[k]! - bias[k]!) < 1e-12);
    });
  }

  for (const family of ['bert', 'roberta'] as const) {
    test(`${family}: the MLM verbalizer reads the mask position, and a checkpoint without the head refuses it`, () => {
      const { ckpt, model } = checkpoint({ family, seed: 15 });
      const s = ckpt.special;
      const text = [s.cls!, ...ids(ckpt, 'it was'), s.mask!, ...ids(ckpt, '.'), s.sep!];
      const labelIds = ids(ckpt, 'great terrible');
      const r = referenceForward(model, { ids: text, scorePosition: 3, labelIds });
      assert.equal(r.scores.length, 2);
      assert.ok(r.scores.every(Number.isFinite));
      const r2 = referenceForward(model, { ids: text, scorePosition: 2, labelIds });
      assert.ok(maxAbsDiff(r.scores, r2.scores) > 1e-6);
      const bare = checkpoint({ family, seed: 15, mlmHead: false });
      assert.throws(() => referenceForward(bare.model, { ids: text, scorePosition: 3, labelIds }), /MLM head/);
      const bareOut = referenceForward(bare.model, { ids: text, pooling: 'mean' });
      assertClose(bareOut.pooled, referenceForward(model, { ids: text, pooling: 'mean' }).pooled, 0, 'same body');
    });
  }

  test('random soft prompts and prefixes are deterministic and sized from the spec', () => {
    const shape = { hiddenSize: 32, numLayers: 2, numKvHeads: 2, headDim: 8 };
    assert.equal(randomSoftPrompt(shape, 5, 1).length, 5 * 32);
    assert.equal(randomPrefix(shape, 3, 1).length, 2 * 2 * 2 * 3 * 8);
    assert.deepEqual(randomPrefix(shape, 3, 4), randomPrefix(shape, 3, 4));
    assert.notDeepEqual(randomSoftPrompt(shape, 3, 4), randomSoftPrompt(shape, 3, 5));
  });
});

describe('stories260k', { skip: existsSync(STORIES) ? false : `${STORIES} not found` }, () => {
  test('greedy decoding from BOS writes "Once upon a time, there was a little girl named Lily. ..."', () => {
    const model = loadReferenceModel(STORIES);
    assert.equal(model.config.kvHeads, 4);
    const tk = new Tokenizer(
      JSON.parse(readFileSync(`${STORIES}/tokenizer.json`, 'utf8')),
      JSON.parse(readFileSync(`${STORIES}/tokenizer_config.json`, 'utf8')),
    );
    const V = model.config.vocabSize;
    const all = Array.from({ length: V }, (_, i) => i);
    const seq = [1];
    for (let step = 0; step < 26; step++) {
      const { scores } = referenceForward(model, { ids: seq, labelIds: all });
      let best = 0;
      for (let i = 1; i < V; i++) if (scores[i]! > scores[best]!) best = i;
      seq.push(best);
    }
    const text = tk.decode(seq, { skip_special_tokens: true });
    assert.match(text, /^Once upon a time, there was a little girl named Lily\. She loved to play outside/, text);
  });
});
