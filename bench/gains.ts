// Batching gains, judged against the engine's own (issue 12): a batching
// policy's worth is how much of the raw engine's gain between two batch-size
// distributions the server keeps. The server's gain is base rows/s over a
// policy's rows/s through HTTP; the engine's gain is the same ratio for the
// batches each run formed, replayed in process (bench/replay.ts). A server
// cannot beat its engine by batching, so the ratio of the two gains is the
// measure, with 1 meaning every bit of the engine's batching gain reached
// the clients.

/** The server's batching gain should be at least this fraction of the raw engine's. */
export const GAIN_RATIO_GOAL = 0.9;

export interface BatchingGain {
  /** Server rows/s of the base policy over the compared policy's. */
  server: number;
  /** Raw-engine rows/s on the base run's batches over the compared run's batches. */
  engine: number;
  /** server / engine; NaN when either gain is unknown. */
  ratio: number;
}

const positive = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x) && x > 0;

/** Rates are rows/s; a missing or non-positive rate gives NaN where it is used. */
export function batchingGain(rates: { serverBase?: number; serverPolicy?: number; engineBase?: number; enginePolicy?: number }): BatchingGain {
  const div = (a: number | undefined, b: number | undefined) => (positive(a) && positive(b) ? a / b : NaN);
  const server = div(rates.serverBase, rates.serverPolicy);
  const engine = div(rates.engineBase, rates.enginePolicy);
  return { server, engine, ratio: Number.isFinite(server) && Number.isFinite(engine) ? server / engine : NaN };
}
