// safetensors: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and [begin, end) byte range in the data section, then
// the data. The parser trusts nothing: checkpoints and tenant uploads go through
// the same checks, and every failure names the tensor it is about.

import { SoftserveError } from '../kernels/errors.ts';
import { findDuplicateKey } from './json-keys.ts';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const DTYPE_BYTES: Record<SafetensorsDtype, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface TensorView {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** The tensor's raw little-endian bytes (a view into the file buffer). */
  bytes: Uint8Array;
}

export interface ParsedSafetensors {
  tensors: Map<string, TensorView>;
  metadata: Record<string, string>;
}

export interface ParseOptions {
  /** Largest JSON header accepted, in bytes (a hostile header can be huge). */
  maxHeaderBytes?: number;
}

const DEFAULT_MAX_HEADER_BYTES = 100 * 1024 * 1024;

function fail(message: string, details?: Record<string, unknown>): never {
  throw new SoftserveError('INVALID_SAFETENSORS', message, details);
}

export function parseSafetensors(buf: Uint8Array, opts: ParseOptions = {}): ParsedSafetensors {
  const maxHeader = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (buf.byteLength < 8) fail(`file is ${buf.byteLength} bytes, shorter than the 8-byte header length`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(buf.byteLength - 8)) {
    fail(`header length ${headerLen} runs past the end of the file (${buf.byteLength} bytes)`);
  }
  if (headerLen > BigInt(maxHeader)) fail(`header of ${headerLen} bytes exceeds the limit of ${maxHeader} bytes`);
  const n = Number(headerLen);
  let header: unknown;
  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n));
    header = JSON.parse(headerText);
  } catch (err) {
    fail(`header is not valid UTF-8 JSON: ${(err as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  // JSON.parse keeps the last of two equal keys: a header naming a tensor twice says two things.
  const dup = findDuplicateKey(headerText);
  if (dup) {
    const where = dup.path.length === 0 ? 'the header' : `"${dup.path.join('.')}"`;
    fail(`key "${dup.key}" appears twice in ${where}`, { tensor: dup.path[0] ?? dup.key, duplicate: dup.key });
  }

  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const tensors = new Map<string, TensorView>();
  let metadata: Record<string, string> = {};
  const ranges: Array<[number, number, string]> = [];

  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail('__metadata__ is not an object');
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (typeof entry !== 'object' || entry === null) fail(`tensor "${name}": entry is not an object`, { tensor: name });
    const { dtype, shape, data_offsets } = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
      fail(`tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`, { tensor: name });
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}": shape must be an array of non-negative integers`, { tensor: name });
    }
    if (!Array.isArray(data_offsets) || data_offsets.length !== 2 ||
        !data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}": data_offsets must be two non-negative integers`, { tensor: name });
    }
    const [begin, end] = data_offsets as [number, number];
    if (begin > end || end > dataLen) {
      fail(`tensor "${name}": data_offsets [${begin}, ${end}] out of range (data section is ${dataLen} bytes)`, { tensor: name });
    }
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    const expected = elements * DTYPE_BYTES[dtype as SafetensorsDtype];
    if (end - begin !== expected) {
      fail(`tensor "${name}": ${end - begin} bytes for shape [${shape}] of ${dtype}, expected ${expected}`, { tensor: name });
    }
    ranges.push([begin, end, name]);
    tensors.set(name, {
      name,
      dtype: dtype as SafetensorsDtype,
      shape: shape as number[],
      bytes: buf.subarray(dataStart + begin, dataStart + end),
    });
  }

  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < ranges.length; i++) {
    const [prevBegin, prevEnd, prevName] = ranges[i - 1]!;
    const [begin, , name] = ranges[i]!;
    if (begin < prevEnd && prevEnd > prevBegin) {
      fail(`tensors "${prevName}" and "${name}" overlap in the data section`, { tensor: name });
    }
  }
  // As the reference implementation checks: the tensors tile the data section
  // exactly, with no unclaimed bytes between them or after the last one.
  let covered = 0;
  for (const [begin, end, name] of ranges) {
    if (begin > covered) fail(`bytes ${covered}..${begin} of the data section belong to no tensor (before "${name}")`, { tensor: name });
    covered = Math.max(covered, end);
  }
  if (covered !== dataLen) {
    fail(`${dataLen - covered} trailing bytes after the last tensor (the data section is ${dataLen} bytes, tensors cover ${covered})`, { trailing: dataLen - covered });
  }
  return { tensors, metadata };
}

function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Converts a floating-point tensor to a fresh Float32Array (F64/F32/F16/BF16). */
export function toFloat32(t: TensorView): Float32Array {
  const n = t.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const dv = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  switch (t.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
      return out;
    case 'BF16': {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    default:
      throw new SoftserveError('PROMPT_DTYPE_UNSUPPORTED', `tensor "${t.name}" has dtype ${t.dtype}; expected F32, F16 or BF16`, { tensor: t.name, dtype: t.dtype });
  }
}

export interface TensorToWrite {
  name: string;
  shape: number[];
  data: Float32Array;
}

/**
 * Serialises F32 tensors. Tensors are laid out in name order and the header is
 * padded with spaces to an 8-byte boundary, so the same tensors always give the
 * same bytes (export, re-import, export is bit-identical).
 */
export function serializeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of sorted) {
    const elements = t.shape.reduce((a, b) => a * b, 1);
    if (elements !== t.data.length) {
      throw new SoftserveError('INTERNAL', `tensor "${t.name}": shape [${t.shape}] holds ${elements} values, data has ${t.data.length}`);
    }
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  const dv = new DataView(out.buffer);
  for (const t of sorted) {
    for (let i = 0; i < t.data.length; i++) dv.setFloat32(pos + i * 4, t.data[i]!, true);
    pos += t.data.byteLength;
  }
  return out;
}
