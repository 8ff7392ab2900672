// Labelled examples for training: parsed from JSONL (one {"text", "label"}
// object a line) or from a JSON array, checked against the task's labels.
// Every bad row is reported with its line (JSONL) or index (array) and the
// reason; nothing is dropped silently. Blank lines in JSONL are not rows.

import type { Rng } from './rng.ts';
import { shuffle } from './rng.ts';

export interface Example {
  text: string;
  /** Class index into the task's labels (distillation: the gold label, or the teacher's choice for an unlabelled text). */
  label: number;
  /** Distillation: the training target, a distribution over the classes (replaces the one-hot label in the loss). */
  target?: number[];
}

export interface RowError {
  /** 1-based line of a JSONL upload, or... */
  line?: number;
  /** ...0-based index into a JSON array. */
  index?: number;
  message: string;
}

export interface ParseLimits {
  maxExamples: number;
  maxTextChars: number;
  /** Errors listed in full; beyond this only counted. */
  maxErrors?: number;
}

export interface Parsed {
  examples: Example[];
  errors: RowError[];
  /** Bad rows in all (errors may be cut at maxErrors). */
  errorCount: number;
}

function checkRow(raw: unknown, labels: Map<string, number>, limits: ParseLimits): Example | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'must be a JSON object {"text": ..., "label": ...}';
  const o = raw as Record<string, unknown>;
  if (typeof o.text !== 'string') return o.text === undefined ? 'missing "text"' : '"text" must be a string';
  if (o.text.trim().length === 0) return 'empty text';
  if (o.text.length > limits.maxTextChars) return `text has ${o.text.length} characters; the limit is ${limits.maxTextChars}`;
  if (o.label === undefined) return 'missing "label"';
  if (typeof o.label !== 'string') return '"label" must be a string (one of the task\'s labels)';
  const label = labels.get(o.label);
  if (label === undefined) {
    const names = [...labels.keys()];
    return `unknown label ${JSON.stringify(o.label)} (the task's labels are ${names.slice(0, 20).map((l) => JSON.stringify(l)).join(', ')}${names.length > 20 ? ', ...' : ''})`;
  }
  return { text: o.text, label };
}

function labelIndex(labels: string[]): Map<string, number> {
  return new Map(labels.map((l, i) => [l, i]));
}

export function parseJsonl(text: string, labels: string[], limits: ParseLimits): Parsed {
  const index = labelIndex(labels);
  const examples: Example[] = [];
  const errors: RowError[] = [];
  let errorCount = 0;
  const maxErrors = limits.maxErrors ?? 100;
  const lines = text.split('\n');
  let rows = 0;
  lines.forEach((rawLine, i) => {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (line.trim().length === 0) return;
    rows++;
    let parsed: unknown;
    let result: Example | string;
    try {
      parsed = JSON.parse(line);
      result = checkRow(parsed, index, limits);
    } catch (err) {
      result = `not valid JSON: ${(err as Error).message}`;
    }
    if (typeof result === 'string') {
      errorCount++;
      if (errors.length < maxErrors) errors.push({ line: i + 1, message: result });
    } else {
      examples.push(result);
    }
  });
  if (rows > limits.maxExamples) {
    errorCount++;
    errors.unshift({ message: `${rows} examples; the limit is ${limits.maxExamples}` });
  }
  return { examples, errors, errorCount };
}

export function parseArray(items: unknown[], labels: string[], limits: ParseLimits): Parsed {
  const index = labelIndex(labels);
  const examples: Example[] = [];
  const errors: RowError[] = [];
  let errorCount = 0;
  const maxErrors = limits.maxErrors ?? 100;
  items.forEach((item, i) => {
    const result = checkRow(item, index, limits);
    if (typeof result === 'string') {
      errorCount++;
      if (errors.length < maxErrors) errors.push({ index: i, message: result });
    } else {
      examples.push(result);
    }
  });
  if (items.length > limits.maxExamples) {
    errorCount++;
    errors.unshift({ message: `${items.length} examples; the limit is ${limits.maxExamples}` });
  }
  return { examples, errors, errorCount };
}

/**
 * Splits off a held-out set for early stopping: `fraction` of the examples
 * (at most `max`), drawn with `rng`; none when fewer than `minExamples`.
 */
export function splitHeldOut(examples: Example[], fraction: number, rng: Rng, max = 1000, minExamples = 10): { train: Example[]; heldOut: Example[] } {
  if (fraction <= 0 || examples.length < minExamples) return { train: [...examples], heldOut: [] };
  const order = shuffle(examples.map((_, i) => i), rng);
  const n = Math.min(max, Math.max(1, Math.round(examples.length * fraction)));
  const held = new Set(order.slice(0, n));
  return {
    train: examples.filter((_, i) => !held.has(i)),
    heldOut: examples.filter((_, i) => held.has(i)),
  };
}

export function labelCounts(examples: Example[], numLabels: number): number[] {
  const counts = new Array<number>(numLabels).fill(0);
  for (const e of examples) counts[e.label]!++;
  return counts;
}
