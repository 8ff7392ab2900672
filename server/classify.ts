// The classify path: validate the request, resolve the task and its prompts
// (through the store's residency cache), tokenise each input into one engine
// row per prompt, queue the rows with the scheduler, and reduce the scores to
// labels, probabilities and, for ensembles, votes (server/ensemble-answer.ts:
// majority, mean_probability or weighted, with agreement and abstention).

import { SoftserveError } from '../kernels/errors.ts';
import type { EngineRow } from '../models/batch.ts';
import type { ModelSpec } from '../models/spec.ts';
import type { PromptStore, ResolvedPrompt, ResolvedTask, Task } from '../prompts/store.ts';
import { engineRow, taskRows, tokenizeInput, tokensInText, verbalizerIds, type BuiltRow, type RowModel, type TaskRows } from '../prompts/rows.ts';
import { softmax } from '../prompts/softmax.ts';
import type { Tokenizes } from '../prompts/template.ts';
import { estimateCost, type Admission } from './admission.ts';
import { argmax, parseMinAgreement, parseVoteMode, type VoteMode } from '../prompts/vote.ts';
import { byLabel, ensembleAnswer, planVote, type Vote } from './ensemble-answer.ts';
import type { Metrics } from './metrics.ts';
import type { RowQueue } from './scheduler.ts';

export interface ClassifyLimits {
  /** Most inputs in one request. */
  maxInputs: number;
  /** Longest input, in characters. */
  maxInputChars: number;
  /** Inputs are cut to this many tokens. */
  maxTextTokens: number;
  /** Default (and longest) deadline; a request may ask for a shorter one. */
  deadlineMs: number;
  /** Most prompts named in one request's `prompts` list. */
  maxPrompts: number;
}

export const DEFAULT_CLASSIFY_LIMITS: ClassifyLimits = {
  maxInputs: 64, maxInputChars: 4000, maxTextTokens: 256, deadlineMs: 30000, maxPrompts: 16,
};

export interface ClassifyBody {
  inputs: string[];
  prompt?: string;
  version?: number;
  ensemble?: string;
  prompts?: Array<{ name: string; version?: number }>;
  deadline_ms?: number;
  vote?: VoteMode;
  min_agreement?: number;
}

export type { Vote };

export interface ClassifyResult {
  /** null when an ensemble abstained (agreement below min_agreement). */
  label: string | null;
  /** Probability of `label` (softmax over the task's classes; ensemble: mean over members). */
  score: number;
  scores: Record<string, number>;
  votes?: Vote[];
  /** Multi-prompt answers: fraction of members voting `label` (the winner, also when abstaining). */
  agreement?: number;
  abstained?: true;
}

export interface ClassifyResponse {
  task: string;
  prompt: { name: string; version: number } | null;
  ensemble: string | null;
  results: ClassifyResult[];
  batch_ids: number[];
  usage: { rows: number; tokens: number; truncated_inputs: number };
  timing: { queue_ms: number; inference_ms: number; tokenize_ms: number };
}

function bad(message: string): never {
  throw new SoftserveError('BAD_REQUEST', message);
}

export function parseClassifyBody(body: unknown, limits: ClassifyLimits): ClassifyBody {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) bad('body must be a JSON object');
  const b = body as Record<string, unknown>;
  const known = new Set(['inputs', 'prompt', 'version', 'ensemble', 'prompts', 'deadline_ms', 'vote', 'min_agreement']);
  for (const k of Object.keys(b)) if (!known.has(k)) bad(`unknown field ${JSON.stringify(k)}`);
  const { inputs } = b;
  if (!Array.isArray(inputs) || inputs.length === 0) bad('inputs must be a non-empty array of strings');
  if (inputs.length > limits.maxInputs) {
    throw new SoftserveError('PAYLOAD_TOO_LARGE', `${inputs.length} inputs exceed the limit of ${limits.maxInputs} per request`);
  }
  inputs.forEach((s, i) => {
    if (typeof s !== 'string') bad(`inputs[${i}] must be a string`);
    if (s.trim().length === 0) bad(`inputs[${i}] is empty`);
    if (s.length > limits.maxInputChars) {
      throw new SoftserveError('PAYLOAD_TOO_LARGE', `inputs[${i}] has ${s.length} characters, over the limit of ${limits.maxInputChars}`);
    }
  });
  const out: ClassifyBody = { inputs: inputs as string[] };
  const selectors = ['prompt', 'ensemble', 'prompts'].filter((k) => b[k] !== undefined);
  if (selectors.length > 1) bad(`name one of prompt, ensemble or prompts, not ${selectors.join(' and ')}`);
  if (b.prompt !== undefined) {
    if (typeof b.prompt !== 'string') bad('prompt must be a string');
    out.prompt = b.prompt;
  }
  if (b.version !== undefined) {
    if (!Number.isSafeInteger(b.version) || (b.version as number) < 1) bad('version must be a positive integer');
    if (out.prompt === undefined) bad('version needs a prompt');
    out.version = b.version as number;
  }
  if (b.ensemble !== undefined) {
    if (typeof b.ensemble !== 'string') bad('ensemble must be a string');
    out.ensemble = b.ensemble;
  }
  if (b.prompts !== undefined) {
    if (!Array.isArray(b.prompts) || b.prompts.length === 0) bad('prompts must be a non-empty array');
    if (b.prompts.length > limits.maxPrompts) {
      throw new SoftserveError('PAYLOAD_TOO_LARGE', `${b.prompts.length} prompts exceed the limit of ${limits.maxPrompts}`);
    }
    out.prompts = b.prompts.map((p, i) => {
      if (typeof p === 'string') return { name: p };
      if (typeof p !== 'object' || p === null || typeof (p as { name?: unknown }).name !== 'string') bad(`prompts[${i}] must be a name or {name, version}`);
      const { name, version } = p as { name: string; version?: unknown };
      if (version !== undefined && (!Number.isSafeInteger(version) || (version as number) < 1)) bad(`prompts[${i}].version must be a positive integer`);
      return version === undefined ? { name } : { name, version: version as number };
    });
    const names = new Set<string>();
    for (const p of out.prompts) {
      if (names.has(p.name)) throw new SoftserveError('DUPLICATE_ENSEMBLE_MEMBER', `prompts lists "${p.name}" twice; each prompt votes once`, { prompt: p.name });
      names.add(p.name);
    }
  }
  if (b.deadline_ms !== undefined) {
    if (!Number.isSafeInteger(b.deadline_ms) || (b.deadline_ms as number) < 1) bad('deadline_ms must be a positive integer');
    out.deadline_ms = Math.min(b.deadline_ms as number, limits.deadlineMs);
  }
  if (b.vote !== undefined) out.vote = parseVoteMode(b.vote);
  if (b.min_agreement !== undefined) out.min_agreement = parseMinAgreement(b.min_agreement);
  return out;
}

export class ClassifyService {
  private readonly labelIdCache = new Map<string, number[]>();
  private readonly plans = new WeakMap<Task, TaskRows>();
  private readonly rowModel: RowModel;

  constructor(
    private readonly store: PromptStore,
    private readonly scheduler: RowQueue,
    private readonly tokenizer: Tokenizes,
    private readonly spec: ModelSpec,
    private readonly limits: ClassifyLimits,
    private readonly metrics: Metrics,
    private readonly addBos: boolean,
    /** Decides, before any tokenisation, whether the request may run (absent: everything is admitted). */
    private readonly admission: Admission | null = null,
  ) {
    this.rowModel = { spec, tokenizer, addBos };
  }

  private labelIds(task: Task): number[] {
    if (task.scoring.type !== 'verbalizer') return [];
    const key = `${task.tenantId}\u0000${task.name}\u0000${task.createdAt}`;
    let ids = this.labelIdCache.get(key);
    if (!ids) {
      ids = verbalizerIds(task, this.tokenizer);
      if (this.labelIdCache.size > 10000) this.labelIdCache.clear();
      this.labelIdCache.set(key, ids);
    }
    return ids;
  }

  /** The task's row plan, kept per task object: the store's catalog cache hands out the same object until a write replaces it. */
  private planFor(task: Task): TaskRows {
    let plan = this.plans.get(task);
    if (!plan) {
      plan = taskRows(this.rowModel, task, this.labelIds(task));
      this.plans.set(task, plan);
    }
    return plan;
  }

  private async resolve(tenantId: string, taskName: string, body: ClassifyBody): Promise<ResolvedTask> {
    if (body.prompts) {
      const parts = await Promise.all(body.prompts.map((p) =>
        this.store.resolve(tenantId, taskName, p.version === undefined ? { prompt: p.name } : { prompt: p.name, version: p.version })));
      return { task: parts[0]!.task, ensemble: null, vote: null, members: parts.flatMap((p) => p.members) };
    }
    const selector: { prompt?: string; version?: number; ensemble?: string } = {};
    if (body.prompt !== undefined) selector.prompt = body.prompt;
    if (body.version !== undefined) selector.version = body.version;
    if (body.ensemble !== undefined) selector.ensemble = body.ensemble;
    return this.store.resolve(tenantId, taskName, selector);
  }

  /** Classify's own checks before the shared row builder: which prompt lacks the head a task needs. */
  private rowFor(task: Task, plan: TaskRows, member: ResolvedPrompt | null, built: BuiltRow): EngineRow {
    if (task.scoring.type === 'head') {
      if (!member) throw new SoftserveError('INVALID_INPUT', `task ${task.name} scores with a linear head: name a prompt`);
      if (!member.tensors.head) throw new SoftserveError('INVALID_TASK', `prompt ${member.name} v${member.version} has no linear head, which task ${task.name} needs`);
    }
    return engineRow(plan, built, member && { key: member.tensorHash, ...member.tensors });
  }

  async classify(tenantId: string, taskName: string, rawBody: unknown): Promise<ClassifyResponse> {
    const body = parseClassifyBody(rawBody, this.limits);
    const resolved = await this.resolve(tenantId, taskName, body);
    // Admission from an upper bound on the cost, before tokenising or queueing: a refusal costs nothing more.
    const ticket = this.admission?.admit(tenantId, estimateCost(
      body.inputs, Buffer.byteLength(resolved.task.template, 'utf8'),
      resolved.members.map((m) => tokensInText(m)), this.limits.maxTextTokens));
    try {
      return await this.run(tenantId, body, resolved);
    } finally {
      ticket?.release();
    }
  }

  private async run(tenantId: string, body: ClassifyBody, resolved: ResolvedTask): Promise<ClassifyResponse> {
    const { task } = resolved;
    const members: Array<ResolvedPrompt | null> = resolved.members.length > 0 ? resolved.members : [null];
    const votePlan = planVote(resolved.members, task.labels.length, body.vote, resolved.vote, body.min_agreement);

    let tokenizeMs = 0;
    let tokenizeStart = performance.now();
    const plan = this.planFor(task);
    // Members with the same number of virtual tokens share one tokenisation.
    const builtByLength = new Map<number, BuiltRow[]>();
    const rows: EngineRow[] = [];
    let truncated = 0;
    for (const member of members) {
      const P = tokensInText(member);
      let built = builtByLength.get(P);
      if (!built) {
        built = [];
        for (let i = 0; i < body.inputs.length; i++) {
          // Tokenising runs on the HTTP thread: between chunks, let other requests (and new connections) in.
          if (i > 0 && i % TOKENIZE_CHUNK === 0) {
            tokenizeMs += performance.now() - tokenizeStart;
            await new Promise((resolve) => setImmediate(resolve));
            tokenizeStart = performance.now();
          }
          built.push(tokenizeInput(this.rowModel, plan, body.inputs[i]!, P, this.limits.maxTextTokens));
        }
        builtByLength.set(P, built);
        if (truncated === 0) truncated = built.filter((b) => b.truncated).length;
      }
      for (const b of built) rows.push(this.rowFor(task, plan, member, b));
    }
    tokenizeMs += performance.now() - tokenizeStart;
    this.metrics.tokenizeTime.observe(tokenizeMs / 1000);
    this.metrics.tenantRequests.inc({ tenant: this.metrics.tenantLabel(tenantId) });
    if (resolved.ensemble !== null || members.length > 1) {
      this.metrics.ensembleRequests.inc();
      this.metrics.ensembleMembers.observe(members.length);
    }

    const deadline = body.deadline_ms ?? this.limits.deadlineMs;
    const out = await this.scheduler.submit(tenantId, rows, deadline);
    this.metrics.queueTime.observe(out.queueMs / 1000);

    const N = body.inputs.length;
    const results: ClassifyResult[] = body.inputs.map((_, i) => {
      if (members.length === 1) {
        const probs = softmax(out.rows[i]!.scores);
        const best = argmax(probs);
        return { label: task.labels[best]!, score: probs[best]!, scores: byLabel(task.labels, probs) };
      }
      const memberProbs = members.map((_, m) => softmax(out.rows[m * N + i]!.scores));
      return ensembleAnswer(memberProbs, resolved.members, task.labels, votePlan);
    });
    const single = members.length === 1 && members[0] ? { name: members[0].name, version: members[0].version } : null;
    return {
      task: task.name,
      prompt: single,
      ensemble: resolved.ensemble,
      results,
      batch_ids: out.batchIds,
      usage: { rows: rows.length, tokens: rows.reduce((a, r) => a + r.inputIds.length, 0), truncated_inputs: truncated },
      timing: { queue_ms: round(out.queueMs), inference_ms: round(out.inferenceMs), tokenize_ms: round(tokenizeMs) },
    };
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/** Inputs tokenised between two yields to the event loop. */
const TOKENIZE_CHUNK = 8;
