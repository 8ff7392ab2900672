// Broken checkpoints fail at load time with one SoftserveError that names the
// file and, where there is one, the tensor: never a crash inside onnxruntime.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../models/engine.ts';
import { SoftserveError } from '../kernels/errors.ts';
import { serializeSafetensors } from '../models/safetensors.ts';
import { writeRandomCheckpoint, type RandomCheckpoint } from './fixtures/random-checkpoint.ts';

async function expectLoadError(
  ckpt: RandomCheckpoint, code: string, mentions: string[], options: Parameters<typeof Engine.load>[1] = {},
): Promise<void> {
  try {
    await assert.rejects(Engine.load(ckpt.dir, options), (err: unknown) => {
      assert.ok(err instanceof SoftserveError, `expected a SoftserveError, got ${String(err)}`);
      assert.equal(err.code, code, err.message);
      for (const m of mentions) assert.ok(err.message.includes(m), `"${err.message}" should mention "${m}"`);
      return true;
    });
  } finally {
    ckpt.cleanup();
  }
}

function rewriteWeights(ckpt: RandomCheckpoint, edit: (t: Map<string, { shape: number[]; data: Float32Array }>) => void): void {
  const tensors = new Map(ckpt.tensors);
  edit(tensors);
  writeFileSync(join(ckpt.dir, 'model.safetensors'),
    serializeSafetensors([...tensors].map(([name, t]) => ({ name, shape: t.shape, data: t.data }))));
}

test('missing config.json names the file', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'llama', seed: 1 });
  rmSync(join(ckpt.dir, 'config.json'));
  await expectLoadError(ckpt, 'MODEL_FILE_MISSING', ['config.json']);
});

test('malformed config.json names the file', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'gpt2', seed: 1 });
  writeFileSync(join(ckpt.dir, 'config.json'), '{"model_type": "gpt2",');
  await expectLoadError(ckpt, 'MODEL_FILE_INVALID', ['config.json']);
});

test('a config field of the wrong type names the field', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'bert', seed: 1 });
  const config = JSON.parse(readFileSync(join(ckpt.dir, 'config.json'), 'utf8'));
  config.hidden_size = 'wide';
  writeFileSync(join(ckpt.dir, 'config.json'), JSON.stringify(config));
  await expectLoadError(ckpt, 'MODEL_CONFIG_INVALID', ['hidden_size']);
});

test('an unknown architecture is refused by name', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'llama', seed: 1 });
  const config = JSON.parse(readFileSync(join(ckpt.dir, 'config.json'), 'utf8'));
  config.model_type = 'mamba';
  writeFileSync(join(ckpt.dir, 'config.json'), JSON.stringify(config));
  await expectLoadError(ckpt, 'MODEL_ARCHITECTURE_UNSUPPORTED', ['mamba', 'config.json']);
});

test('missing model.safetensors names the file', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'llama', seed: 1 });
  rmSync(join(ckpt.dir, 'model.safetensors'));
  await expectLoadError(ckpt, 'MODEL_FILE_MISSING', ['model.safetensors']);
});

test('truncated model.safetensors names the file and the tensor', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'gpt2', seed: 1 });
  const path = join(ckpt.dir, 'model.safetensors');
  const bytes = readFileSync(path);
  writeFileSync(path, bytes.subarray(0, bytes.length - 100));
  await expectLoadError(ckpt, 'MODEL_FILE_INVALID', ['model.safetensors', 'tensor "']);
});

test('a safetensors header running past the file is refused', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'gpt2', seed: 2 });
  const path = join(ckpt.dir, 'model.safetensors');
  const bytes = readFileSync(path);
  bytes.writeBigUInt64LE(BigInt(bytes.length * 2), 0);
  writeFileSync(path, bytes);
  await expectLoadError(ckpt, 'MODEL_FILE_INVALID', ['model.safetensors', 'header length']);
});

test('a tensor of the wrong shape names the tensor, the file and both shapes', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'llama', seed: 1 });
  rewriteWeights(ckpt, (t) => {
    const q = t.get('model.layers.1.self_attn.q_proj.weight')!;
    t.set('model.layers.1.self_attn.q_proj.weight', { shape: [q.shape[1]!, q.shape[0]! / 2], data: q.data.subarray(0, q.data.length / 2) });
  });
  await expectLoadError(ckpt, 'MODEL_TENSOR_SHAPE', ['model.layers.1.self_attn.q_proj.weight', 'model.safetensors', 'expected']);
});

test('a missing tensor is named', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'bert', seed: 3 });
  rewriteWeights(ckpt, (t) => t.delete('bert.encoder.layer.1.output.LayerNorm.bias'));
  await expectLoadError(ckpt, 'MODEL_TENSOR_MISSING', ['bert.encoder.layer.1.output.LayerNorm.bias']);
});

test('a shard listed in the index but absent names the shard', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'llama', seed: 1, sharded: true });
  renameSync(join(ckpt.dir, 'model-00002-of-00002.safetensors'), join(ckpt.dir, 'gone.safetensors'));
  await expectLoadError(ckpt, 'MODEL_FILE_MISSING', ['model-00002-of-00002.safetensors']);
});

test('an index naming a tensor its shard lacks names both', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'gpt2', seed: 4, sharded: true });
  const indexPath = join(ckpt.dir, 'model.safetensors.index.json');
  const index = JSON.parse(readFileSync(indexPath, 'utf8'));
  index.weight_map['h.9.attn.c_attn.weight'] = 'model-00001-of-00002.safetensors';
  writeFileSync(indexPath, JSON.stringify(index));
  await expectLoadError(ckpt, 'MODEL_TENSOR_MISSING', ['h.9.attn.c_attn.weight', 'model-00001-of-00002.safetensors']);
});

test('a malformed tokenizer.json names the file', async () => {
  const ckpt = writeRandomCheckpoint({ family: 'roberta', seed: 1 });
  writeFileSync(join(ckpt.dir, 'tokenizer.json'), 'not json');
  await expectLoadError(ckpt, 'MODEL_FILE_INVALID', ['tokenizer.json']);
});

test('an execution provider that is not installed gives a clear error', async () => {
  // The CPU-only install (onnxruntime-node-install=skip) has no CUDA provider.
  const ckpt = writeRandomCheckpoint({ family: 'llama', seed: 1 });
  await expectLoadError(ckpt, 'EXECUTION_PROVIDER_UNAVAILABLE', ['cuda'], { executionProvider: 'cuda' });
});
