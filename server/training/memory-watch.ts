// Enforces a running training job's memory ceiling. The training worker is a
// thread of the server process, so there is no per-thread RSS to read: the
// watch samples the process's RSS and measures its growth over the baseline
// taken just before the job started (model already loaded). The growth also
// counts whatever serving allocates meanwhile, so the ceiling is conservative
// for the job. A sample over the ceiling calls `onExceeded` once (the manager
// then terminates the worker). onnxruntime's native allocations are what
// matter here; a worker's `resourceLimits` bound only its V8 heap, not them.

export interface MemoryWatchOptions {
  limitBytes: number;
  sampleMs: number;
  onExceeded(growthBytes: number): void;
  /** The process's resident set size in bytes (process.memoryUsage.rss by default). */
  rss?: () => number;
}

export class MemoryWatch {
  readonly baseline: number;
  private peak = 0;
  private timer: NodeJS.Timeout | null;
  private fired = false;
  private readonly rss: () => number;

  constructor(private readonly opts: MemoryWatchOptions) {
    this.rss = opts.rss ?? (() => process.memoryUsage.rss());
    this.baseline = this.rss();
    this.timer = setInterval(() => this.sample(), opts.sampleMs);
    this.timer.unref();
  }

  /** Largest growth over the baseline seen so far (bytes). */
  get peakGrowth(): number {
    return this.peak;
  }

  sample(enforce = true): void {
    const growth = Math.max(0, this.rss() - this.baseline);
    if (growth > this.peak) this.peak = growth;
    if (enforce && growth > this.opts.limitBytes && !this.fired) {
      this.fired = true;
      this.opts.onExceeded(growth);
    }
  }

  stop(): void {
    if (this.timer) {
      this.sample(false);
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}
