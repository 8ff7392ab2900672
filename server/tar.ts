// A minimal ustar writer: regular files only, deterministic (fixed mode,
// owner and the given mtime), so an export is the same bytes every time.
// `tar -xf` unpacks it into a directory PeftModel.from_pretrained reads.

export interface TarEntry {
  /** Relative path, ASCII, at most 100 bytes. */
  name: string;
  data: Uint8Array;
}

function writeString(buf: Uint8Array, offset: number, length: number, s: string): void {
  const bytes = new TextEncoder().encode(s);
  if (bytes.length > length) throw new Error(`tar field too long: ${s}`);
  buf.set(bytes, offset);
}

function writeOctal(buf: Uint8Array, offset: number, length: number, n: number): void {
  writeString(buf, offset, length, n.toString(8).padStart(length - 1, '0') + '\0');
}

export function tarArchive(entries: TarEntry[], mtimeSeconds: number): Uint8Array {
  const blocks: Uint8Array[] = [];
  let total = 0;
  for (const e of entries) {
    if (!/^[\x21-\x7e][\x20-\x7e]{0,99}$/.test(e.name) || e.name.split('/').some((p) => p === '..' || p === '')) {
      throw new Error(`unsafe tar entry name ${JSON.stringify(e.name)}`);
    }
    const header = new Uint8Array(512);
    writeString(header, 0, 100, e.name);
    writeOctal(header, 100, 8, 0o644);
    writeOctal(header, 108, 8, 0);
    writeOctal(header, 116, 8, 0);
    writeOctal(header, 124, 12, e.data.byteLength);
    writeOctal(header, 136, 12, Math.max(0, Math.floor(mtimeSeconds)));
    header.fill(0x20, 148, 156); // checksum field counts as spaces while summing
    header[156] = 0x30; // '0': regular file
    writeString(header, 257, 6, 'ustar\0');
    writeString(header, 263, 2, '00');
    writeString(header, 265, 32, 'softserve');
    writeString(header, 297, 32, 'softserve');
    let sum = 0;
    for (const b of header) sum += b;
    writeString(header, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
    const padded = new Uint8Array(Math.ceil(e.data.byteLength / 512) * 512);
    padded.set(e.data);
    blocks.push(header, padded);
    total += 512 + padded.length;
  }
  blocks.push(new Uint8Array(1024));
  total += 1024;
  const out = new Uint8Array(total);
  let pos = 0;
  for (const b of blocks) {
    out.set(b, pos);
    pos += b.length;
  }
  return out;
}
