// Tokenisation through @huggingface/tokenizers (pure JS, reads tokenizer.json
// offline), with a faster encoder of our own for plain BPE tokenizers
// (models/bpe.ts) that gives the library's ids. Special tokens are the
// caller's choice: templates add BOS/CLS themselves so that virtual tokens
// can sit before them.

import { Tokenizer } from '@huggingface/tokenizers';
import { bpeEncoder, type FastBpe } from './bpe.ts';
import { SoftserveError } from '../kernels/errors.ts';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The tokenizer files of a checkpoint directory, parsed. */
export interface TokenizerFiles {
  dir: string;
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

export class TextTokenizer {
  private readonly tokenizer: Tokenizer;

  /** Whether the checkpoint asks for BOS before every input (tokenizer_config add_bos_token). */
  readonly addBos: boolean;

  /** Id of the unknown token: word-level models give no id for words they lack. */
  private readonly unkId: number | null;

  /** The fast path for plain BPE tokenizers (models/bpe.ts), or null: the library encodes every text. */
  private readonly fast: FastBpe | null;

  constructor(ckpt: TokenizerFiles) {
    this.addBos = ckpt.tokenizerConfig.add_bos_token !== false;
    try {
      this.tokenizer = new Tokenizer(ckpt.tokenizerJson, ckpt.tokenizerConfig);
    } catch (err) {
      throw new SoftserveError('MODEL_FILE_INVALID', `${ckpt.dir}/tokenizer.json could not be loaded: ${(err as Error).message}`,
        { file: `${ckpt.dir}/tokenizer.json` });
    }
    const model = ckpt.tokenizerJson.model as { unk_token?: unknown } | undefined;
    const unk = typeof model?.unk_token === 'string' ? model.unk_token : null;
    this.unkId = unk === null ? null : this.tokenizer.token_to_id(unk) ?? null;
    this.fast = bpeEncoder(ckpt.tokenizerJson, ckpt.tokenizerConfig);
  }

  /** Token ids of `text`, without special tokens. */
  encode(text: string): number[] {
    const fast = this.fast?.encode(text);
    if (fast) return fast;
    return this.libraryEncode(text);
  }

  /**
   * An upper bound on `encode(text).length` that is cheaper than encoding:
   * the fast path's (models/bpe.ts), else Infinity (the library's
   * normalizers can lengthen a text, so nothing short of encoding bounds it).
   */
  tokenBound(text: string): number {
    return this.fast ? this.fast.tokenBound(text) : Infinity;
  }

  /** The library's encoding: the reference the fast path is tested against. */
  libraryEncode(text: string): number[] {
    const ids = this.tokenizer.encode(text, { add_special_tokens: false }).ids as Array<number | undefined>;
    if (ids.every((id) => id !== undefined)) return ids as number[];
    if (this.unkId === null) {
      throw new SoftserveError('INVALID_INPUT', 'the input has words this tokenizer cannot encode, and it has no unknown token');
    }
    return ids.map((id) => id ?? this.unkId!);
  }

  decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skip_special_tokens: true });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  tokenText(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }
}

/** Reads only tokenizer.json and tokenizer_config.json (not the weights). */
export function loadTokenizer(dir: string): TextTokenizer {
  const path = join(dir, 'tokenizer.json');
  if (!existsSync(path)) throw new SoftserveError('MODEL_FILE_MISSING', `model file ${path} is missing`, { file: path });
  const read = (p: string): Record<string, unknown> => {
    try {
      return JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new SoftserveError('MODEL_FILE_INVALID', `model file ${p} is not valid JSON: ${(err as Error).message}`, { file: p });
    }
  };
  const configPath = join(dir, 'tokenizer_config.json');
  return new TextTokenizer({ dir, tokenizerJson: read(path), tokenizerConfig: existsSync(configPath) ? read(configPath) : {} });
}
