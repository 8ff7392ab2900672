// GET /info (TEI-style, no key needed): which model this server runs, on what,
// and every limit a client must respect. Only the model directory's name is
// shown, never its path.

import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { ModelSpec } from '../models/spec.ts';
import type { ServerConfig } from './config.ts';
import type { ServingConfig } from './config.ts';

const PACKAGE = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { name: string; version: string };

export const PRODUCT_VERSION = PACKAGE.version;

export function infoDocument(spec: ModelSpec, serving: ServingConfig, config: ServerConfig): Record<string, unknown> {
  const { classify, scheduler } = serving;
  return {
    product: { name: PACKAGE.name, version: PACKAGE.version },
    model: {
      name: basename(resolve(serving.modelDir)), family: spec.family, model_type: spec.modelType,
      hidden_size: spec.hiddenSize, num_layers: spec.numLayers, num_heads: spec.numHeads, num_kv_heads: spec.numKvHeads,
      head_dim: spec.headDim, vocab_size: spec.vocabSize, max_positions: spec.maxPositions,
    },
    execution_provider: serving.executionProvider,
    limits: {
      max_inputs: classify.maxInputs, max_input_chars: classify.maxInputChars, max_text_tokens: classify.maxTextTokens,
      max_virtual_tokens: config.maxVirtualTokens, max_labels: config.maxLabels, max_ensemble_size: config.maxEnsembleSize,
      max_prompts: classify.maxPrompts, deadline_ms: classify.deadlineMs,
      max_json_bytes: config.maxJsonBytes, max_upload_bytes: config.maxUploadBytes,
      batch: { max_rows: scheduler.maxBatchRows, max_tokens: scheduler.maxBatchTokens, max_wait_ms: scheduler.maxWaitMs },
    },
  };
}
