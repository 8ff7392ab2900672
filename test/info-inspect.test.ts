// GET /info reports the loaded model and the limits in force; the prompt
// inspection API finds each virtual token's nearest vocabulary tokens and a
// prefix's per-layer norms, checked against a plain float64 reference that
// reads the checkpoint's embedding matrix itself.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, createTask, createTenant, nested, startServingServer, STORIES_DIR, uploadPrompt } from './serving-helpers.ts';

/** The [V,H] float32 embedding matrix, read with nothing but the safetensors layout. */
function referenceEmbeddings(): { V: number; H: number; rows: number[][] } {
  const buf = readFileSync(join(STORIES_DIR, 'model.safetensors'));
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const t = header['model.embed_tokens.weight']!;
  assert.equal(t.dtype, 'F32');
  const [V, H] = t.shape as [number, number];
  const start = 8 + headerLen + t.data_offsets[0];
  const rows = Array.from({ length: V }, (_, v) => Array.from({ length: H }, (_, h) => buf.readFloatLE(start + (v * H + h) * 4)));
  return { V, H, rows };
}

function cosineTopK(p: number[], rows: number[][], k: number): Array<{ id: number; similarity: number }> {
  const norm = (x: number[]) => Math.sqrt(x.reduce((a, b) => a + b * b, 0));
  const np = norm(p);
  const sims = rows.map((r, id) => ({ id, similarity: r.reduce((a, x, h) => a + x * p[h]!, 0) / (np * norm(r)) }));
  return sims.sort((a, b) => b.similarity - a.similarity || a.id - b.id).slice(0, k);
}

test('GET /info: model facts from config.json, execution provider, version and limits; no path', async () => {
  const srv = await startServingServer({ config: { maxVirtualTokens: 100 }, serving: { classify: { maxInputs: 7, maxInputChars: 4000, maxTextTokens: 256, deadlineMs: 30000, maxPrompts: 16 } } });
  try {
    const r = await api(srv.url, 'GET', '/info');
    assert.equal(r.status, 200);
    const cfg = JSON.parse(readFileSync(join(STORIES_DIR, 'config.json'), 'utf8')) as Record<string, number>;
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.deepEqual(r.json.product, { name: 'softserve', version: pkg.version });
    assert.deepEqual(r.json.model, {
      name: 'stories260k', family: 'llama', model_type: 'llama', hidden_size: cfg.hidden_size, num_layers: cfg.num_hidden_layers,
      num_heads: cfg.num_attention_heads, num_kv_heads: cfg.num_key_value_heads, head_dim: cfg.head_dim, vocab_size: cfg.vocab_size,
      max_positions: cfg.max_position_embeddings,
    });
    assert.equal(r.json.execution_provider, 'cpu');
    assert.equal(r.json.limits.max_inputs, 7);
    assert.equal(r.json.limits.max_virtual_tokens, 100);
    for (const key of ['max_input_chars', 'max_text_tokens', 'max_labels', 'max_ensemble_size', 'max_prompts', 'deadline_ms', 'max_json_bytes', 'max_upload_bytes']) {
      assert.equal(typeof r.json.limits[key], 'number', key);
    }
    assert.deepEqual(Object.keys(r.json.limits.batch).sort(), ['max_rows', 'max_tokens', 'max_wait_ms']);
    const text = Buffer.from(r.bytes).toString('utf8');
    assert.ok(!text.includes(STORIES_DIR) && !text.includes('/shared/'), 'no file-system path in /info');
  } finally {
    await srv.close();
  }
});

test('inspect: nearest vocabulary tokens of soft prompts match a float64 cosine reference; prefix norms per layer', async () => {
  const srv = await startServingServer();
  try {
    const key = await createTenant(srv.url, 'inspector');
    const other = await createTenant(srv.url, 'neighbour');
    await createTask(srv.url, key, { name: 'sent', labels: ['neg', 'pos'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: ['sad', 'happy'] } });
    const { H, rows } = referenceEmbeddings();
    // Token 0 is 3× the embedding of id 300 (cosine 1 whatever the scale); token 1 random.
    const planted = rows[300]!.map((x) => Math.fround(3 * x));
    const random = (nested([1, H], 11) as number[][])[0]!;
    await uploadPrompt(srv.url, key, 'sent', { name: 'soft1', kind: 'soft', tensor: [planted, random] });

    const r = await api(srv.url, 'GET', '/v1/tasks/sent/prompts/soft1/inspect?k=7', { key });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.kind, 'soft');
    assert.equal(r.json.num_virtual_tokens, 2);
    assert.equal(r.json.tokens.length, 2);
    assert.equal(r.json.tokens[0].nearest[0].id, 300);
    assert.ok(Math.abs(r.json.tokens[0].nearest[0].similarity - 1) < 1e-5);
    for (const [i, vec] of [planted, random].entries()) {
      const got = r.json.tokens[i] as { index: number; norm: number; nearest: Array<{ id: number; token: string; similarity: number }> };
      const want = cosineTopK(vec, rows, 7);
      assert.equal(got.index, i);
      assert.equal(got.nearest.length, 7);
      // float32 dot products against float64: 1e-5 on similarities in [-1, 1].
      for (const [j, n] of got.nearest.entries()) {
        assert.ok(Math.abs(n.similarity - want[j]!.similarity) < 1e-5, `token ${i} neighbour ${j}: ${n.similarity} vs ${want[j]!.similarity}`);
        if (Math.abs(want[j]!.similarity - (want[j + 1]?.similarity ?? -2)) > 1e-5 && (j === 0 || Math.abs(want[j]!.similarity - want[j - 1]!.similarity) > 1e-5)) {
          assert.equal(n.id, want[j]!.id, `token ${i} neighbour ${j}`);
        }
        assert.equal(typeof n.token, 'string');
        assert.ok(n.token.length > 0);
      }
      const refNorm = Math.sqrt(vec.reduce((a, b) => a + b * b, 0));
      assert.ok(Math.abs(got.norm - refNorm) < 1e-4 * refNorm);
    }
    const defaultK = await api(srv.url, 'GET', '/v1/tasks/sent/prompts/soft1/inspect?version=latest', { key });
    assert.equal(defaultK.json.tokens[0].nearest.length, 5);
    assert.equal(defaultK.json.version, 1);

    await uploadPrompt(srv.url, key, 'sent', { name: 'pt', kind: 'ptuning', tensor: [random, planted] });
    const pt = await api(srv.url, 'GET', '/v1/tasks/sent/prompts/pt/inspect?k=1', { key });
    assert.equal(pt.json.kind, 'ptuning');
    assert.deepEqual(pt.json.tokens.map((t: { nearest: Array<{ id: number }> }) => t.nearest.length), [1, 1]);
    assert.equal(pt.json.tokens[1].nearest[0].id, 300);

    // Prefix: [L, 2, KV, P, D] = [5, 2, 4, 3, 8].
    const prefix = nested([5, 2, 4, 3, 8], 5) as number[][][][][];
    await uploadPrompt(srv.url, key, 'sent', { name: 'pre', kind: 'prefix', tensor: prefix });
    const p = await api(srv.url, 'GET', '/v1/tasks/sent/prompts/pre/inspect', { key });
    assert.equal(p.status, 200, JSON.stringify(p.json));
    assert.equal(p.json.kind, 'prefix');
    assert.equal(p.json.tokens, undefined);
    assert.equal(p.json.layers.length, 5);
    for (let layer = 0; layer < 5; layer++) {
      for (const [kv, field] of [[0, 'key_norms'], [1, 'value_norms']] as const) {
        const want = [0, 1, 2].map((pos) => Math.sqrt(prefix[layer]![kv]!.reduce((a, head) => a + head[pos]!.reduce((b, x) => b + x * x, 0), 0)));
        const got = p.json.layers[layer][field] as number[];
        want.forEach((w, pos) => assert.ok(Math.abs(got[pos]! - w) < 1e-5, `layer ${layer} ${field}[${pos}]`));
        const mean = want.reduce((a, b) => a + b, 0) / 3;
        assert.ok(Math.abs(p.json.layers[layer][kv === 0 ? 'key_norm' : 'value_norm'] - mean) < 1e-5);
      }
    }

    // Bad input and isolation.
    for (const q of ['k=0', 'k=51', 'k=abc', 'version=0', 'version=x']) {
      const bad = await api(srv.url, 'GET', `/v1/tasks/sent/prompts/soft1/inspect?${q}`, { key });
      assert.equal(bad.status, 400, q);
    }
    assert.equal((await api(srv.url, 'GET', '/v1/tasks/sent/prompts/soft1/inspect?version=9', { key })).status, 404);
    assert.equal((await api(srv.url, 'GET', '/v1/tasks/sent/prompts/nope/inspect', { key })).status, 404);
    assert.equal((await api(srv.url, 'GET', '/v1/tasks/sent/prompts/soft1/inspect', { key: other })).status, 404);
    assert.equal((await api(srv.url, 'GET', '/v1/tasks/sent/prompts/soft1/inspect')).status, 401);
  } finally {
    await srv.close();
  }
});
