// Domain rules for what the store keeps, independent of any backend: names
// (tenants, tasks, prompts, ensembles), task definitions against the loaded
// model, and a prompt's tensors against its task. The store (prompts/store/)
// keeps things; these decide what may be kept.

import { SoftserveError } from '../kernels/errors.ts';
import type { ModelSpec } from '../models/spec.ts';
import { featureWidth, isPooling, POOLINGS } from '../models/pooling.ts';
import { headWidth, validatePromptTensors, type PromptLimits, type PromptTensors } from './kinds.ts';
import { checkPromptFitsTemplate, labelTokenId, parseTemplate, softPlacement, type Tokenizes } from './template.ts';
import type { Scoring, Task, TaskDefinition } from './store/index.ts';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
// C0, DEL, C1 controls, and the Unicode line/paragraph separators.
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// eslint-disable-next-line no-control-regex
const TEMPLATE_CONTROL_RE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;

/** Names of tenants, tasks, prompts, ensembles: 1-64 of [A-Za-z0-9._-], starting alphanumeric. */
export function validateName(what: string, name: unknown): string {
  if (typeof name !== 'string') throw new SoftserveError('INVALID_NAME', `${what} name must be a string, got ${name === null ? 'null' : typeof name}`);
  if (!NAME_RE.test(name)) {
    const why = /[/\\]/.test(name) ? 'contains a path separator'
      : CONTROL_RE.test(name) ? 'contains a control character'
      : name.length === 0 ? 'is empty'
      : name.length > 64 ? 'is longer than 64 characters'
      : 'may only use letters, digits, ".", "_" and "-", starting with a letter or digit';
    throw new SoftserveError('INVALID_NAME', `${what} name ${JSON.stringify(name)} ${why}`, { name });
  }
  return name;
}

function invalidTask(message: string): never {
  throw new SoftserveError('INVALID_TASK', message);
}

function checkLabelText(what: string, s: unknown, max = 128): string {
  if (typeof s !== 'string') throw new SoftserveError('BAD_REQUEST', `${what} must be a string`);
  if (s.length === 0 || s.length > max) invalidTask(`${what} must be 1-${max} characters, got ${s.length}`);
  if (CONTROL_RE.test(s)) invalidTask(`${what} ${JSON.stringify(s)} contains a control character`);
  return s;
}

/**
 * Label words whose scored tokens collide make two classes score the same
 * logit for every input (every answer a tie): refused. Without a tokenizer,
 * only words equal after trimming (which always collide) are caught.
 */
function checkLabelWordsDistinct(words: string[], tok: Tokenizes | undefined): void {
  const seen = new Map<string | number, number>();
  words.forEach((w, i) => {
    const key = tok ? labelTokenId(w, tok) : w.trim();
    const j = seen.get(key);
    if (j !== undefined) {
      const how = words[j]!.trim() === w.trim() ? 'are the same word' : `both score the token ${JSON.stringify(tok!.decode([key as number]))}`;
      throw new SoftserveError('AMBIGUOUS_LABEL_WORDS', `label words ${j} (${JSON.stringify(words[j])}) and ${i} (${JSON.stringify(w)}) ${how}: their classes would always score alike; a label word scores its first token`, { labels: [j, i] });
    }
    seen.set(key, i);
  });
}

export function validateTaskDefinition(def: TaskDefinition, spec: ModelSpec, limits: PromptLimits, tok?: Tokenizes): TaskDefinition {
  validateName('task', def.name);
  if (!Array.isArray(def.labels)) throw new SoftserveError('BAD_REQUEST', 'labels must be an array of strings');
  if (def.labels.length < 2 || def.labels.length > limits.maxLabels) invalidTask(`a task needs 2-${limits.maxLabels} labels, got ${def.labels.length}`);
  const labels = def.labels.map((l, i) => checkLabelText(`label ${i}`, l));
  if (new Set(labels).size !== labels.length) invalidTask('labels must be distinct');
  if (typeof def.template !== 'string') throw new SoftserveError('BAD_REQUEST', 'template must be a string');
  if (def.template.length > 8192) invalidTask(`template is ${def.template.length} characters; the limit is 8192`);
  if (TEMPLATE_CONTROL_RE.test(def.template)) invalidTask('template contains a control character');
  const slots = def.template.split('{text}').length - 1;
  if (slots !== 1) invalidTask(`template must contain the {text} slot exactly once, found ${slots}`);
  const pieces = parseTemplate(def.template);
  softPlacement(def.template, pieces, limits.maxVirtualTokens);
  const hasMask = pieces.some((p) => p.kind === 'mask');
  if (hasMask && spec.maskTokenId === null) invalidTask(`template has {mask}, but this ${spec.family} model has no mask token`);
  const sc = def.scoring as unknown;
  if (typeof sc !== 'object' || sc === null) throw new SoftserveError('BAD_REQUEST', 'scoring must be an object');
  const scoring = sc as Record<string, unknown>;
  let out: Scoring;
  if (scoring.type === 'verbalizer') {
    const words = scoring.labelWords;
    if (!Array.isArray(words)) throw new SoftserveError('BAD_REQUEST', 'a verbalizer needs label_words, one string per label');
    if (words.length !== labels.length) invalidTask(`verbalizer has ${words.length} label words for ${labels.length} labels`);
    if (!spec.hasLmHead) invalidTask('the loaded model has no LM head: score this task with a linear head');
    if (!spec.causal && !hasMask) invalidTask(`a verbalizer on a masked LM reads the {mask} slot: add {mask} to the template (e.g. "{text} It was {mask}.")`);
    out = { type: 'verbalizer', labelWords: words.map((w, i) => checkLabelText(`label word ${i}`, w)) };
    checkLabelWordsDistinct(out.labelWords, tok);
  } else if (scoring.type === 'head') {
    const pooling = scoring.pooling ?? 'last';
    if (!isPooling(pooling)) invalidTask(`head pooling must be one of ${POOLINGS.map((p) => `"${p}"`).join(', ')}, got ${JSON.stringify(pooling)}`);
    out = { type: 'head', pooling };
  } else {
    throw new SoftserveError('BAD_REQUEST', `scoring.type must be "verbalizer" or "head", got ${JSON.stringify(scoring.type)}`);
  }
  return { name: def.name, labels, template: def.template, scoring: out };
}


/** A prompt's tensors against its task (head or verbalizer, sizes, template slots) and the model. */
export function checkPromptAgainstTask(task: Task, t: PromptTensors, spec: ModelSpec, limits: PromptLimits): void {
  const width = task.scoring.type === 'head' ? featureWidth(task.scoring.pooling, spec.hiddenSize) : 0;
  if (task.scoring.type === 'head' && !t.head) {
    throw new SoftserveError('INVALID_TASK', `task ${JSON.stringify(task.name)} scores with a linear head: the prompt must carry one (weight [${task.labels.length}, ${width}])`);
  }
  if (task.scoring.type === 'head' && t.head && t.head.weight.length !== t.head.bias.length * width) {
    const got = headWidth(t.head);
    throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `task ${JSON.stringify(task.name)} pools "${task.scoring.pooling}" (a feature of ${width}): the prompt's head reads ${got} (expected weight [${task.labels.length}, ${width}])`, { expected: [task.labels.length, width], got: [t.head.bias.length, got] });
  }
  if (task.scoring.type === 'verbalizer' && t.head) {
    throw new SoftserveError('INVALID_TASK', `task ${JSON.stringify(task.name)} scores with a verbalizer: the prompt carries a linear head it would not use`);
  }
  validatePromptTensors(spec, t, limits, task.scoring.type === 'head' ? task.labels.length : undefined);
  checkPromptFitsTemplate(softPlacement(task.template, parseTemplate(task.template), Number.MAX_SAFE_INTEGER), t.numVirtualTokens, t.kind);
}

/** A version number from a caller: absent/null (the latest) or a positive integer. */
export function checkVersion(version: number | null | undefined): void {
  if (version !== undefined && version !== null && (!Number.isSafeInteger(version) || version < 1)) {
    throw new SoftserveError('BAD_REQUEST', `version must be a positive integer, got ${JSON.stringify(version)}`);
  }
}
