// Class probabilities from scores: the one softmax of serving, evaluation and
// distillation (max-shifted, summed in class order, so every caller gets the
// same bits for the same scores).

/** softmax of `count` scores from `offset` (default: all of them). */
export function softmax(scores: ArrayLike<number>, offset = 0, count = scores.length - offset): number[] {
  let max = -Infinity;
  for (let c = 0; c < count; c++) max = Math.max(max, scores[offset + c]!);
  const exps = new Array<number>(count);
  for (let c = 0; c < count; c++) exps[c] = Math.exp(scores[offset + c]! - max);
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}
