// Content-addressed tensor files: `<dir>/<sha256 of the bytes>.safetensors`.
//
// A write goes to a temp file in the same directory, is fsynced, renamed to
// its final name and the directory fsynced; only then does the caller insert
// the database row that names it. So at every instant each file a row names is
// whole, and what a crash can leave behind is only garbage: a temp file, or a
// finished file no row names yet. `scan` finds both; the store's startup sweep
// removes them. Same bytes, same name: identical prompts share one file.

import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, openSync, fsyncSync, closeSync, unlinkSync } from 'node:fs';
import { open, readFile, rename, unlink, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { SoftserveError } from '../../../kernels/errors.ts';
import { sha256Hex } from '../sql-rows.ts';

export const TEMP_PREFIX = '.tmp-';
const FILE_RE = /^([0-9a-f]{64})\.safetensors$/;
const HASH_RE = /^[0-9a-f]{64}$/;

export { sha256Hex };

export interface ScanResult {
  /** Hashes of finished files present on disk. */
  files: Set<string>;
  /** Names of leftover temp files. */
  temps: string[];
  /** Names that are neither (left alone, reported). */
  unknown: string[];
}

export class TensorFiles {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  pathOf(hash: string): string {
    if (!HASH_RE.test(hash)) throw new SoftserveError('INTERNAL', `not a tensor hash: ${JSON.stringify(hash)}`);
    return join(this.dir, `${hash}.safetensors`);
  }

  /**
   * Makes `bytes` durable under their hash and returns the hash. When a file
   * of that name already exists it is already whole (it was renamed into place
   * only after an fsync), so nothing is written.
   */
  async write(bytes: Uint8Array): Promise<string> {
    const hash = sha256Hex(bytes);
    const final = this.pathOf(hash);
    if (await exists(final)) return hash;
    const temp = join(this.dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    const fh = await open(temp, 'wx', 0o644);
    try {
      let off = 0;
      while (off < bytes.byteLength) {
        const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off, off);
        off += bytesWritten;
      }
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => {});
      await unlink(temp).catch(() => {});
      throw err;
    }
    await fh.close();
    try {
      await rename(temp, final);
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err;
    }
    this.syncDir();
    return hash;
  }

  /** Reads a file and checks it still hashes to its name. */
  async read(hash: string): Promise<Uint8Array> {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(this.pathOf(hash));
    } catch (err) {
      throw new SoftserveError('PROMPT_FILE_CORRUPT', `tensor file ${hash} cannot be read: ${(err as Error).message}`, { hash });
    }
    const got = sha256Hex(bytes);
    if (got !== hash) {
      throw new SoftserveError('PROMPT_FILE_CORRUPT', `tensor file ${hash} hashes to ${got}`, { hash });
    }
    return bytes;
  }

  async has(hash: string): Promise<boolean> {
    return exists(this.pathOf(hash));
  }

  /**
   * Removes a finished file (missing is fine) and fsyncs the directory.
   * Synchronous on purpose: the caller decides "no row and no writer uses
   * this hash" and unlinks in the same tick, so no upload of the same bytes
   * can slip in between and find a file that is about to vanish.
   */
  removeSync(hash: string, syncDir = true): void {
    unlinkQuiet(this.pathOf(hash));
    if (syncDir) this.syncDir();
  }

  removeTempSync(name: string): void {
    if (!name.startsWith(TEMP_PREFIX) || name.includes('/')) throw new SoftserveError('INTERNAL', `not a temp file: ${name}`);
    unlinkQuiet(join(this.dir, name));
  }

  scan(): ScanResult {
    const files = new Set<string>();
    const temps: string[] = [];
    const unknown: string[] = [];
    for (const name of readdirSync(this.dir)) {
      const m = FILE_RE.exec(name);
      if (m) files.add(m[1]!);
      else if (name.startsWith(TEMP_PREFIX)) temps.push(name);
      else unknown.push(name);
    }
    return { files, temps, unknown };
  }

  syncDir(): void {
    const fd = openSync(this.dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
