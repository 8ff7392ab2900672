// JSON.parse keeps the last of two equal keys in one object, silently. For
// files whose keys name things (a safetensors header's tensors, an
// adapter_config.json's fields) a duplicate means the file says two things
// at once, so callers refuse it. This scans JSON text that JSON.parse has
// already accepted (so it is well-formed) and reports the first duplicate.
// It is iterative: nesting depth costs no stack.

export interface DuplicateKey {
  /** The repeated key, decoded. */
  key: string;
  /** Keys from the root down to the object holding the duplicate. */
  path: string[];
}

/** First key that appears twice in one object of `json` (well-formed JSON text), or null. */
export function findDuplicateKey(json: string): DuplicateKey | null {
  // One frame per open container: the keys seen so far (objects only) and the
  // key under which the container sits in its parent.
  const stack: Array<{ keys: Set<string> | null; at: string | null }> = [];
  let pendingKey: string | null = null;
  let i = 0;
  const n = json.length;
  while (i < n) {
    const c = json.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      i++;
      while (i < n) {
        const d = json.charCodeAt(i);
        if (d === 0x5c /* \ */) i += 2;
        else if (d === 0x22) break;
        else i++;
      }
      const end = ++i;
      // A string is a key when it sits directly in an object and a colon follows.
      const top = stack[stack.length - 1];
      if (top?.keys) {
        let j = i;
        while (j < n && (json[j] === ' ' || json[j] === '\t' || json[j] === '\n' || json[j] === '\r')) j++;
        if (json[j] === ':') {
          const key = JSON.parse(json.slice(start, end)) as string;
          if (top.keys.has(key)) {
            return { key, path: stack.slice(1).map((f) => f.at ?? '[]') };
          }
          top.keys.add(key);
          pendingKey = key;
        }
      }
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      stack.push({ keys: c === 0x7b ? new Set() : null, at: pendingKey });
      pendingKey = null;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      pendingKey = null;
    } else if (c === 0x2c /* , */) {
      pendingKey = null;
    }
    i++;
  }
  return null;
}
