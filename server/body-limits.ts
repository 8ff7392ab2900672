// Bounds on what parsing a request body may cost: the largest body each kind
// of route can legitimately need, and a cheap refusal of deeply nested JSON
// (JSON.parse of megabytes of brackets blocks the event loop for seconds;
// scanning the bytes for nesting depth first costs a few milliseconds).

import { SoftserveError } from '../kernels/errors.ts';
import type { ModelSpec } from '../models/spec.ts';
import type { ClassifyLimits } from './classify.ts';

/** Slack for the JSON around a classify body's inputs: keys, prompt names, punctuation. */
const CLASSIFY_SLACK_BYTES = 64 * 1024;
/** A JSON string can spell each UTF-16 unit as a 6-byte \uXXXX escape. */
const MAX_BYTES_PER_CHAR = 6;

/** The largest classify body a client may need: max_inputs inputs of max_input_chars, fully escaped. */
export function classifyBodyBytes(l: ClassifyLimits): number {
  return l.maxInputs * (l.maxInputChars * MAX_BYTES_PER_CHAR + 2) + CLASSIFY_SLACK_BYTES;
}

/**
 * The largest file part a prompt upload can legally need for the loaded
 * model: adapter_model.safetensors holding the longest prompt the server
 * accepts (max virtual tokens, F32, prefix or embedding rows, whichever is
 * wider), a linear head of the most labels, and the largest header allowed.
 */
export function uploadPartBytes(spec: ModelSpec, l: { maxVirtualTokens: number; maxLabels: number; maxSafetensorsHeaderBytes: number }): number {
  const perToken = Math.max(spec.hiddenSize, spec.numLayers * 2 * spec.numKvHeads * spec.headDim);
  const prompt = l.maxVirtualTokens * perToken * 4;
  const head = l.maxLabels * (2 * spec.hiddenSize + 1) * 4; // the widest head: "mean_last" pooling
  return prompt + head + 8 + l.maxSafetensorsHeaderBytes;
}

/**
 * express.json's `verify` hook: refuses a body nested deeper than `maxDepth`
 * (400 JSON_TOO_DEEP) before JSON.parse sees it. Brackets inside strings do
 * not count. One pass over the bytes, no allocation.
 */
export function jsonDepthGuard(maxDepth: number): (req: unknown, res: unknown, buf: Buffer) => void {
  return (_req, _res, buf) => {
    const depth = jsonDepthOver(buf, maxDepth);
    if (depth > 0) {
      throw new SoftserveError('JSON_TOO_DEEP', `the JSON body is nested more than ${maxDepth} levels deep`, { limit: maxDepth });
    }
  };
}

/** 0 when `buf` nests at most `maxDepth` levels; otherwise the depth at which it went over. */
export function jsonDepthOver(buf: Uint8Array, maxDepth: number): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return 0;
}
