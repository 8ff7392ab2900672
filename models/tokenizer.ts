// Tokenisation through @huggingface/tokenizers (pure JS, reads tokenizer.json
// offline). Special tokens are the caller's choice: templates add BOS/CLS
// themselves so that virtual tokens can sit before them.

import { Tokenizer } from '@huggingface/tokenizers';
import { SoftserveError } from '../kernels/errors.ts';
import type { Checkpoint } from './checkpoint.ts';

export class TextTokenizer {
  private readonly tokenizer: Tokenizer;

  constructor(ckpt: Checkpoint) {
    try {
      this.tokenizer = new Tokenizer(ckpt.tokenizerJson, ckpt.tokenizerConfig);
    } catch (err) {
      throw new SoftserveError('MODEL_FILE_INVALID', `${ckpt.dir}/tokenizer.json could not be loaded: ${(err as Error).message}`,
        { file: `${ckpt.dir}/tokenizer.json` });
    }
  }

  /** Token ids of `text`, without special tokens. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
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
