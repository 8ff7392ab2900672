// Training options beyond one method's own settings: the linear probe's
// solver, prompt transfer (`init: {"from_prompt": ...}`) and distillation
// (`method: "distill"` with a `teacher`, a `student` method and a
// `gold_weight`). parseTrainingOptions (options.ts) takes these keys out
// first and parses the rest as the student's (or the method's) options.

import { SoftserveError } from '../../kernels/errors.ts';

export const SOLVERS = ['lbfgs', 'adam'] as const;
/** lbfgs: the exact regularised optimum, λ from a grid on the held-out split (logreg.ts); adam: minibatch epochs. */
export type ProbeSolver = (typeof SOLVERS)[number];

/** Start from an existing prompt of the tenant's (SPoT-style transfer). */
export interface InitFrom {
  prompt: string;
  /** null until pinned at submit (the latest version then). */
  version: number | null;
  /** The prompt's task; null: the job's own task. */
  task: string | null;
}

export interface TeacherMember { prompt: string; version: number | null }

export interface DistillSpec {
  /** The teacher as named (an ensemble), with its members pinned to versions at submit. */
  teacher: { ensemble: string | null; prompts: TeacherMember[] };
  /** Weight of the gold label in each labelled example's target (0: teacher only, 1: gold only). */
  goldWeight: number;
  /**
   * The teacher's mean probabilities are raised to 1/T and renormalised
   * (T < 1 sharpens: an unsure teacher's 0.48/0.52 becomes a clearer target;
   * T → 0 is the mean-probability vote as a hard label). Default 1.
   */
  temperature: number;
}

export interface ExtendedOptions {
  /** The method the rest of the options are parsed for (distill: the student's). */
  method: unknown;
  solver: ProbeSolver | null;
  initFrom: InitFrom | null;
  distill: DistillSpec | null;
  /** The options without the keys parsed here. */
  rest: Record<string, unknown>;
}

export const STUDENT_METHODS = ['prompt_tuning', 'p_tuning', 'prefix_tuning', 'linear_head'] as const;

function bad(field: string, message: string): never {
  throw new SoftserveError('BAD_REQUEST', `options.${field}: ${message}`, { field });
}

function name(field: string, v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 128) bad(field, `must be a prompt name, got ${JSON.stringify(v)}`);
  return v;
}

function version(field: string, v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (!Number.isSafeInteger(v) || (v as number) < 1) bad(field, `must be a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

function parseInitFrom(v: Record<string, unknown>): InitFrom {
  for (const k of Object.keys(v)) if (!['from_prompt', 'version', 'task'].includes(k)) bad(`init.${k}`, 'unknown key (init takes from_prompt, version, task)');
  return {
    prompt: name('init.from_prompt', v.from_prompt),
    version: version('init.version', v.version),
    task: v.task === undefined || v.task === null ? null : name('init.task', v.task),
  };
}

function parseTeacher(v: unknown, maxMembers: number): DistillSpec['teacher'] {
  // Forms: "ensemble-name", ["p1", {"prompt": "p2", "version": 3}], {"ensemble": ...}, {"prompts": [...]}.
  if (typeof v === 'string') return { ensemble: name('teacher', v), prompts: [] };
  const list = (xs: unknown, field: string): TeacherMember[] => {
    if (!Array.isArray(xs) || xs.length === 0) bad(field, 'must be a non-empty array of prompt names or {prompt, version}');
    if (xs.length > maxMembers) bad(field, `at most ${maxMembers} prompts`);
    return xs.map((x, i) => {
      if (typeof x === 'string') return { prompt: name(`${field}[${i}]`, x), version: null };
      if (typeof x !== 'object' || x === null) bad(`${field}[${i}]`, 'must be a prompt name or {prompt, version}');
      const o = x as Record<string, unknown>;
      return { prompt: name(`${field}[${i}].prompt`, o.prompt), version: version(`${field}[${i}].version`, o.version) };
    });
  };
  if (Array.isArray(v)) return { ensemble: null, prompts: list(v, 'teacher') };
  if (typeof v !== 'object' || v === null) bad('teacher', 'must be an ensemble name, a list of prompts, or {ensemble} / {prompts}');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['ensemble', 'prompts'].includes(k)) bad(`teacher.${k}`, 'unknown key (teacher takes ensemble or prompts)');
  const ensemble = o.ensemble === undefined || o.ensemble === null ? null : name('teacher.ensemble', o.ensemble);
  const prompts = o.prompts === undefined ? [] : list(o.prompts, 'teacher.prompts');
  if (ensemble === null && prompts.length === 0) bad('teacher', 'name an ensemble or a list of prompts');
  return { ensemble, prompts };
}

export function parseExtendedOptions(o: Record<string, unknown>, maxTeacherMembers = 16): ExtendedOptions {
  const rest: Record<string, unknown> = { ...o };
  let method: unknown = o.method ?? 'prompt_tuning';
  let distill: DistillSpec | null = null;
  for (const k of ['teacher', 'student', 'gold_weight', 'teacher_temperature', 'solver']) delete rest[k];
  if (method === 'distill') {
    if (o.teacher === undefined) bad('teacher', 'method distill needs a teacher: an ensemble name or a list of prompts');
    const student = o.student ?? 'prompt_tuning';
    if (typeof student !== 'string' || !(STUDENT_METHODS as readonly string[]).includes(student)) bad('student', `must be one of ${STUDENT_METHODS.join(', ')}, got ${JSON.stringify(student)}`);
    let goldWeight = 0;
    if (o.gold_weight !== undefined) {
      if (typeof o.gold_weight !== 'number' || !Number.isFinite(o.gold_weight) || o.gold_weight < 0 || o.gold_weight > 1) bad('gold_weight', `must be a number in [0, 1], got ${JSON.stringify(o.gold_weight)}`);
      goldWeight = o.gold_weight;
    }
    let temperature = 1;
    if (o.teacher_temperature !== undefined) {
      if (typeof o.teacher_temperature !== 'number' || !Number.isFinite(o.teacher_temperature) || o.teacher_temperature < 0.01 || o.teacher_temperature > 100) bad('teacher_temperature', `must be a number in [0.01, 100], got ${JSON.stringify(o.teacher_temperature)}`);
      temperature = o.teacher_temperature;
    }
    distill = { teacher: parseTeacher(o.teacher, maxTeacherMembers), goldWeight, temperature };
    method = student;
    rest.method = student;
  } else {
    for (const k of ['teacher', 'student', 'gold_weight', 'teacher_temperature']) if (o[k] !== undefined) bad(k, 'only for method distill');
  }
  let solver: ProbeSolver | null = null;
  if (o.solver !== undefined) {
    if (method !== 'linear_head') bad('solver', 'only for linear_head (or a linear_head student)');
    if (typeof o.solver !== 'string' || !(SOLVERS as readonly string[]).includes(o.solver)) bad('solver', `must be one of ${SOLVERS.join(', ')}, got ${JSON.stringify(o.solver)}`);
    solver = o.solver as ProbeSolver;
  }
  let initFrom: InitFrom | null = null;
  if (typeof o.init === 'object' && o.init !== null && !Array.isArray(o.init)) {
    if (method === 'linear_head') bad('init', 'linear_head trains no prompt to start from another');
    initFrom = parseInitFrom(o.init as Record<string, unknown>);
    delete rest.init;
  }
  return { method, solver, initFrom, distill, rest };
}

/** The extended options back in the API's form (job views; parsed again when the job runs). */
export function extendedView(o: { method: string; solver: ProbeSolver; initFrom: InitFrom | null; distill: DistillSpec | null }, out: Record<string, unknown>): void {
  if (o.method === 'linear_head') out.solver = o.solver;
  if (o.initFrom) {
    out.init = { from_prompt: o.initFrom.prompt, version: o.initFrom.version, ...(o.initFrom.task !== null ? { task: o.initFrom.task } : {}) };
  }
  if (o.distill) {
    out.student = o.method;
    out.method = 'distill';
    const t = o.distill.teacher;
    out.teacher = { ...(t.ensemble !== null ? { ensemble: t.ensemble } : {}), ...(t.prompts.length > 0 ? { prompts: t.prompts.map((p) => ({ prompt: p.prompt, version: p.version })) } : {}) };
    out.gold_weight = o.distill.goldWeight;
    out.teacher_temperature = o.distill.temperature;
  }
}
