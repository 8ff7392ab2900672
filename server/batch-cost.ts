// How long a forward pass takes for its padded tokens, learnt from the batches
// that ran: time = fixed + perToken × tokens, fitted by least squares over
// recent batches (weights decaying per batch, so it follows the machine). The
// scheduler sizes batches with it while a flood is queued (targetBatchMs).
//
// A plain rate (tokens / time) is not enough for that: a pass has a fixed
// cost (launching the run, per-op overhead; on a GPU, most of a small batch's
// time), so small batches measure a lower rate, which shrinks the next batch,
// and where the fixed cost alone passes the target the batches shrink to one
// row, throwing away what batching buys for no gain in latency.

export interface BatchCost { fixedMs: number; msPerToken: number }

export class BatchCostModel {
  private weight = 0;
  private sumX = 0;
  private sumY = 0;
  private sumXX = 0;
  private sumXY = 0;

  /** `decay`: the weight a batch keeps for each later one (0.95: about the last 20 batches count). */
  constructor(private readonly decay = 0.95) {}

  observe(paddedTokens: number, ms: number): void {
    if (!(paddedTokens > 0) || !(ms >= 0)) return;
    const d = this.decay;
    this.weight = this.weight * d + 1;
    this.sumX = this.sumX * d + paddedTokens;
    this.sumY = this.sumY * d + ms;
    this.sumXX = this.sumXX * d + paddedTokens * paddedTokens;
    this.sumXY = this.sumXY * d + paddedTokens * ms;
  }

  get measured(): boolean {
    return this.weight > 0;
  }

  /**
   * The fitted cost. When recent batches were all about the same size (sizes
   * spread less than 5% of their mean) or the fit is not a cost (a falling
   * slope, a negative fixed part), all of the time is taken as per-token.
   */
  fit(): BatchCost {
    const meanX = this.sumX / this.weight, meanY = this.sumY / this.weight;
    const varX = this.sumXX / this.weight - meanX * meanX;
    const covXY = this.sumXY / this.weight - meanX * meanY;
    if (varX > (0.05 * meanX) ** 2 && covXY > 0) {
      const msPerToken = covXY / varX;
      const fixedMs = meanY - msPerToken * meanX;
      if (fixedMs >= 0) return { fixedMs, msPerToken };
    }
    return { fixedMs: 0, msPerToken: meanY / meanX };
  }

  /**
   * Padded tokens a batch may hold to take about `targetMs`, but never fewer
   * than where its fixed cost is half its time: a smaller batch would not be
   * much quicker, only less efficient. Infinity before any batch has run.
   */
  tokensFor(targetMs: number): number {
    if (!this.measured) return Infinity;
    const { fixedMs, msPerToken } = this.fit();
    if (!(msPerToken > 0)) return Infinity;
    return Math.max(targetMs - fixedMs, fixedMs) / msPerToken;
  }
}
