// Property-based tests of every parser that takes client bytes (issue 11):
// safetensors and the PEFT upload path, adapter_config.json, JSONL examples,
// templates, multipart uploads and classify bodies over HTTP. A few hundred
// cases each with a fixed seed (FUZZ_SEED overrides it); `npm run fuzz` runs
// 10,000 per parser. The generators and properties are in test/fuzz/.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';

import { IN_PROCESS, OVER_HTTP } from './fuzz/properties.ts';

const seed = Number(process.env.FUZZ_SEED ?? 20261130);

describe('fuzz: no client bytes crash a parser or get a 5xx; malformed input is refused', () => {
  for (const make of [...IN_PROCESS, ...OVER_HTTP]) {
    it(make.name, async () => {
      const target = await make();
      try {
        await fc.assert(target.property(), { numRuns: IN_PROCESS.includes(make as never) ? 400 : 200, seed });
        assert.equal(target.tally.failures, 0);
        assert.ok(target.tally.refused > 0, 'some cases were refused (the corruption reaches the parser)');
        assert.ok(target.tally.accepted > 0, 'some cases were accepted (the valid structures are valid)');
      } finally {
        await target.close?.();
      }
    });
  }
});
