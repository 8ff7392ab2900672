// Reads a multipart/form-data upload into memory, within limits: a file over
// the limit, too many parts, or a malformed body is refused as soon as it is
// seen. The rest of the body is then read and discarded (not buffered), so
// the client gets its answer on a connection that is still sound.

import busboy from 'busboy';
import type { Request } from 'express';

import { SoftserveError } from '../kernels/errors.ts';

export interface MultipartLimits {
  /** Largest file part. */
  maxFileBytes: number;
  /** Most file parts. */
  maxFiles: number;
  /** Most non-file fields. */
  maxFields: number;
  /** Largest non-file field value. */
  maxFieldBytes: number;
}

export interface MultipartFile {
  field: string;
  filename: string | null;
  data: Buffer;
}

export interface MultipartBody {
  fields: Map<string, string>;
  files: MultipartFile[];
}

export function readMultipart(req: Request, limits: MultipartLimits): Promise<MultipartBody> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        limits: {
          fileSize: limits.maxFileBytes,
          files: limits.maxFiles,
          fields: limits.maxFields,
          fieldSize: limits.maxFieldBytes,
          parts: limits.maxFiles + limits.maxFields,
          headerPairs: 64,
        },
      });
    } catch (err) {
      reject(new SoftserveError('INVALID_MULTIPART', `cannot read multipart body: ${(err as Error).message}`));
      return;
    }
    const fields = new Map<string, string>();
    const files: MultipartFile[] = [];
    let settled = false;

    const fail = (err: SoftserveError): void => {
      if (settled) return;
      settled = true;
      // Stop parsing; read and drop the rest of the body.
      req.unpipe(bb);
      bb.removeAllListeners();
      bb.on('error', () => {});
      req.resume();
      reject(err);
    };

    bb.on('file', (field, stream, info) => {
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('data', (c: Buffer) => {
        if (settled) return;
        size += c.length;
        chunks.push(c);
      });
      stream.on('limit', () => {
        fail(new SoftserveError('PAYLOAD_TOO_LARGE', `file part "${field}" is larger than the limit of ${limits.maxFileBytes} bytes`, { limit: limits.maxFileBytes }));
        stream.resume();
      });
      stream.on('error', (e: Error) => fail(new SoftserveError('INVALID_MULTIPART', `file part "${field}": ${e.message}`)));
      stream.on('end', () => {
        if (settled) return;
        files.push({ field, filename: info.filename ?? null, data: Buffer.concat(chunks, size) });
      });
    });
    bb.on('field', (name, value, info) => {
      if (info.nameTruncated || info.valueTruncated) {
        fail(new SoftserveError('PAYLOAD_TOO_LARGE', `field "${name}" is longer than ${limits.maxFieldBytes} bytes`));
        return;
      }
      if (fields.has(name)) {
        fail(new SoftserveError('INVALID_MULTIPART', `field "${name}" appears twice`));
        return;
      }
      fields.set(name, value);
    });
    bb.on('filesLimit', () => fail(new SoftserveError('INVALID_MULTIPART', `more than ${limits.maxFiles} file parts`)));
    bb.on('fieldsLimit', () => fail(new SoftserveError('INVALID_MULTIPART', `more than ${limits.maxFields} fields`)));
    bb.on('partsLimit', () => fail(new SoftserveError('INVALID_MULTIPART', 'too many parts')));
    bb.on('error', (e: Error) => fail(new SoftserveError('INVALID_MULTIPART', `malformed multipart body: ${e.message}`)));
    bb.on('close', () => {
      if (settled) return;
      settled = true;
      resolve({ fields, files });
    });
    req.on('aborted', () => fail(new SoftserveError('BAD_REQUEST', 'request aborted')));
    req.pipe(bb);
  });
}
