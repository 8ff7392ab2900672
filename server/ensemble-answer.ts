// A multi-prompt classify answer for one input: the members' probabilities
// reduced under the request's (or the ensemble's) vote mode, with the
// agreement and, below `min_agreement`, an abstention that keeps the votes.
// The reduction itself lives in prompts/vote.ts (the eval uses it too).

import type { ResolvedPrompt } from '../prompts/store.ts';
import { memberWeights, reduceVotes, type VoteMode } from '../prompts/vote.ts';

export interface Vote { prompt: string; version: number; label: string; score: number }

export interface EnsembleAnswer {
  label: string | null;
  score: number;
  scores: Record<string, number>;
  votes: Vote[];
  agreement: number;
  abstained?: true;
}

export interface VotePlan {
  mode: VoteMode;
  /** Per member, for `weighted`; null otherwise. */
  weights: number[] | null;
  minAgreement: number | null;
}

/** The held-out accuracy recorded with a trained version (provenance), or null. */
export function recordedAccuracy(m: ResolvedPrompt): number | null {
  const a = m.provenance?.held_out_accuracy;
  return typeof a === 'number' && Number.isFinite(a) ? a : null;
}

/**
 * Decided before any row runs: the mode (request, else ensemble, else
 * majority) and the weights (a weighted vote over a member without a recorded
 * accuracy is refused here, before costly work).
 */
export function planVote(members: ResolvedPrompt[], classes: number, requested: VoteMode | undefined, stored: VoteMode | null, minAgreement: number | undefined): VotePlan {
  const mode = requested ?? stored ?? 'majority';
  const weights = mode === 'weighted' && members.length > 1
    ? memberWeights(members.map((m) => ({ name: m.name, version: m.version, heldOutAccuracy: recordedAccuracy(m) })), classes)
    : null;
  return { mode, weights, minAgreement: minAgreement ?? null };
}

/** Each label's probability, keyed by label (as own properties: a label may be any text, `__proto__` too). */
export function byLabel(labels: readonly string[], probs: readonly number[]): Record<string, number> {
  return Object.fromEntries(labels.map((l, c) => [l, probs[c]!]));
}

export function ensembleAnswer(memberProbs: number[][], members: ResolvedPrompt[], labels: string[], plan: VotePlan): EnsembleAnswer {
  const out = reduceVotes(memberProbs, plan.mode, plan.weights ?? undefined);
  const scores = byLabel(labels, out.meanProbs);
  const votes = members.map((m, k) => {
    const c = out.memberChoices[k]!;
    return { prompt: m.name, version: m.version, label: labels[c]!, score: memberProbs[k]![c]! };
  });
  const answer: EnsembleAnswer = { label: labels[out.winner]!, score: out.meanProbs[out.winner]!, scores, votes, agreement: out.agreement };
  if (plan.minAgreement !== null && out.agreement < plan.minAgreement) {
    answer.label = null;
    answer.abstained = true;
  }
  return answer;
}
