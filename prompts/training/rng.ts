// Seeded randomness for training: every random choice a run makes (held-out
// split, initialisation, batch order) comes from streams derived from the
// job's seed, so the same seed and data give the same prompt.

export type Rng = () => number;

/** mulberry32: a small, fast 32-bit generator; uniform in [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An independent stream for one purpose ("split", "init", "order") of a seed. */
export function stream(seed: number, purpose: string): Rng {
  let h = (seed * 0x9e3779b1) >>> 0;
  for (let i = 0; i < purpose.length; i++) h = Math.imul(h ^ purpose.charCodeAt(i), 0x01000193) >>> 0;
  return mulberry32(h);
}

export function normal(rng: Rng): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) { const s = spare; spare = null; return s; }
    let u = rng();
    while (u <= 1e-12) u = rng();
    const r = Math.sqrt(-2 * Math.log(u));
    const th = 2 * Math.PI * rng();
    spare = r * Math.sin(th);
    return r * Math.cos(th);
  };
}

/** Fisher-Yates, in place. */
export function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}
