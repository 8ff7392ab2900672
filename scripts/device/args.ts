// Argument parsing shared by the device scripts: `--key value` pairs and
// `--flag` switches, nothing positional beyond the subcommand.

export class Args {
  private readonly values = new Map<string, string>();

  constructor(argv: string[], flags: readonly string[] = []) {
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i]!;
      if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
      const key = a.slice(2);
      if (flags.includes(key)) { this.values.set(key, 'true'); continue; }
      const v = argv[++i];
      if (v === undefined) throw new Error(`--${key} needs a value`);
      this.values.set(key, v);
    }
  }

  has(key: string): boolean { return this.values.has(key); }

  str(key: string, fallback?: string): string {
    const v = this.values.get(key) ?? fallback;
    if (v === undefined) throw new Error(`--${key} is required`);
    return v;
  }

  num(key: string, fallback?: number): number {
    const raw = this.values.get(key);
    const v = raw === undefined ? fallback : Number(raw);
    if (v === undefined || !Number.isFinite(v) || v < 0) throw new Error(`--${key} must be a non-negative number`);
    return v;
  }

  list(key: string, fallback: number[]): number[] {
    const raw = this.values.get(key);
    if (raw === undefined) return fallback;
    const out = raw.split(',').map(Number);
    if (out.some((n) => !Number.isSafeInteger(n) || n < 1)) throw new Error(`--${key}: a comma-separated list of positive integers`);
    return out;
  }
}

/** The error text to record: a SoftserveError's code and message, or whatever was thrown. */
export function errorText(err: unknown): string {
  const e = err as { code?: string; message?: string };
  return `${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}`;
}
