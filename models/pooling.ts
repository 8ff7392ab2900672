// What a linear head reads of a row's final hidden states. The serving graph
// always computes one wide feature per row, [mean over real tokens ; hidden
// state at the score position] (2H), and every head is laid into a row of that
// width: a "mean" head fills the first half, a "last" head the second, a
// "mean_last" head both (docs/ENGINE.md). Rows of different poolings therefore
// share one head table and one matmul, and no per-row switch is needed.

export const POOLINGS = ['last', 'mean', 'mean_last'] as const;
export type Pooling = (typeof POOLINGS)[number];

export function isPooling(x: unknown): x is Pooling {
  return typeof x === 'string' && (POOLINGS as readonly string[]).includes(x);
}

/** Width of a pooling's feature (and of its head's weight rows). */
export function featureWidth(pooling: Pooling, hidden: number): number {
  return pooling === 'mean_last' ? 2 * hidden : hidden;
}

/** Where a pooling's feature starts within the wide feature [mean ; last]. */
export function featureOffset(pooling: Pooling, hidden: number): number {
  return pooling === 'last' ? hidden : 0;
}

/** Head widths a prompt may carry for a model of this hidden size (any pooling). */
export function headWidths(hidden: number): number[] {
  return [...new Set(POOLINGS.map((p) => featureWidth(p, hidden)))];
}

/** Row b's feature for `pooling`, cut from the graph's wide output [B, 2H]. */
export function featureOf(wide: Float32Array, b: number, pooling: Pooling, hidden: number): Float32Array {
  const start = b * 2 * hidden + featureOffset(pooling, hidden);
  return wide.subarray(start, start + featureWidth(pooling, hidden));
}
