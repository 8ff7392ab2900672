// A fast encoder for the plainest tokenizer.json shape: a BPE model (merges by
// rank, optional byte fallback) behind Prepend/Replace normalizers and no
// pre-tokenizer, which is what Llama-family checkpoints such as stories260k
// ship. Without a pre-tokenizer the whole sentence is one BPE word, and
// @huggingface/tokenizers merges it with string pairs looked up through
// JSON.stringify: about 0.3 ms of the HTTP thread per SST-2 sentence, a fifth
// of a classify request's CPU on stories260k (docs/BENCHMARKS.md). Here
// symbols are vocabulary ids and a merge is one Map lookup on an integer key.
//
// It must give exactly the library's ids: models/tokenizer.ts uses it only
// when `bpeEncoder` accepts the tokenizer files, sends any text that contains
// an added token (<s>, <unk>, ...) to the library, and test/bpe.test.ts
// compares the two on every dataset text and on random strings.

interface BpeModelJson {
  type?: unknown; vocab?: unknown; merges?: unknown; dropout?: unknown; unk_token?: unknown;
  continuing_subword_prefix?: unknown; continuing_subword_suffix?: unknown; end_of_word_suffix?: unknown; fuse_unk?: unknown; byte_fallback?: unknown; ignore_merges?: unknown;
}

interface NormalizerJson { type?: unknown; prepend?: unknown; pattern?: { String?: unknown }; content?: unknown; normalizers?: unknown }

type Normalize = (text: string) => string;

/** The normalizers it reproduces (Prepend, Replace of a literal string, a Sequence of them), or null for any other. */
function normalizerOf(json: unknown): Normalize | null {
  if (json === null || json === undefined) return (t) => t;
  const n = json as NormalizerJson;
  if (n.type === 'Prepend' && typeof n.prepend === 'string') {
    const prefix = n.prepend;
    return (t) => prefix + t;
  }
  // The library matches a Replace pattern as a unicode regex: an empty pattern matches between code
  // points, and a surrogate in the pattern never matches half of a pair. Neither is reproduced here.
  if (n.type === 'Replace' && typeof n.pattern?.String === 'string' && n.pattern.String !== '' && !/[\ud800-\udfff]/.test(n.pattern.String) &&
    (n.content === undefined || typeof n.content === 'string')) {
    const from = n.pattern.String;
    const to = (n.content as string | undefined) ?? '';
    // The library calls replaceAll, which reads `$&`, `$1`... in the content as the match: a content
    // with `$` goes the same way. Without one the two are equal, and split/join makes about 40%
    // less garbage on a sentence (replaceAll was the largest allocating function of a classify request).
    if (to.includes('$')) return (t) => t.replaceAll(from, to);
    return (t) => t.split(from).join(to);
  }
  if (n.type === 'Sequence' && Array.isArray(n.normalizers)) {
    const steps = n.normalizers.map(normalizerOf);
    if (steps.some((s) => s === null)) return null;
    return (t) => (steps as Normalize[]).reduce((acc, step) => step(acc), t);
  }
  return null;
}

/** The rank of a pair that has no merge: above every real rank. */
const NO_MERGE = 0x7fffffff;

/** Merge table key of the pair (left, right) of vocabulary ids. */
const pairKey = (left: number, right: number, vocabSize: number) => left * vocabSize + right;

/** The fast encoder of one tokenizer. */
export interface FastBpe {
  /** The ids of `text`, or null for a text it leaves to the library (one holding an added token). */
  encode(text: string): number[] | null;
  /**
   * An upper bound on the number of ids of `text`, found without merging
   * (Infinity for a text left to the library): a caller that only needs to
   * know whether a text can exceed a limit skips the merges.
   */
  tokenBound(text: string): number;
}

/**
 * The fast encoder for these tokenizer files, or null when they are not the
 * supported shape (the caller then uses the library for every text).
 */
export function bpeEncoder(tokenizerJson: Record<string, unknown>, tokenizerConfig: Record<string, unknown>): FastBpe | null {
  const model = tokenizerJson.model as BpeModelJson | undefined;
  if (!model || model.type !== 'BPE' || tokenizerJson.pre_tokenizer !== null) return null;
  if (model.dropout !== null && model.dropout !== undefined) return null;
  if (model.continuing_subword_prefix || model.continuing_subword_suffix || model.end_of_word_suffix || model.ignore_merges === true) return null;
  if (tokenizerConfig.remove_space === true || tokenizerConfig.do_lowercase_and_remove_accent === true) return null;
  const normalize = normalizerOf(tokenizerJson.normalizer);
  if (!normalize || typeof model.vocab !== 'object' || model.vocab === null || !Array.isArray(model.merges)) return null;

  const vocab = model.vocab as Record<string, number>;
  const ids = new Map<string, number>(Object.entries(vocab));
  // An unknown token that is not in the model's vocabulary: the library has no id for it (and never fuses).
  if (typeof model.unk_token === 'string' && !Object.hasOwn(vocab, model.unk_token)) return null;
  const added = Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens as Array<{ id: number; content: string }> : [];
  for (const t of added) ids.set(t.content, t.id);
  // Added tokens split the text in the library, matched raw or (for `normalized` ones) normalized:
  // a text holding either form goes to the library.
  const addedContents = [...new Set(added.flatMap((t) => [t.content, normalize(t.content)]))].filter((c) => c.length > 0);
  let vocabSize = 0;
  for (const id of ids.values()) vocabSize = Math.max(vocabSize, id + 1);

  // Merges: the rank of each pair of ids, and what each rank merges into.
  const rankOf = new Map<number, number>();
  const mergedAt = new Int32Array(model.merges.length);
  // The library reads every merge in the format of the first ("a b" strings, or [a, b] pairs).
  const pairs = Array.isArray(model.merges[0]);
  for (let rank = 0; rank < model.merges.length; rank++) {
    const m = model.merges[rank] as unknown;
    if (pairs ? !(Array.isArray(m) && m.length === 2) : typeof m !== 'string') return null;
    const [left, right] = typeof m === 'string' ? m.split(' ', 2) : (m as [string, string]);
    const l = ids.get(left!), r = ids.get(right!), merged = ids.get(`${left}${right}`);
    // A merge whose parts or result are not tokens: the library would work on strings here; leave it to it.
    if (l === undefined || r === undefined || merged === undefined) return null;
    // A pair listed twice takes its last rank, as in the library's table.
    rankOf.set(pairKey(l, r, vocabSize), rank);
    mergedAt[rank] = merged;
  }

  const byteIds = Array.from({ length: 256 }, (_, b) => ids.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? -1);
  const unk = typeof model.unk_token === 'string' ? ids.get(model.unk_token) ?? -1 : -1;
  return new MergeEncoder(ids, rankOf, mergedAt, vocabSize, {
    normalize, addedContents, byteFallback: model.byte_fallback === true, byteIds, unk, fuseUnk: model.fuse_unk === true,
  });
}

interface EncoderOptions {
  normalize: Normalize;
  addedContents: string[];
  byteFallback: boolean;
  /** Token id of each byte's <0xXX> token, -1 where missing. */
  byteIds: number[];
  /** The unknown token's id, -1 if none. */
  unk: number;
  fuseUnk: boolean;
}

/**
 * A binary min-heap of (rank, node) entries, smallest rank first and the
 * leftmost node among equal ranks; entries of rank NO_MERGE are not kept.
 */
class PairQueue {
  private readonly ranks: Int32Array;
  private readonly nodes: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.ranks = new Int32Array(capacity);
    this.nodes = new Int32Array(capacity);
  }

  private before(a: number, b: number): boolean {
    return this.ranks[a]! < this.ranks[b]! || (this.ranks[a] === this.ranks[b] && this.nodes[a]! < this.nodes[b]!);
  }

  private swap(a: number, b: number): void {
    const r = this.ranks[a]!, n = this.nodes[a]!;
    this.ranks[a] = this.ranks[b]!; this.nodes[a] = this.nodes[b]!;
    this.ranks[b] = r; this.nodes[b] = n;
  }

  push(rank: number, node: number): void {
    if (rank === NO_MERGE) return;
    let at = this.size++;
    this.ranks[at] = rank;
    this.nodes[at] = node;
    while (at > 0) {
      const parent = (at - 1) >> 1;
      if (!this.before(at, parent)) break;
      this.swap(at, parent);
      at = parent;
    }
  }

  topRank(): number {
    return this.ranks[0]!;
  }

  /** Removes the first entry and returns its node. */
  pop(): number {
    const node = this.nodes[0]!;
    const last = --this.size;
    this.ranks[0] = this.ranks[last]!;
    this.nodes[0] = this.nodes[last]!;
    for (let at = 0; ;) {
      const l = 2 * at + 1, r = l + 1;
      let first = at;
      if (l < last && this.before(l, first)) first = l;
      if (r < last && this.before(r, first)) first = r;
      if (first === at) break;
      this.swap(at, first);
      at = first;
    }
    return node;
  }
}

/**
 * One node per code point (see MergeEncoder.encode) and the queue of pairs,
 * for texts of up to `capacity` UTF-16 units. An encoder keeps one and
 * reuses it (encode is synchronous, so calls never overlap): seven typed
 * arrays allocated per call made the encoder 18% of a classify request's
 * garbage (docs/BENCHMARKS.md) and cost more than half its time.
 */
class Workspace {
  readonly symbol: Int32Array;
  readonly next: Int32Array;
  readonly prev: Int32Array;
  readonly rank: Int32Array;
  readonly start: Int32Array;
  readonly queue: PairQueue;

  constructor(readonly capacity: number) {
    this.symbol = new Int32Array(capacity);
    this.next = new Int32Array(capacity);
    this.prev = new Int32Array(capacity);
    this.rank = new Int32Array(capacity);
    this.start = new Int32Array(capacity);
    // Each merge pushes at most two pairs: n first entries and 2(n - 1) later ones.
    this.queue = new PairQueue(3 * capacity);
  }
}

/** The encoder itself; no closures in its hot loops (tsx's keepNames makes each one cost a defineProperty). */
class MergeEncoder implements FastBpe {
  /** Token id of each UTF-16 code unit that is a token by itself, -1 otherwise; other code points go through `ids`. */
  private readonly unitIds = new Int32Array(0x10000).fill(-1);
  private readonly utf8 = new TextEncoder();
  private work = new Workspace(256);

  constructor(private readonly ids: Map<string, number>, private readonly rankOf: Map<number, number>,
    private readonly mergedAt: Int32Array, private readonly vocabSize: number, private readonly o: EncoderOptions) {
    for (const [token, id] of ids) if (token.length === 1) this.unitIds[token.charCodeAt(0)] = id;
  }

  /** The ids of `text`, or null when it holds an added token (the library splits those out). */
  encode(text: string): number[] | null {
    if (text.length === 0) return [];
    const normalized = this.normalized(text);
    if (normalized === null) return null;
    if (normalized.length === 0) return [];

    // One node per code point: where it starts, its token id (-1 for a character outside the vocabulary,
    // which never merges), the live nodes before and after it, and the rank of the pair it starts.
    // A merge keeps the left node; the right one leaves the list with rank NO_MERGE.
    const units = normalized.length;
    if (units > this.work.capacity) this.work = new Workspace(Math.max(units, 2 * this.work.capacity));
    const { symbol, next, prev, rank, start, queue } = this.work;
    queue.size = 0;
    let n = 0;
    for (let u = 0; u < units; n++) {
      const code = normalized.charCodeAt(u);
      const width = code >= 0xd800 && code <= 0xdbff && u + 1 < units && (normalized.charCodeAt(u + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
      start[n] = u;
      symbol[n] = width === 1 ? this.unitIds[code]! : this.ids.get(normalized.slice(u, u + 2)) ?? -1;
      u += width;
    }
    // The lowest-ranked pair merges first, the leftmost of equal ranks (the library's order). Node
    // indices keep the text's order, so the queue orders by (rank, node). An entry whose node's rank
    // has changed since is stale and skipped: one rank names one pair, so an equal rank is the same pair.
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    for (let i = 0; i < n; i++) queue.push(rank[i] = this.pairRank(symbol, next, i), i);
    while (queue.size > 0) {
      const r = queue.topRank(), i = queue.pop();
      if (rank[i] !== r) continue;
      const j = next[i]!;
      symbol[i] = this.mergedAt[r]!;
      next[i] = next[j]!;
      if (next[i]! >= 0) prev[next[i]!] = i;
      rank[j] = NO_MERGE;
      queue.push(rank[i] = this.pairRank(symbol, next, i), i);
      const p = prev[i]!;
      if (p >= 0) queue.push(rank[p] = this.pairRank(symbol, next, p), p);
    }

    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) {
      if (symbol[i]! >= 0) out.push(symbol[i]!);
      else this.outside(normalized.slice(start[i]!, i + 1 < n ? start[i + 1]! : units), out);
    }
    return this.o.fuseUnk && this.o.unk >= 0 ? this.fused(out) : out;
  }

  tokenBound(text: string): number {
    if (text.length === 0) return 0;
    const normalized = this.normalized(text);
    if (normalized === null) return Infinity;
    // Merges only join nodes, and a node gives one id, or for a character outside the vocabulary its
    // UTF-8 bytes' ids, one unknown id, or none. So per code unit: 1 for a token by itself, else at most
    // its UTF-8 bytes; a surrogate counts 3, the bytes of a lone one (U+FFFD), and 6 for a pair's 4.
    let bound = 0;
    for (let u = 0; u < normalized.length; u++) {
      const code = normalized.charCodeAt(u);
      if (code >= 0xd800 && code <= 0xdfff) bound += 3;
      else if (this.unitIds[code]! >= 0 || code < 0x80) bound += 1;
      else bound += code < 0x800 ? 2 : 3;
    }
    return bound;
  }

  /** The normalized text, or null when it holds an added token, raw or normalized (the library splits those out). */
  private normalized(text: string): string | null {
    if (this.holdsAddedToken(text)) return null;
    const normalized = this.o.normalize(text);
    return this.holdsAddedToken(normalized) ? null : normalized;
  }

  private holdsAddedToken(text: string): boolean {
    for (const c of this.o.addedContents) if (text.includes(c)) return true;
    return false;
  }

  /** The rank of the pair that node `i` starts, NO_MERGE if none. */
  private pairRank(symbol: Int32Array, next: Int32Array, i: number): number {
    const j = next[i]!;
    if (j < 0 || symbol[i]! < 0 || symbol[j]! < 0) return NO_MERGE;
    return this.rankOf.get(pairKey(symbol[i]!, symbol[j]!, this.vocabSize)) ?? NO_MERGE;
  }

  /** A character outside the vocabulary: its bytes' tokens, else the unknown token, else nothing (as the library does). */
  private outside(ch: string, out: number[]): void {
    if (this.o.byteFallback) {
      const bytes = this.utf8.encode(ch);
      let all = true;
      for (const b of bytes) if (this.o.byteIds[b]! < 0) all = false;
      if (all) {
        for (const b of bytes) out.push(this.o.byteIds[b]!);
        return;
      }
    }
    if (this.o.unk >= 0) out.push(this.o.unk);
  }

  /** Runs of the unknown token collapsed into one (fuse_unk); `ids` itself when it has no run (most texts). */
  private fused(ids: number[]): number[] {
    let runs = false;
    for (let i = 1; i < ids.length && !runs; i++) runs = ids[i] === this.o.unk && ids[i - 1] === this.o.unk;
    if (!runs) return ids;
    const out: number[] = [];
    for (let i = 0; i < ids.length; i++) if (ids[i] !== this.o.unk || ids[i - 1] !== this.o.unk) out.push(ids[i]!);
    return out;
  }
}
