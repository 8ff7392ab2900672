// What a training job starts from or learns from besides its examples: the
// prompt a transfer starts from (`init: {"from_prompt": ...}`) and the
// teacher a distillation learns from (`method: "distill"`), plus unlabelled
// texts for the teacher to label. At submit every named prompt is checked
// and pinned to a version (so a rerun after a restart learns from the same
// tensors, and the published version can name exactly what it came from); at
// run time the pinned tensors are loaded for the worker. And the provenance a
// published version records.

import { SoftserveError } from '../../kernels/errors.ts';
import { canTransfer, type PromptTensors } from '../../prompts/kinds.ts';
import type { PromptStore, PromptVersionInfo, Task } from '../../prompts/store.ts';
import { methodKind, type TrainingOptions } from '../../prompts/training/options.ts';
import type { MemberSummary } from './protocol.ts';

export interface JobSources {
  initPrompt?: PromptTensors;
  teacher?: PromptTensors[];
}

/** A named prompt version, with the option that named it in the error when it is missing. */
async function lookUp(store: PromptStore, tenantId: string, task: string, prompt: string, version: number | null, field: string): Promise<PromptVersionInfo> {
  try {
    return await store.getPromptVersion(tenantId, task, prompt, version);
  } catch (err) {
    if (err instanceof SoftserveError && err.code === 'NOT_FOUND') {
      throw new SoftserveError('NOT_FOUND', `options.${field}: ${err.message}`, { field });
    }
    throw err;
  }
}

/**
 * Checks the job's transfer prompt and teacher against the store and returns
 * the options with every version pinned. Errors: 404 an unknown prompt,
 * ensemble or task (named by the option), 422 PROMPT_SHAPE_MISMATCH a
 * transfer prompt of another kind or length.
 */
export async function pinJobSources(store: PromptStore, tenantId: string, task: Task, options: TrainingOptions): Promise<TrainingOptions> {
  const out: TrainingOptions = { ...options };
  if (options.initFrom) {
    const from = options.initFrom;
    const taskName = from.task ?? task.name;
    if (from.task !== null) {
      try {
        await store.getTask(tenantId, from.task);
      } catch (err) {
        if (err instanceof SoftserveError && err.code === 'NOT_FOUND') throw new SoftserveError('NOT_FOUND', `options.init.task: ${err.message}`, { field: 'init.task' });
        throw err;
      }
    }
    const v = await lookUp(store, tenantId, taskName, from.prompt, from.version, 'init.from_prompt');
    const want = methodKind(options.method);
    if (!canTransfer(v.kind, want)) {
      throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `options.init.from_prompt: ${from.prompt} v${v.version} is a ${v.kind} prompt; ${options.method} trains a ${want} prompt (soft and P-tuning prompts transfer to each other, prefixes only to prefixes)`, { field: 'init.from_prompt', expected: want, got: v.kind });
    }
    if (v.numVirtualTokens !== options.numVirtualTokens) {
      throw new SoftserveError('PROMPT_SHAPE_MISMATCH', `options.init.from_prompt: ${from.prompt} v${v.version} has ${v.numVirtualTokens} virtual tokens; this job trains ${options.numVirtualTokens} (set num_virtual_tokens to ${v.numVirtualTokens})`, { field: 'init.from_prompt', expected: options.numVirtualTokens, got: v.numVirtualTokens });
    }
    out.initFrom = { prompt: from.prompt, version: v.version, task: from.task };
  }
  if (options.distill) {
    const t = options.distill.teacher;
    if (t.ensemble !== null && t.prompts.length > 0 && t.prompts.some((p) => p.version === null)) {
      throw new SoftserveError('BAD_REQUEST', 'options.teacher: name an ensemble or a list of prompts, not both', { field: 'teacher' });
    }
    let members = t.prompts;
    if (t.ensemble !== null && members.length === 0) {
      let e;
      try {
        e = await store.getEnsemble(tenantId, task.name, t.ensemble);
      } catch (err) {
        if (err instanceof SoftserveError && err.code === 'NOT_FOUND') throw new SoftserveError('NOT_FOUND', `options.teacher.ensemble: ${err.message}`, { field: 'teacher.ensemble' });
        throw err;
      }
      members = e.members.map((m) => ({ prompt: m.prompt, version: m.version ?? null }));
    }
    const pinned = [];
    for (const [i, m] of members.entries()) pinned.push({ prompt: m.prompt, version: (await lookUp(store, tenantId, task.name, m.prompt, m.version, `teacher.prompts[${i}]`)).version });
    out.distill = { ...options.distill, teacher: { ensemble: t.ensemble, prompts: pinned } };
  }
  return out;
}

/** The pinned tensors (run time). A source deleted since submit fails the job, saying which. */
export async function loadJobSources(store: PromptStore, tenantId: string, taskName: string, options: TrainingOptions): Promise<JobSources> {
  const out: JobSources = {};
  if (options.initFrom) {
    const f = options.initFrom;
    out.initPrompt = (await store.getPromptTensors(tenantId, f.task ?? taskName, f.prompt, f.version)).tensors;
  }
  if (options.distill) {
    out.teacher = await Promise.all(options.distill.teacher.prompts.map(async (m) => (await store.getPromptTensors(tenantId, taskName, m.prompt, m.version)).tensors));
  }
  return out;
}

/** Unlabelled texts for a distillation teacher to label: JSONL of {"text"} (or an array of such objects or strings). */
export function parseUnlabelled(input: { jsonl: string } | { array: unknown[] }, limits: { maxExamples: number; maxTextChars: number }): string[] {
  const rows: Array<{ raw: unknown; where: string }> = [];
  if ('jsonl' in input) {
    input.jsonl.split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      let raw: unknown;
      try {
        raw = JSON.parse(line);
      } catch {
        throw new SoftserveError('INVALID_EXAMPLES', `unlabelled line ${i + 1}: not JSON`, { errors: [{ line: i + 1, message: 'not JSON', set: 'unlabelled' }], error_count: 1 });
      }
      rows.push({ raw, where: `line ${i + 1}` });
    });
  } else {
    input.array.forEach((raw, i) => rows.push({ raw, where: `[${i}]` }));
  }
  if (rows.length > limits.maxExamples) throw new SoftserveError('PAYLOAD_TOO_LARGE', `${rows.length} unlabelled texts; the limit is ${limits.maxExamples}`);
  return rows.map(({ raw, where }) => {
    const text = typeof raw === 'string' ? raw : typeof raw === 'object' && raw !== null ? (raw as { text?: unknown }).text : undefined;
    const fail = (message: string) => { throw new SoftserveError('INVALID_EXAMPLES', `unlabelled ${where}: ${message}`, { errors: [{ where, message, set: 'unlabelled' }], error_count: 1 }); };
    if (typeof text !== 'string') return fail('must be {"text": "..."}');
    if (text.trim() === '') return fail('empty text');
    if (text.length > limits.maxTextChars) return fail(`text has ${text.length} characters; the limit is ${limits.maxTextChars}`);
    return text;
  });
}

/**
 * What a published version records about its making (shown in the prompt
 * version's GET). `held_out_accuracy` is the weight of a weighted vote.
 */
export function provenanceFor(jobId: string, options: TrainingOptions, summary: MemberSummary, heldOutExamples: number): Record<string, unknown> {
  const p: Record<string, unknown> = {
    job: jobId,
    method: options.distill ? 'distill' : options.method,
    seed: summary.seed,
    init: summary.init,
    held_out_accuracy: summary.heldOut?.accuracy ?? null,
    held_out_examples: heldOutExamples,
  };
  if (options.distill) {
    p.student = options.method;
    p.gold_weight = options.distill.goldWeight;
    p.teacher_temperature = options.distill.temperature;
    p.teacher = { ensemble: options.distill.teacher.ensemble, members: options.distill.teacher.prompts.map((m) => ({ prompt: m.prompt, version: m.version })) };
  }
  if (options.initFrom) p.init_from = { prompt: options.initFrom.prompt, version: options.initFrom.version, ...(options.initFrom.task !== null ? { task: options.initFrom.task } : {}) };
  if (options.method === 'linear_head') p.solver = options.solver;
  return p;
}
