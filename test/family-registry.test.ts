// The model-family registry (models/families.ts) and every family's contract:
// each registered family has every field, is detected from its config.json,
// names special tokens its tokenizer really has, finds its input embeddings,
// and a tiny random checkpoint of it builds a serving graph that scores a row
// built by the product's row builder. A new family fails here until it has a
// random-checkpoint fixture (test/fixtures/random-checkpoint.ts) and passes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SoftserveError } from '../kernels/errors.ts';
import { loadCheckpoint } from '../models/checkpoint.ts';
import { Engine } from '../models/engine.ts';
import { FAMILIES, familyOf, familyOfSpec, inputEmbeddingName } from '../models/families.ts';
import { buildTrainingGraph } from '../models/training-graph.ts';
import { TextTokenizer } from '../models/tokenizer.ts';
import { engineRow, taskRows, tokenizeInput } from '../prompts/rows.ts';
import { writeRandomCheckpoint, type FixtureFamily, type RandomCheckpointOptions } from './fixtures/random-checkpoint.ts';

/** The fixture each family is checked with (small, deterministic). */
const FIXTURES: Record<string, RandomCheckpointOptions> = {
  llama: { family: 'llama', seed: 11, kvHeads: 1 },
  gpt2: { family: 'gpt2', seed: 12 },
  bert: { family: 'bert', seed: 13 },
  roberta: { family: 'roberta', seed: 14 },
};

test('the registry lists families with distinct names and distinct model types', () => {
  assert.ok(FAMILIES.length > 0);
  const names = FAMILIES.map((f) => f.name);
  assert.equal(new Set(names).size, names.length, `family names repeat: ${names.join(', ')}`);
  const types = FAMILIES.flatMap((f) => f.modelTypes);
  assert.equal(new Set(types).size, types.length, `a model_type is claimed twice: ${types.join(', ')}`);
  for (const f of FAMILIES) assert.ok(f.modelTypes.length > 0, `${f.name} detects no model_type`);
});

test('an unregistered model_type is refused with MODEL_ARCHITECTURE_UNSUPPORTED naming the supported ones', () => {
  const ckpt = writeRandomCheckpoint({ family: 'gpt2', seed: 1 });
  try {
    const loaded = loadCheckpoint(ckpt.dir);
    loaded.config.model_type = 'not-a-family';
    assert.throws(() => familyOf(loaded), (e: unknown) => e instanceof SoftserveError && e.code === 'MODEL_ARCHITECTURE_UNSUPPORTED'
      && FAMILIES.every((f) => f.modelTypes.every((t) => e.message.includes(t))));
  } finally {
    ckpt.cleanup();
  }
});

for (const family of FAMILIES) {
  test(`family ${family.name} keeps the contract`, async () => {
    for (const key of ['spec', 'buildServingGraph', 'positionOffset', 'specialTokens', 'inputEmbeddingNames'] as const) {
      assert.equal(typeof family[key], 'function', `${family.name}.${key} is missing`);
    }
    const fixture = FIXTURES[family.name];
    assert.ok(fixture, `family ${family.name} has no random checkpoint fixture: add one to FIXTURES and test/fixtures/random-checkpoint.ts`);
    const ckpt = writeRandomCheckpoint({ ...fixture, family: fixture.family as FixtureFamily });
    try {
      // Detection round-trips: config.json's model_type -> this family -> a spec naming it.
      const loaded = loadCheckpoint(ckpt.dir);
      assert.equal(familyOf(loaded), family);
      const spec = family.spec(loaded);
      assert.equal(spec.family, family.name);
      assert.ok(family.modelTypes.includes(spec.modelType), `${spec.modelType} is not among ${family.name}'s model types`);
      assert.equal(familyOfSpec(spec), family);

      // Special tokens are the tokenizer's own special tokens; a masked LM has its mask.
      const tok = new TextTokenizer(loaded);
      const specialIds = new Set(Object.values(ckpt.special).filter((x): x is number => x !== null));
      for (const addBos of [true, false]) {
        const st = family.specialTokens(spec, tok, addBos);
        for (const id of [...st.start, ...st.end]) {
          assert.ok(specialIds.has(id), `${family.name}: ${id} (${tok.tokenText(id)}) is not one of the tokenizer's special tokens`);
        }
        assert.equal(st.mask, ckpt.special.mask, `${family.name}: mask token`);
        if (!spec.causal) assert.notEqual(st.mask, null, `${family.name}: a masked LM needs a mask token`);
      }

      // The input embeddings are found under one of the family's names, [V, H].
      const name = inputEmbeddingName(loaded, spec);
      assert.ok(family.inputEmbeddingNames(spec).includes(name));
      assert.equal(loaded.weights.get(name, [spec.vocabSize, spec.hiddenSize]).length, spec.vocabSize * spec.hiddenSize);

      const offset = family.positionOffset(spec);
      assert.ok(Number.isInteger(offset) && offset >= 0 && offset < spec.maxPositions, `${family.name}: position offset ${offset}`);

      // Training graphs are built on the family's serving graph: prompt gradients come out.
      const tg = buildTrainingGraph(loaded, family, spec, ['soft_prompt_table', 'prefix_table']);
      assert.ok(tg.backwardNodes > 0, `${family.name}: the training graph has no backward pass`);
      for (const w of tg.wrt) assert.ok(tg.graph.nodes.some((n) => n.name === `out_grad_${w}`), `${family.name}: no grad_${w} output`);
      assert.ok(tg.graph.toOnnx().bytes.byteLength > 0);

      // A serving graph builds and scores a row the row builder made from a template.
      const engine = await Engine.load(ckpt.dir);
      try {
        const model = { spec: engine.spec, tokenizer: engine.tokenizer, addBos: engine.tokenizer.addBos };
        const plan = taskRows(model, {
          labels: ['negative', 'positive'], template: spec.causal ? '{text} it was' : '{text} it was {mask}',
          scoring: { type: 'verbalizer', labelWords: ['bad', 'good'] },
        });
        const row = engineRow(plan, tokenizeInput(model, plan, 'this movie is very good', 0, 64), null);
        const [result] = await engine.run([row]);
        assert.equal(result!.scores.length, 2);
        assert.equal(result!.pooled.length, 2 * spec.hiddenSize, "pooled: the wide feature [mean ; last]");
        assert.ok([...result!.scores, ...result!.pooled].every(Number.isFinite), `${family.name}: scores must be finite`);
      } finally {
        await engine.release();
      }
    } finally {
      ckpt.cleanup();
    }
  });
}
