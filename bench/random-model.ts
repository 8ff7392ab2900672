// Writes a randomly initialised BERT checkpoint directory (config.json,
// model.safetensors, a word-level tokenizer.json) for benchmarks that need a
// model of realistic size without a download. The weights are noise: only the
// shapes, and so the cost, are those of a real model.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeSafetensors, type TensorToWrite } from '../models/safetensors.ts';

export interface RandomBertOptions {
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
  seed: number;
}

export const BERT_BASE: RandomBertOptions = {
  hidden: 768, layers: 12, heads: 12, intermediate: 3072, vocab: 30522, maxPositions: 512, seed: 1,
};

export function writeRandomBert(dir: string, o: RandomBertOptions): void {
  mkdirSync(dir, { recursive: true });
  let s = o.seed >>> 0;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], fill: 'noise' | 'ones' | 'zeros') => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (fill === 'ones') data.fill(1);
    else if (fill === 'noise') for (let i = 0; i < n; i++) data[i] = rand() * 0.04;
    tensors.push({ name, shape, data });
  };
  const H = o.hidden;
  add('bert.embeddings.word_embeddings.weight', [o.vocab, H], 'noise');
  add('bert.embeddings.position_embeddings.weight', [o.maxPositions, H], 'noise');
  add('bert.embeddings.token_type_embeddings.weight', [2, H], 'noise');
  add('bert.embeddings.LayerNorm.weight', [H], 'ones');
  add('bert.embeddings.LayerNorm.bias', [H], 'zeros');
  for (let l = 0; l < o.layers; l++) {
    const p = `bert.encoder.layer.${l}`;
    for (const n of ['query', 'key', 'value']) {
      add(`${p}.attention.self.${n}.weight`, [H, H], 'noise');
      add(`${p}.attention.self.${n}.bias`, [H], 'zeros');
    }
    add(`${p}.attention.output.dense.weight`, [H, H], 'noise');
    add(`${p}.attention.output.dense.bias`, [H], 'zeros');
    add(`${p}.attention.output.LayerNorm.weight`, [H], 'ones');
    add(`${p}.attention.output.LayerNorm.bias`, [H], 'zeros');
    add(`${p}.intermediate.dense.weight`, [o.intermediate, H], 'noise');
    add(`${p}.intermediate.dense.bias`, [o.intermediate], 'zeros');
    add(`${p}.output.dense.weight`, [H, o.intermediate], 'noise');
    add(`${p}.output.dense.bias`, [H], 'zeros');
    add(`${p}.output.LayerNorm.weight`, [H], 'ones');
    add(`${p}.output.LayerNorm.bias`, [H], 'zeros');
  }
  add('cls.predictions.transform.dense.weight', [H, H], 'noise');
  add('cls.predictions.transform.dense.bias', [H], 'zeros');
  add('cls.predictions.transform.LayerNorm.weight', [H], 'ones');
  add('cls.predictions.transform.LayerNorm.bias', [H], 'zeros');
  add('cls.predictions.bias', [o.vocab], 'zeros');
  writeFileSync(join(dir, 'model.safetensors'), serializeSafetensors(tensors));

  writeFileSync(join(dir, 'config.json'), JSON.stringify({
    architectures: ['BertForMaskedLM'], model_type: 'bert', hidden_size: H, num_hidden_layers: o.layers,
    num_attention_heads: o.heads, intermediate_size: o.intermediate, vocab_size: o.vocab,
    max_position_embeddings: o.maxPositions, type_vocab_size: 2, layer_norm_eps: 1e-12, hidden_act: 'gelu', pad_token_id: 0,
  }, null, 2));
  const special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const vocab: Record<string, number> = {};
  special.forEach((t, i) => { vocab[t] = i; });
  for (let i = special.length; i < o.vocab; i++) vocab[`w${i}`] = i;
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify({
    version: '1.0',
    added_tokens: special.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'WordLevel', vocab, unk_token: '[UNK]' },
  }));
}
