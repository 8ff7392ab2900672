// The one row builder: task + prompt version + text -> engine row
// (models/batch.ts EngineRow). Serving (server/classify.ts), training and
// evaluation (prompts/training/trainer.ts) and the in-process replay build
// their rows here, so a prompt scores the same wherever it runs.
//
// Three steps, each cacheable by its caller:
//   taskRows(model, task)            once per task: parsed template, the
//                                    family's special tokens, verbalizer ids
//   tokenizeInput(model, plan, ...)  once per text and virtual-token count:
//                                    ids, score position, truncation
//   engineRow(plan, tokens, prompt)  per prompt: the kind feeds its engine
//                                    input; label ids or the linear head

import { SoftserveError } from '../kernels/errors.ts';
import type { EngineRow } from '../models/batch.ts';
import type { ModelSpec } from '../models/spec.ts';
import type { Pooling } from '../models/pooling.ts';
import { promptKind, tokensInText, type LinearHead, type PromptKind } from './kinds.ts';
import type { Scoring } from './store.ts';
import { buildRow, labelTokenId, parseTemplate, specialTokens, type BuiltRow, type Piece, type SpecialTokens, type Tokenizes } from './template.ts';

export { tokensInText };
export type { BuiltRow };

/** The model side of a row: its spec, its tokenizer, and whether inputs start with BOS. */
export interface RowModel { spec: ModelSpec; tokenizer: Tokenizes; addBos: boolean }

/** The task side of a row. */
export interface RowTask { labels: string[]; template: string; scoring: Scoring }

/** What every row of one task shares. */
export interface TaskRows {
  pieces: Piece[];
  special: SpecialTokens;
  numClasses: number;
  /** Verbalizer: the token scored per class; [] for a task scored by a linear head. */
  labelIds: number[];
  /** Linear head: what it reads (models/pooling.ts). */
  head: { pooling: Pooling } | null;
}

/** The token a verbalizer scores for each label of a task. */
export function verbalizerIds(task: RowTask, tok: Tokenizes): number[] {
  return task.scoring.type === 'verbalizer' ? task.scoring.labelWords.map((w) => labelTokenId(w, tok)) : [];
}

/** `labelIds`, when given, are the task's verbalizer ids from a caller's cache. */
export function taskRows(model: RowModel, task: RowTask, labelIds?: number[]): TaskRows {
  return {
    pieces: parseTemplate(task.template),
    special: specialTokens(model.spec, model.tokenizer, model.addBos),
    numClasses: task.labels.length,
    labelIds: labelIds ?? verbalizerIds(task, model.tokenizer),
    head: task.scoring.type === 'head' ? { pooling: task.scoring.pooling } : null,
  };
}

/** Token ids of one text for a prompt placing `virtualTokens` in the text (tokensInText). */
export function tokenizeInput(model: RowModel, plan: TaskRows, text: string, virtualTokens: number, maxTextTokens: number): BuiltRow {
  return buildRow(plan.pieces, text, model.tokenizer, model.spec, plan.special, virtualTokens, maxTextTokens);
}

/** The prompt a row carries; `key` identifies its tensors for deduplication within a batch. */
export interface RowPrompt {
  key: string;
  kind: PromptKind;
  numVirtualTokens: number;
  data: Float32Array;
  head?: LinearHead;
}

/**
 * The engine row for tokens built with `tokensInText(prompt)` virtual tokens.
 * A head task needs the prompt's head (callers check first to say which
 * prompt lacks one); a verbalizer task scores its label ids.
 */
export function engineRow(plan: TaskRows, tokens: Pick<BuiltRow, 'ids' | 'scorePosition'>, prompt: RowPrompt | null): EngineRow {
  const row: EngineRow = { inputIds: tokens.ids, scorePosition: tokens.scorePosition };
  if (prompt) promptKind(prompt.kind).feed(row, prompt.key, prompt.numVirtualTokens, prompt.data);
  if (plan.head) {
    if (!prompt?.head) throw new SoftserveError('INVALID_TASK', 'this task scores with a linear head: its prompt must have one');
    row.head = { key: `${prompt.key}:head`, numClasses: plan.numClasses, weight: prompt.head.weight, bias: prompt.head.bias };
    row.pooling = plan.head.pooling;
  } else {
    row.labelIds = plan.labelIds;
  }
  return row;
}
