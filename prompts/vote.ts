// Reducing an ensemble's per-member class probabilities to one answer.
//
// Three modes:
// - majority: each member votes its top class; most votes wins, ties go to
//   the higher mean probability (Lester et al. 2021). Robust to one member's
//   overconfidence, but it amplifies a bias the members share.
// - mean_probability: average the members' probabilities, then argmax. Uses
//   how sure each member is; a confident minority can outvote an unsure
//   majority.
// - weighted: each member's vote counts log((C-1)·a/(1-a)), a = the held-out
//   accuracy recorded when it was trained (the optimal weight of independent
//   voters whose errors spread over the other C-1 classes; a member at chance,
//   a = 1/C, weighs 0, and a worse one is clamped to 0). Ties, as in majority,
//   go to the higher mean probability. A member without a recorded accuracy
//   (an uploaded prompt) has no weight to give: the vote is refused rather
//   than guessing one.
//
// Every mode reports `agreement`: the fraction of members whose own top class
// is the winning label. A caller may abstain below a threshold.

import { SoftserveError } from '../kernels/errors.ts';

export const VOTE_MODES = ['majority', 'mean_probability', 'weighted'] as const;
export type VoteMode = (typeof VOTE_MODES)[number];

export interface VoteOutcome {
  /** The winning class. */
  winner: number;
  /** Members' mean probability per class. */
  meanProbs: number[];
  /** Each member's own top class. */
  memberChoices: number[];
  /** Fraction of members whose top class is the winner, in [0, 1]. */
  agreement: number;
}

/** Accuracy is clipped away from 0 and 1 so a perfect held-out score gives a large, finite weight. */
const ACCURACY_CLIP = 1e-3;

export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** The weight of a voter with held-out accuracy `accuracy` among `classes` classes (see the module note). */
export function accuracyWeight(accuracy: number, classes: number): number {
  const a = Math.min(1 - ACCURACY_CLIP, Math.max(ACCURACY_CLIP, accuracy));
  return Math.max(0, Math.log(((classes - 1) * a) / (1 - a)));
}

/**
 * Reduces members' probabilities (memberProbs[m][c]) under `mode`. `weights`
 * (one per member, ≥ 0) is required for `weighted` and ignored otherwise.
 */
export function reduceVotes(memberProbs: number[][], mode: VoteMode = 'majority', weights?: number[]): VoteOutcome {
  const M = memberProbs.length;
  if (M === 0) throw new Error('reduceVotes needs at least one member');
  const C = memberProbs[0]!.length;
  const meanProbs = new Array<number>(C).fill(0);
  const memberChoices = memberProbs.map((p) => argmax(p));
  for (const probs of memberProbs) probs.forEach((p, c) => { meanProbs[c]! += p / M; });
  let winner: number;
  if (mode === 'mean_probability') {
    winner = argmax(meanProbs);
  } else {
    if (mode === 'weighted' && (!weights || weights.length !== M)) throw new Error('a weighted vote needs one weight per member');
    const tally = new Array<number>(C).fill(0);
    memberChoices.forEach((c, m) => { tally[c]! += mode === 'weighted' ? weights![m]! : 1; });
    winner = 0;
    for (let c = 1; c < C; c++) {
      if (tally[c]! > tally[winner]! || (tally[c] === tally[winner] && meanProbs[c]! > meanProbs[winner]!)) winner = c;
    }
  }
  const agreement = memberChoices.filter((c) => c === winner).length / M;
  return { winner, meanProbs, memberChoices, agreement };
}

/** Members' weights for a weighted vote from their recorded held-out accuracies; refuses a member without one. */
export function memberWeights(members: Array<{ name: string; version: number; heldOutAccuracy: number | null }>, classes: number): number[] {
  return members.map((m) => {
    if (m.heldOutAccuracy === null || !Number.isFinite(m.heldOutAccuracy)) {
      throw new SoftserveError('VOTE_WEIGHT_UNKNOWN', `a weighted vote needs each member's held-out accuracy, recorded when it was trained; ${m.name} v${m.version} has none (it was not trained here). Use vote "majority" or "mean_probability", or retrain it`, { prompt: m.name, version: m.version });
    }
    return accuracyWeight(m.heldOutAccuracy, classes);
  });
}

export function parseVoteMode(v: unknown, field = 'vote'): VoteMode {
  if (typeof v !== 'string' || !(VOTE_MODES as readonly string[]).includes(v)) {
    throw new SoftserveError('INVALID_VOTE_MODE', `${field} must be one of ${VOTE_MODES.join(', ')}, got ${JSON.stringify(v)}`, { field, allowed: [...VOTE_MODES] });
  }
  return v as VoteMode;
}

export function parseMinAgreement(v: unknown, field = 'min_agreement'): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw new SoftserveError('INVALID_MIN_AGREEMENT', `${field} must be a number in [0, 1], got ${JSON.stringify(v)}`, { field });
  }
  return v;
}
