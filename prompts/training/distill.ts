// Distillation targets: a teacher's soft labels (the mean of its members'
// probabilities, each computed by the frozen model with that member's prompt,
// exactly as serving scores it) over the job's texts, optionally mixed with
// the gold labels. The student then trains on these targets with the soft
// cross-entropy loss (models/training-graph.ts), so one prompt, one row per
// input at serve time, learns what N rows per input decided.

import type { TrainableModel } from '../../models/training-graph.ts';
import type { PromptTensors } from '../kinds.ts';
import { softmax } from '../softmax.ts';
import type { Example } from './data.ts';
import { evaluatePrompt, type TaskSpec } from './trainer.ts';

/** The teacher's mean probabilities per text (members in order; texts cut to maxTextTokens as in training). */
export async function teacherTargets(model: TrainableModel, task: TaskSpec, texts: string[], teachers: PromptTensors[], maxTextTokens: number): Promise<number[][]> {
  const C = task.labels.length;
  const mean = texts.map(() => new Array<number>(C).fill(0));
  if (texts.length === 0) return mean;
  const asExamples = texts.map((text) => ({ text, label: 0 }));
  for (const t of teachers) {
    const ev = await evaluatePrompt(model, task, asExamples, t, maxTextTokens);
    ev.probabilities.forEach((p, i) => { for (let c = 0; c < C; c++) mean[i]![c]! += p[c]! / teachers.length; });
  }
  return mean;
}

function argmax(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/**
 * Training examples for the student: labelled ones aim at
 * (1 - goldWeight)·teacher + goldWeight·gold, unlabelled ones at the teacher
 * (their `label`, used only for reporting, is the teacher's choice).
 */
/** p^(1/T), renormalised (T = 1: unchanged). */
export function sharpen(p: number[], temperature: number): number[] {
  if (temperature === 1) return p;
  return softmax(p.map((x) => Math.log(Math.max(x, 1e-30)) / temperature));
}

export function distillExamples(labelled: Example[], labelledTargets: number[][], unlabelled: string[], unlabelledTargets: number[][], goldWeight: number): Example[] {
  const out: Example[] = labelled.map((e, i) => {
    const t = labelledTargets[i]!.map((p, c) => (1 - goldWeight) * p + (c === e.label ? goldWeight : 0));
    return { text: e.text, label: e.label, target: t };
  });
  unlabelled.forEach((text, i) => out.push({ text, label: argmax(unlabelledTargets[i]!), target: unlabelledTargets[i]! }));
  return out;
}

/** Everything a distillation run needs beyond the plain job: computed in the training worker. */
export async function distillTrainingSet(
  model: TrainableModel, task: TaskSpec, train: Example[], unlabelled: string[], teachers: PromptTensors[], goldWeight: number, maxTextTokens: number, temperature = 1,
): Promise<Example[]> {
  const labelledTargets = (await teacherTargets(model, task, train.map((e) => e.text), teachers, maxTextTokens)).map((p) => sharpen(p, temperature));
  const unlabelledTargets = (await teacherTargets(model, task, unlabelled, teachers, maxTextTokens)).map((p) => sharpen(p, temperature));
  return distillExamples(train, labelledTargets, unlabelled, unlabelledTargets, goldWeight);
}
