// PEFT import/export against a hand-built stories260k ModelSpec: shapes per
// PEFT type (with grouped-query prefixes), the prefix layout against a
// simulation of PEFT's own view/permute, dtypes, validation errors, and
// bit-identical round trips.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SoftserveError, type ErrorCode } from '../kernels/errors.ts';
import type { ModelSpec } from '../models/spec.ts';
import { parseSafetensors, toFloat32 } from '../models/safetensors.ts';
import { DEFAULT_PROMPT_LIMITS, decodePromptFile, encodePromptFile, modelDims, parseJsonPrompt } from '../prompts/kinds.ts';
import { exportPeft, importPeft, prefixFromPeft, prefixToPeft } from '../prompts/peft.ts';
import {
  SPEC, adapterConfig, bf16Bytes, buildPeft, f16Bytes, f32Bytes, rawSafetensors, randomFloats,
} from './store-helpers.ts';

const LIMITS = DEFAULT_PROMPT_LIMITS;
const enc = (o: unknown): Uint8Array => Buffer.from(JSON.stringify(o));

function expectCode(fn: () => unknown, code: ErrorCode, messageIncludes?: RegExp): SoftserveError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SoftserveError, `expected SoftserveError ${code}, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (messageIncludes) assert.match(err.message, messageIncludes);
    return err;
  }
  assert.fail(`expected ${code}, nothing was thrown`);
}

/**
 * PEFT's get_prompt for prefixes, simulated with strides the way torch does
 * it: view [P, L*2, heads, token_dim/heads] of the saved rows, permute to
 * [L*2, heads, P, head_dim] (batch dropped), then pairs: slot 2l is layer l's
 * key, 2l+1 its value. Returns (l, kv, h, p, d) -> value.
 */
function peftPastKeyValues(rows: Float32Array, cfg: { num_virtual_tokens: number; num_layers: number; num_attention_heads: number; token_dim: number }) {
  const P = cfg.num_virtual_tokens;
  const viewShape = [P, cfg.num_layers * 2, cfg.num_attention_heads, cfg.token_dim / cfg.num_attention_heads];
  const strides = [viewShape[1]! * viewShape[2]! * viewShape[3]!, viewShape[2]! * viewShape[3]!, viewShape[3]!, 1];
  const perm = [1, 2, 0, 3];
  const pStrides = perm.map((i) => strides[i]!);
  return (l: number, kv: number, h: number, p: number, d: number): number => {
    const idx = [l * 2 + kv, h, p, d];
    return rows[idx.reduce((acc, v, i) => acc + v * pStrides[i]!, 0)]!;
  };
}

describe('PEFT shapes follow the model (stories260k: hidden 64, 5 layers, 8 heads, 4 KV heads)', () => {
  it('PROMPT_TUNING and P_TUNING are [P, hidden]; PREFIX_TUNING is [P, layers*2*kv_heads*head_dim]', () => {
    for (const t of ['PROMPT_TUNING', 'P_TUNING'] as const) {
      const f = buildPeft(SPEC, t, 5, 1);
      const imp = importPeft(f, SPEC, LIMITS);
      assert.equal(imp.tensors.kind, t === 'PROMPT_TUNING' ? 'soft' : 'ptuning');
      assert.equal(imp.tensors.numVirtualTokens, 5);
      assert.equal(imp.tensors.data.length, 5 * 64);
      assert.deepEqual(imp.tensors.data, f.values);
    }
    const f = buildPeft(SPEC, 'PREFIX_TUNING', 3, 2);
    assert.equal(f.values.length, 3 * 5 * 2 * 4 * 8);
    const imp = importPeft(f, SPEC, LIMITS);
    assert.equal(imp.tensors.kind, 'prefix');
    assert.equal(imp.tensors.data.length, 5 * 2 * 4 * 3 * 8);
  });

  it('prefix rows land in the engine layout [L,2,KV,P,D] exactly where PEFT\'s view/permute puts them', () => {
    const P = 3;
    const f = buildPeft(SPEC, 'PREFIX_TUNING', P, 3);
    const engine = importPeft(f, SPEC, LIMITS).tensors.data;
    const pkv = peftPastKeyValues(f.values, adapterConfig(SPEC, 'PREFIX_TUNING', P) as never);
    const { numLayers: L, numKvHeads: KV, headDim: D } = SPEC;
    let checked = 0;
    for (let l = 0; l < L; l++) for (let kv = 0; kv < 2; kv++) for (let h = 0; h < KV; h++) for (let p = 0; p < P; p++) for (let d = 0; d < D; d++) {
      const at = (((l * 2 + kv) * KV + h) * P + p) * D + d;
      assert.equal(engine[at], pkv(l, kv, h, p, d), `l=${l} kv=${kv} h=${h} p=${p} d=${d}`);
      checked++;
    }
    assert.equal(checked, engine.length);
    // and back
    assert.deepEqual(prefixToPeft(engine, SPEC, P), f.values);
    assert.deepEqual(prefixFromPeft(f.values, SPEC, P), engine);
  });

  it('a model without grouped-query attention keeps token_dim = hidden for prefixes', () => {
    const mha: ModelSpec = { ...SPEC, family: 'gpt2', modelType: 'gpt2', numKvHeads: 8 };
    const f = buildPeft(mha, 'PREFIX_TUNING', 2, 4);
    assert.equal(f.values.length, 2 * 5 * 2 * 64);
    const imp = importPeft(f, mha, LIMITS);
    const cfg = JSON.parse(Buffer.from(exportPeft(imp.tensors, mha).config).toString());
    assert.equal(cfg.token_dim, 64);
    assert.equal(cfg.num_attention_heads, 8);
  });
});

describe('PEFT dtypes', () => {
  it('F16 and BF16 are accepted and stored as F32, exactly', () => {
    const v = randomFloats(4 * 64, 9);
    for (const [dtype, bytes] of [['F16', f16Bytes(v)], ['BF16', bf16Bytes(v)]] as const) {
      const model = rawSafetensors([{ name: 'prompt_embeddings', dtype, shape: [4, 64], bytes }]);
      const imp = importPeft({ config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', 4)), model }, SPEC, LIMITS);
      assert.equal(imp.sourceDtype, dtype);
      const expected = toFloat32(parseSafetensors(model).tensors.get('prompt_embeddings')!);
      assert.deepEqual(imp.tensors.data, expected);
      // the conversion is close to the original floats
      for (let i = 0; i < v.length; i++) assert.ok(Math.abs(imp.tensors.data[i]! - v[i]!) < 1e-2);
    }
  });

  it('F64, integer and bool tensors are refused with PROMPT_DTYPE_UNSUPPORTED', () => {
    for (const [dtype, width] of [['F64', 8], ['I32', 4], ['BOOL', 1]] as const) {
      const model = rawSafetensors([{ name: 'prompt_embeddings', dtype, shape: [2, 64], bytes: new Uint8Array(2 * 64 * width) }]);
      const err = expectCode(() => importPeft({ config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', 2)), model }, SPEC, LIMITS), 'PROMPT_DTYPE_UNSUPPORTED', /expected F32, F16 or BF16/);
      assert.equal(err.details?.got, dtype);
    }
  });
});

describe('PEFT round trip', () => {
  for (const t of ['PROMPT_TUNING', 'P_TUNING', 'PREFIX_TUNING'] as const) {
    it(`${t}: import, export, import gives bit-identical tensors and identical files`, () => {
      const f = buildPeft(SPEC, t, 6, 11, { dtype: 'BF16' });
      const a = importPeft(f, SPEC, LIMITS);
      const out1 = exportPeft(a.tensors, SPEC, { storedConfig: a.config });
      const b = importPeft(out1, SPEC, LIMITS);
      assert.deepEqual(new Uint8Array(b.tensors.data.buffer), new Uint8Array(a.tensors.data.buffer));
      const out2 = exportPeft(b.tensors, SPEC, { storedConfig: b.config });
      assert.deepEqual(out2.model, out1.model);
      assert.deepEqual(out2.config, out1.config);
      // stored form is deterministic too
      assert.deepEqual(encodePromptFile(modelDims(SPEC), a.tensors), encodePromptFile(modelDims(SPEC), b.tensors));
      // what PEFT reads: one F32 tensor prompt_embeddings, [P, width], format pt
      const parsed = parseSafetensors(out1.model);
      assert.deepEqual([...parsed.tensors.keys()], ['prompt_embeddings']);
      assert.equal(parsed.tensors.get('prompt_embeddings')!.dtype, 'F32');
      assert.equal(parsed.metadata.format, 'pt');
      const cfg = JSON.parse(Buffer.from(out1.config).toString());
      assert.equal(cfg.peft_type, t);
      assert.equal(cfg.inference_mode, true);
      assert.equal(cfg.num_virtual_tokens, 6);
      assert.equal(cfg.num_layers, 5);
      assert.equal(cfg.num_transformer_submodules, 1);
      assert.equal(cfg.base_model_name_or_path, 'stories260k');
      assert.equal(cfg.token_dim, t === 'PREFIX_TUNING' ? 32 : 64);
      assert.equal(cfg.num_attention_heads, t === 'PREFIX_TUNING' ? 4 : 8);
      assert.deepEqual(parsed.tensors.get('prompt_embeddings')!.shape, [6, t === 'PREFIX_TUNING' ? 320 : 64]);
    });
  }

  it('negative zero, subnormals and extremes survive bit for bit', () => {
    const v = randomFloats(2 * 64, 5);
    v[0] = -0; v[1] = 1e-45; v[2] = 3.4028234663852886e38; v[3] = -1.1754942e-38;
    const f = { config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', 2)), model: rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [2, 64], bytes: f32Bytes(v) }]) };
    const a = importPeft(f, SPEC, LIMITS);
    const back = importPeft(exportPeft(a.tensors, SPEC), SPEC, LIMITS);
    assert.deepEqual(new Uint32Array(back.tensors.data.buffer), new Uint32Array(v.buffer));
  });

  it('a linear head travels as base_model.score.{weight,bias} with task_type SEQ_CLS', () => {
    const f = buildPeft(SPEC, 'PROMPT_TUNING', 2, 21, { head: { classes: 3, bias: true } });
    const a = importPeft(f, SPEC, LIMITS, 3);
    assert.equal(a.tensors.head!.weight.length, 3 * 64);
    const out = exportPeft(a.tensors, SPEC, { storedConfig: a.config });
    const cfg = JSON.parse(Buffer.from(out.config).toString());
    assert.equal(cfg.task_type, 'SEQ_CLS');
    assert.deepEqual(cfg.modules_to_save, ['score']);
    const b = importPeft(out, SPEC, LIMITS, 3);
    assert.deepEqual(b.tensors.head, a.tensors.head);
    expectCode(() => importPeft(f, SPEC, LIMITS, 2), 'PROMPT_SHAPE_MISMATCH', /3 classes; the task has 2 labels/);
    // no bias: zeros, and export leaves it out
    const nb = importPeft(buildPeft(SPEC, 'PROMPT_TUNING', 2, 22, { head: { classes: 2, bias: false } }), SPEC, LIMITS);
    assert.deepEqual(nb.tensors.head!.bias, new Float32Array(2));
    assert.ok(!parseSafetensors(exportPeft(nb.tensors, SPEC).model).tensors.has('base_model.score.bias'));
  });

  it('the stored file decodes to what was encoded', () => {
    const a = importPeft(buildPeft(SPEC, 'PREFIX_TUNING', 4, 31, { head: { classes: 2, bias: true } }), SPEC, LIMITS);
    const bytes = encodePromptFile(modelDims(SPEC), a.tensors);
    const d = decodePromptFile(bytes, modelDims(SPEC), 'prefix', 4, true);
    assert.deepEqual(d.data, a.tensors.data);
    assert.deepEqual(d.head, a.tensors.head);
    expectCode(() => decodePromptFile(bytes, modelDims(SPEC), 'soft', 4, true), 'PROMPT_FILE_CORRUPT');
  });
});

describe('PEFT validation: each mismatch names what was expected and what came', () => {
  const p = 4;
  const model = (t: 'PROMPT_TUNING' | 'PREFIX_TUNING', width = t === 'PREFIX_TUNING' ? 320 : 64, rows = p) =>
    rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [rows, width], bytes: f32Bytes(randomFloats(rows * width, 1)) }]);

  it('adapter_config.json that is not JSON, not an object, or lacks fields: INVALID_ADAPTER_CONFIG', () => {
    const m = model('PROMPT_TUNING');
    expectCode(() => importPeft({ config: Buffer.from('{"peft_type": "PROMPT_TUNING",'), model: m }, SPEC, LIMITS), 'INVALID_ADAPTER_CONFIG', /not valid UTF-8 JSON/);
    expectCode(() => importPeft({ config: Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), model: m }, SPEC, LIMITS), 'INVALID_ADAPTER_CONFIG');
    expectCode(() => importPeft({ config: enc([1, 2]), model: m }, SPEC, LIMITS), 'INVALID_ADAPTER_CONFIG', /JSON object/);
    expectCode(() => importPeft({ config: enc({ num_virtual_tokens: 4 }), model: m }, SPEC, LIMITS), 'INVALID_ADAPTER_CONFIG', /peft_type/);
    expectCode(() => importPeft({ config: enc({ ...adapterConfig(SPEC, 'PROMPT_TUNING', p), num_virtual_tokens: '4' }), model: m }, SPEC, LIMITS), 'INVALID_ADAPTER_CONFIG', /num_virtual_tokens/);
    expectCode(() => importPeft({ config: enc({ ...adapterConfig(SPEC, 'PROMPT_TUNING', p), token_dim: -64 }), model: m }, SPEC, LIMITS), 'INVALID_ADAPTER_CONFIG', /token_dim/);
    expectCode(() => importPeft({ config: Buffer.alloc(LIMITS.maxAdapterConfigBytes + 1, 0x20), model: m }, SPEC, LIMITS), 'PAYLOAD_TOO_LARGE');
  });

  it('unknown or unsupported peft_type: UNSUPPORTED_PEFT_TYPE', () => {
    for (const t of ['LORA', 'ADAPTION_PROMPT', 'prompt_tuning', 'X']) {
      const err = expectCode(() => importPeft({ config: enc({ ...adapterConfig(SPEC, 'PROMPT_TUNING', p), peft_type: t }), model: model('PROMPT_TUNING') }, SPEC, LIMITS), 'UNSUPPORTED_PEFT_TYPE');
      assert.equal(err.details?.got, t);
    }
  });

  it('another model\'s size: PROMPT_SHAPE_MISMATCH with expected and got', () => {
    let err = expectCode(() => importPeft({ config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', p, { token_dim: 128 })), model: model('PROMPT_TUNING', 128) }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /token_dim is 128; the loaded model needs 64/);
    assert.deepEqual([err.details?.expected, err.details?.got], [64, 128]);
    expectCode(() => importPeft({ config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', p, { num_layers: 12 })), model: model('PROMPT_TUNING') }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /num_layers is 12; the loaded model needs 5/);
    expectCode(() => importPeft({ config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', p, { num_attention_heads: 12 })), model: model('PROMPT_TUNING') }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /num_attention_heads/);
    expectCode(() => importPeft({ config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', p, { num_transformer_submodules: 2 })), model: model('PROMPT_TUNING') }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /encoder-decoder/);
    // config silent on dims, tensor of another width
    err = expectCode(() => importPeft({ config: enc({ peft_type: 'PROMPT_TUNING', num_virtual_tokens: p }), model: model('PROMPT_TUNING', 96) }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /has shape \[4, 96\]; the loaded model expects \[4, 64\]/);
    assert.deepEqual(err.details?.expected, [4, 64]);
    // rows disagree with num_virtual_tokens
    expectCode(() => importPeft({ config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', p)), model: model('PROMPT_TUNING', 64, 5) }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /\[5, 64\].*\[4, 64\]/);
  });

  it('a grouped-query prefix with token_dim = hidden (old PEFT) is refused with the reason', () => {
    const cfg = adapterConfig(SPEC, 'PREFIX_TUNING', p, { token_dim: 64, num_attention_heads: 8 });
    const err = expectCode(() => importPeft({ config: enc(cfg), model: model('PREFIX_TUNING', 640) }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /num_key_value_heads \* head_dim/);
    assert.equal(err.details?.expected, 32);
    expectCode(() => importPeft({ config: enc(adapterConfig(SPEC, 'PREFIX_TUNING', p, { num_attention_heads: 8 })), model: model('PREFIX_TUNING') }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /num_key_value_heads/);
    expectCode(() => importPeft({ config: enc({ peft_type: 'PREFIX_TUNING', num_virtual_tokens: p }), model: model('PREFIX_TUNING', 640) }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /\[4, 320\]/);
  });

  it('too many virtual tokens: PROMPT_TOO_LONG', () => {
    const n = LIMITS.maxVirtualTokens + 1;
    expectCode(() => importPeft({ config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', n)), model: model('PROMPT_TUNING', 64, n) }, SPEC, LIMITS), 'PROMPT_TOO_LONG', /at most 256/);
  });

  it('NaN and Inf: PROMPT_NOT_FINITE, naming the index', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const v = randomFloats(p * 64, 3);
      v[77] = bad;
      const m = rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: f32Bytes(v) }]);
      const err = expectCode(() => importPeft({ config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', p)), model: m }, SPEC, LIMITS), 'PROMPT_NOT_FINITE', /index 77/);
      assert.equal(err.details?.index, 77);
    }
    // F16 infinity (0x7c00)
    const h = new Uint8Array(p * 64 * 2);
    new DataView(h.buffer).setUint16(10, 0x7c00, true);
    expectCode(() => importPeft({ config: enc(adapterConfig(SPEC, 'PROMPT_TUNING', p)), model: rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F16', shape: [p, 64], bytes: h }]) }, SPEC, LIMITS), 'PROMPT_NOT_FINITE', /index 5/);
  });

  it('missing or unexpected tensors: INVALID_SAFETENSORS', () => {
    const cfg = enc(adapterConfig(SPEC, 'PROMPT_TUNING', p));
    expectCode(() => importPeft({ config: cfg, model: rawSafetensors([{ name: 'embedding.weight', dtype: 'F32', shape: [p, 64], bytes: new Uint8Array(p * 256) }]) }, SPEC, LIMITS), 'INVALID_SAFETENSORS', /unexpected tensor "embedding.weight"/);
    expectCode(() => importPeft({ config: cfg, model: rawSafetensors([]) }, SPEC, LIMITS), 'INVALID_SAFETENSORS', /no "prompt_embeddings"/);
  });

  it('malformed safetensors: INVALID_SAFETENSORS for each way a file can lie', () => {
    const cfg = enc(adapterConfig(SPEC, 'PROMPT_TUNING', p));
    const good = f32Bytes(randomFloats(p * 64, 1));
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['shorter than 8 bytes', new Uint8Array(5), /shorter than the 8-byte/],
      ['header length beyond the file', rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: good }], { headerLenOverride: 1n << 40n }), /runs past the end/],
      ['offsets out of range', rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: good, offsets: [16, 16 + good.length] }]), /out of range/],
      ['overlapping tensors', rawSafetensors([
        { name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: good, offsets: [0, good.length] },
        { name: 'base_model.score.weight', dtype: 'F32', shape: [2, 64], bytes: new Uint8Array(512), offsets: [512, 1024] },
      ]), /overlap/],
      ['unknown dtype', rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F8_E4M3', shape: [p, 64], bytes: new Uint8Array(p * 64) }]), /unknown dtype/],
      ['truncated data', rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: good }]).subarray(0, 200), /out of range|runs past/],
      ['header not JSON', (() => { const b = rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: good }]); b[8] = 0x5b; return b; })(), /not valid UTF-8 JSON|not a JSON object/],
      ['shape disagrees with byte count', rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: good.subarray(0, 100) }]), /expected 1024/],
      ['a header of many megabytes', rawSafetensors([{ name: 'prompt_embeddings', dtype: 'F32', shape: [p, 64], bytes: good }], { headerPad: 3 * 1024 * 1024 }), /exceeds the limit/],
    ];
    for (const [what, bytes, re] of cases) {
      expectCode(() => importPeft({ config: cfg, model: bytes }, SPEC, LIMITS), 'INVALID_SAFETENSORS', re);
      void what;
    }
  });
});

describe('the plain JSON form', () => {
  it('takes nested arrays of the kind\'s shape and checks them', () => {
    const soft = parseJsonPrompt({ kind: 'soft', tensor: [Array.from(randomFloats(64, 1)), Array.from(randomFloats(64, 2))] }, SPEC, LIMITS);
    assert.equal(soft.numVirtualTokens, 2);
    const prefixNested = Array.from({ length: 5 }, () => Array.from({ length: 2 }, () => Array.from({ length: 4 }, () => Array.from({ length: 3 }, () => Array(8).fill(0.5)))));
    const pre = parseJsonPrompt({ kind: 'prefix', tensor: prefixNested }, SPEC, LIMITS);
    assert.equal(pre.numVirtualTokens, 3);
    expectCode(() => parseJsonPrompt({ kind: 'soft', tensor: [[1, 2, 3]] }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /\[1, 3\].*\[1, 64\]/);
    expectCode(() => parseJsonPrompt({ kind: 'prefix', tensor: [[1]] }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /\[5, 2, 4, P, 8\]/);
    expectCode(() => parseJsonPrompt({ kind: 'soft', tensor: [Array(64).fill(0), Array(63).fill(0)] }, SPEC, LIMITS), 'PROMPT_SHAPE_MISMATCH', /ragged/);
    expectCode(() => parseJsonPrompt({ kind: 'soft', tensor: [[...Array(63).fill(0), 'x']] }, SPEC, LIMITS), 'BAD_REQUEST');
    expectCode(() => parseJsonPrompt({ kind: 'soft', tensor: [[...Array(63).fill(0), 1e39]] }, SPEC, LIMITS), 'PROMPT_NOT_FINITE');
    expectCode(() => parseJsonPrompt({ kind: 'lora', tensor: [] }, SPEC, LIMITS), 'BAD_REQUEST');
  });
});
