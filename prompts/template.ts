// Turns a task's template and one input text into the token ids of one engine
// row. Templates are text with slots:
//   {text}   the input (required, once)
//   {mask}   the mask token, where masked LMs read the verbalizer
//   {soft}   where the prompt's virtual tokens go; {soft:a-b} places tokens
//            a..b-1 only (P-tuning puts some before and some after the input)
// Without {soft}, virtual tokens come first, before BOS/CLS, as PEFT puts them.
// Literal text and the input are tokenised together, so "{text} It was"
// tokenises exactly as the sentence would.

import { SoftserveError } from '../kernels/errors.ts';
import { familyOfSpec, type SpecialTokens } from '../models/families.ts';
import { promptKind, type PromptKind } from './kinds.ts';
import type { ModelSpec } from '../models/spec.ts';

export interface Tokenizes {
  encode(text: string): number[];
  decode(ids: number[]): string;
  tokenId(token: string): number | undefined;
  /** An upper bound on `encode(text).length`, cheaper than encoding (models/tokenizer.ts); absent: none. */
  tokenBound?(text: string): number;
}

export type Piece =
  | { kind: 'literal'; text: string }
  | { kind: 'text' }
  | { kind: 'mask' }
  | { kind: 'soft'; from: number; to: number | null };

const SLOT = /\{(text|mask|soft)(?::(\d+)-(\d+))?\}/g;
// Anything that looks like a slot; what SLOT does not take of these is a typo.
const SLOT_LIKE = /\{\s*(?:text|mask|soft)\b[^{}]*\}/g;

function badTemplate(message: string): never {
  throw new SoftserveError('INVALID_TEMPLATE', message);
}

/**
 * How a template places a prompt's virtual tokens: `none` (first, as PEFT
 * does), `all` (one {soft}), or `ranged` ({soft:a-b} slots tiling 0..count-1
 * exactly, so every token is placed once: a prompt must then have `count`).
 * Reversed or empty ranges, ranges past `maxVirtualTokens`, overlaps (two
 * {soft}, or {soft} beside ranges) and gaps are refused (INVALID_TEMPLATE).
 */
export type SoftPlacement = { kind: 'none' } | { kind: 'all' } | { kind: 'ranged'; count: number };

export function softPlacement(template: string, pieces: Piece[], maxVirtualTokens: number): SoftPlacement {
  for (const m of template.matchAll(SLOT_LIKE)) {
    if (!new RegExp(`^${SLOT.source}$`).test(m[0])) badTemplate(`malformed slot ${JSON.stringify(m[0])}: slots are {text}, {mask}, {soft} and {soft:a-b} with 0 <= a < b`);
  }
  const soft = pieces.filter((p): p is Extract<Piece, { kind: 'soft' }> => p.kind === 'soft');
  if (soft.length === 0) return { kind: 'none' };
  const whole = soft.filter((p) => p.to === null);
  if (whole.length > 0) {
    if (soft.length > 1) badTemplate('{soft} places every virtual token; it cannot appear twice or beside {soft:a-b} slots (they would overlap)');
    return { kind: 'all' };
  }
  const ranges = soft.map((p) => [p.from, p.to!] as const);
  for (const [a, b] of ranges) {
    if (a >= b) badTemplate(`{soft:${a}-${b}} is ${a === b ? 'empty' : 'reversed'}: a range a-b places tokens a..b-1 and needs a < b`);
    if (b > maxVirtualTokens) badTemplate(`{soft:${a}-${b}} reaches past the limit of ${maxVirtualTokens} virtual tokens (SOFTSERVE_MAX_VIRTUAL_TOKENS)`);
  }
  const sorted = [...ranges].sort((x, y) => x[0] - y[0]);
  let next = 0;
  for (const [a, b] of sorted) {
    if (a < next) badTemplate(`{soft:${a}-${b}} overlaps another {soft:a-b} slot: each virtual token is placed once`);
    if (a > next) badTemplate(`no {soft:a-b} slot places virtual tokens ${next}..${a - 1}: the ranges must cover 0..N-1 without gaps`);
    next = b;
  }
  return { kind: 'ranged', count: next };
}

/** A prompt of `virtualTokens` against the template's placement: ranged slots need exactly their count. */
export function checkPromptFitsTemplate(placement: SoftPlacement, virtualTokens: number, kind: PromptKind): void {
  if (placement.kind === 'ranged' && promptKind(kind).placesTokens && virtualTokens !== placement.count) {
    throw new SoftserveError('PROMPT_TEMPLATE_MISMATCH',
      `the task's template places ${placement.count} virtual tokens with {soft:a-b} slots; this ${kind} prompt has ${virtualTokens}`,
      { expected: placement.count, got: virtualTokens });
  }
}

export function parseTemplate(template: string): Piece[] {
  const pieces: Piece[] = [];
  let last = 0;
  let texts = 0;
  for (const m of template.matchAll(SLOT)) {
    if (m.index! > last) pieces.push({ kind: 'literal', text: template.slice(last, m.index) });
    const [, slot, from, to] = m;
    if (slot === 'text') { pieces.push({ kind: 'text' }); texts++; }
    else if (slot === 'mask') pieces.push({ kind: 'mask' });
    else pieces.push({ kind: 'soft', from: from === undefined ? 0 : Number(from), to: to === undefined ? null : Number(to) });
    last = m.index! + m[0].length;
  }
  if (last < template.length) pieces.push({ kind: 'literal', text: template.slice(last) });
  if (texts !== 1) throw new SoftserveError('INVALID_TASK', `template must contain {text} exactly once: ${JSON.stringify(template)}`);
  return pieces;
}

export type { SpecialTokens };

/** The special tokens the model's family wraps an input in (models/<family>). */
export function specialTokens(spec: ModelSpec, tok: Tokenizes, addBos: boolean): SpecialTokens {
  return familyOfSpec(spec).specialTokens(spec, tok, addBos);
}

export interface BuiltRow {
  ids: number[];
  /** Where the verbalizer reads: the mask token, else the last token. */
  scorePosition: number;
  /** Whether the text was cut to the token limit. */
  truncated: boolean;
}

/**
 * Ids for one input. `virtualTokens` is the prompt's length P (0 for none);
 * virtual token j is id vocabSize + j. The input is cut to `maxTextTokens`.
 */
export function buildRow(
  pieces: Piece[], text: string, tok: Tokenizes, spec: ModelSpec, special: SpecialTokens,
  virtualTokens: number, maxTextTokens: number,
): BuiltRow {
  let input = text;
  // The text is encoded again below, inside the template's words; encoding it alone only tells
  // whether it must be cut, which the tokenizer's bound, when it has one, often settles first.
  let truncated = false;
  if ((tok.tokenBound?.(text) ?? Infinity) > maxTextTokens) {
    const textIds = tok.encode(text);
    truncated = textIds.length > maxTextTokens;
    if (truncated) input = tok.decode(textIds.slice(0, maxTextTokens));
  }
  // The row's pieces in order, each an array of ids, joined once at the end.
  const parts: number[][] = [];
  let run = '';
  let placedSoft = false;
  let maskAt = -1;
  for (const p of pieces) {
    if (p.kind === 'literal') run += p.text;
    else if (p.kind === 'text') run += input;
    else if (p.kind === 'mask') {
      parts.push(encodeRun(run, tok));
      run = '';
      if (special.mask === null) throw new SoftserveError('INVALID_TASK', `this ${spec.family} model has no mask token; remove {mask} from the template`);
      maskAt = special.start.length;
      for (const part of parts) maskAt += part.length;
      parts.push([special.mask]);
    } else {
      parts.push(encodeRun(run, tok));
      run = '';
      const to = Math.min(p.to ?? virtualTokens, virtualTokens);
      parts.push(virtualIds(spec.vocabSize, Math.min(p.from, to), to));
      placedSoft = true;
    }
  }
  parts.push(encodeRun(run, tok));
  // Virtual tokens no slot placed come first (PEFT's order), then the family's start tokens, the body, its end tokens.
  const lead = !placedSoft ? virtualTokens : 0;
  const ids = virtualIds(spec.vocabSize, 0, lead).concat(special.start, ...parts, special.end);
  let scorePosition = maskAt >= 0 ? lead + maskAt : ids.length - 1;
  if (!spec.causal && maskAt < 0 && spec.maskTokenId !== null) {
    // Masked LMs read the verbalizer at the mask; without one, at [CLS].
    scorePosition = lead;
  }
  return { ids, scorePosition, truncated };
}

const NO_IDS: number[] = [];

/**
 * The ids of a run of template words and text. Spaces at a slot's edge
 * separate pieces; sentencepiece would turn them into lone '▁' tokens, so
 * they are trimmed.
 */
function encodeRun(run: string, tok: Tokenizes): number[] {
  return /\S/.test(run) ? tok.encode(run.replace(/^ +| +$/g, '')) : NO_IDS;
}

/** Virtual tokens from..to-1 of a prompt: ids vocabSize + j. */
function virtualIds(vocabSize: number, from: number, to: number): number[] {
  const ids: number[] = [];
  for (let j = from; j < to; j++) ids.push(vocabSize + j);
  return ids;
}

/**
 * The token a verbalizer scores for a label word: the first token of the
 * word as it appears after other text (so "happy" is "▁happy" for
 * sentencepiece and "Ġhappy" for byte-level BPE).
 */
export function labelTokenId(word: string, tok: Tokenizes): number {
  const context = tok.encode('a');
  const withWord = tok.encode(`a ${word.trim()}`);
  let i = 0;
  while (i < context.length && context[i] === withWord[i]) i++;
  const id = withWord[i];
  if (id === undefined) throw new SoftserveError('INVALID_TASK', `label word ${JSON.stringify(word)} has no tokens`);
  return id;
}
