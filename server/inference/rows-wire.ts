// How a batch of rows crosses to the inference worker thread: token ids,
// labels and per-row settings packed into a few typed arrays, and each prompt
// tensor (soft prompt, prefix, head) once per batch however many rows share
// it (deduplicated by key, as assembly does). Every buffer is fresh and goes
// in the message's transfer list, so posting copies nothing beyond this
// packing; the prompts' own arrays belong to the residency cache and must not
// be transferred (that would detach them), nor cloned whole (a view into a
// larger buffer would clone all of it).
//
// Numbers travel as float64 so that whatever a row holds (a non-integer, an
// id out of range) reaches assembly unchanged and fails there as before.

import type { EngineRow, LinearHead, PrefixTensor, SoftPromptTensor } from '../../models/batch.ts';
import type { BatchInput } from './backend.ts';
import { POOLINGS } from '../../models/pooling.ts';

const UNSET = 255;

export interface PackedRows {
  /** Row b's token ids are tokens[tokenStart[b] .. tokenStart[b+1]). */
  tokens: Float64Array;
  tokenStart: Int32Array;
  /** Row b's label ids are labels[labelStart[b] .. labelStart[b+1]). */
  labels: Float64Array;
  labelStart: Int32Array;
  /** Per row: index into softPrompts / prefixes / heads, -1 for none. */
  soft: Int32Array;
  prefix: Int32Array;
  head: Int32Array;
  /** Per row: index into POOLINGS, 255 = unset. */
  pooling: Uint8Array;
  /** Per row: NaN = unset. */
  scorePosition: Float64Array;
  groups: Int32Array;
  softPrompts: SoftPromptTensor[];
  prefixes: PrefixTensor[];
  heads: LinearHead[];
}

function table<T extends { key: string }>(copy: (item: T) => T) {
  const items: T[] = [];
  const index = new Map<string, number>();
  return {
    items,
    indexOf(item: T | undefined): number {
      if (!item) return -1;
      let i = index.get(item.key);
      if (i === undefined) {
        i = items.length;
        index.set(item.key, i);
        items.push(copy(item));
      }
      return i;
    },
  };
}

/** Packs `input` for postMessage; `transfer` lists every buffer in it. */
export function packRows(input: BatchInput): { packed: PackedRows; transfer: ArrayBuffer[] } {
  const { rows } = input;
  const B = rows.length;
  const tokenStart = new Int32Array(B + 1);
  const labelStart = new Int32Array(B + 1);
  rows.forEach((r, b) => {
    tokenStart[b + 1] = tokenStart[b]! + r.inputIds.length;
    labelStart[b + 1] = labelStart[b]! + (r.labelIds?.length ?? 0);
  });
  const tokens = new Float64Array(tokenStart[B]!);
  const labels = new Float64Array(labelStart[B]!);
  const soft = new Int32Array(B);
  const prefix = new Int32Array(B);
  const head = new Int32Array(B);
  const pooling = new Uint8Array(B);
  const scorePosition = new Float64Array(B);
  const softs = table<SoftPromptTensor>((s) => ({ key: s.key, length: s.length, data: new Float32Array(s.data) }));
  const prefixes = table<PrefixTensor>((p) => ({ key: p.key, length: p.length, data: new Float32Array(p.data) }));
  const heads = table<LinearHead>((h) => ({ key: h.key, numClasses: h.numClasses, weight: new Float32Array(h.weight), bias: new Float32Array(h.bias) }));
  rows.forEach((r, b) => {
    tokens.set(r.inputIds, tokenStart[b]);
    if (r.labelIds) labels.set(r.labelIds, labelStart[b]);
    soft[b] = softs.indexOf(r.softPrompt);
    prefix[b] = prefixes.indexOf(r.prefix);
    head[b] = heads.indexOf(r.head);
    pooling[b] = r.pooling === undefined ? UNSET : POOLINGS.indexOf(r.pooling);
    scorePosition[b] = r.scorePosition ?? NaN;
  });
  const groups = Int32Array.from(input.groups);
  const packed: PackedRows = {
    tokens, tokenStart, labels, labelStart, soft, prefix, head, pooling, scorePosition, groups,
    softPrompts: softs.items, prefixes: prefixes.items, heads: heads.items,
  };
  const transfer: ArrayBuffer[] = [tokens, tokenStart, labels, labelStart, soft, prefix, head, pooling, scorePosition, groups]
    .map((a) => a.buffer as ArrayBuffer);
  for (const s of softs.items) transfer.push(s.data.buffer as ArrayBuffer);
  for (const p of prefixes.items) transfer.push(p.data.buffer as ArrayBuffer);
  for (const h of heads.items) transfer.push(h.weight.buffer as ArrayBuffer, h.bias.buffer as ArrayBuffer);
  return { packed, transfer };
}

/** The worker's side: the rows again, rows with one key sharing one tensor object. */
export function unpackRows(p: PackedRows): BatchInput {
  const rows: EngineRow[] = [];
  for (let b = 0; b < p.soft.length; b++) {
    const row: EngineRow = { inputIds: Array.from(p.tokens.subarray(p.tokenStart[b], p.tokenStart[b + 1])) };
    if (p.labelStart[b + 1]! > p.labelStart[b]!) row.labelIds = Array.from(p.labels.subarray(p.labelStart[b], p.labelStart[b + 1]));
    if (p.soft[b]! >= 0) row.softPrompt = p.softPrompts[p.soft[b]!]!;
    if (p.prefix[b]! >= 0) row.prefix = p.prefixes[p.prefix[b]!]!;
    if (p.head[b]! >= 0) row.head = p.heads[p.head[b]!]!;
    if (p.pooling[b] !== UNSET) row.pooling = POOLINGS[p.pooling[b]!]!;
    if (!Number.isNaN(p.scorePosition[b])) row.scorePosition = p.scorePosition[b]!;
    rows.push(row);
  }
  return { rows, groups: Array.from(p.groups) };
}
