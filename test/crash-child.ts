// The crash test's victim: opens the store (a SQLite data directory, or a
// PostgreSQL database when the target is a postgres:// URL) and uploads,
// re-versions and deletes PEFT prompts in a loop, until it is killed. Every
// operation is announced on stdout before it starts ("begin ...") and after it
// is durable ("ok ..."); stdout to a pipe is synchronous on Linux, so what the
// parent reads is exactly what had happened when the SIGKILL landed.
//
// Each upload's adapter_config.json carries `crash_seed`: the parent rebuilds
// the expected tensors from it and checks the stored file bit for bit.
//
// usage: node --import tsx test/crash-child.ts <dataDir | postgres://…> <seed>

import { PromptStore } from '../prompts/store.ts';
import { openBackend } from '../prompts/store/open.ts';
import { SPEC, buildPeft, type PeftTypeName } from './peft-builders.ts';

const [target, seedArg] = process.argv.slice(2);
if (!target || !seedArg) throw new Error('usage: crash-child <dataDir | postgres://…> <seed>');

let state = Number(seedArg) >>> 0 || 1;
function rand(): number {
  // xorshift32
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state / 2 ** 32;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const say = (line: string): void => { process.stdout.write(`${line}\n`); };

const TYPES: readonly PeftTypeName[] = ['PROMPT_TUNING', 'P_TUNING', 'PREFIX_TUNING'];
const DTYPES = ['F32', 'F16', 'BF16'] as const;

say('opening');
// The backend as the server picks it (prompts/store/open.ts).
const pgTarget = target.startsWith('postgres://');
const store = new PromptStore(await openBackend({ dataDir: pgTarget ? '' : target, databaseUrl: pgTarget ? target : null }), { spec: SPEC });
const tenant = (await store.listTenants())[0] ?? (await store.createTenant('crash')).tenant;
try {
  await store.getTask(tenant.id, 'crash');
} catch {
  await store.createTask(tenant.id, { name: 'crash', labels: ['no', 'yes'], template: '{text} ?', scoring: { type: 'verbalizer', labelWords: [' no', ' yes'] } });
}
say(`ready ${tenant.id}`);

const seeds: number[] = [];
let counter = 0;
for (;;) {
  const prompts = await store.listPrompts(tenant.id, 'crash');
  const r = rand();
  if (prompts.length > 0 && (r < 0.15 || prompts.length > 20)) {
    const p = pick(prompts);
    say(`begin del ${p.name}`);
    await store.deletePrompt(tenant.id, 'crash', p.name);
    say(`ok del ${p.name}`);
  } else if (prompts.length > 0 && r < 0.25) {
    const p = pick(prompts);
    const v = pick(p.versions).version;
    say(`begin delv ${p.name} ${v}`);
    await store.deletePromptVersion(tenant.id, 'crash', p.name, v);
    say(`ok delv ${p.name} ${v}`);
  } else {
    const name = prompts.length > 0 && rand() < 0.3 ? pick(prompts).name : `p${Date.now().toString(36)}${(counter++).toString(36)}`;
    // Now and then the same tensors again: two rows, one shared file.
    const seed = seeds.length > 0 && rand() < 0.15 ? pick(seeds) : Math.floor(rand() * 2 ** 31);
    seeds.push(seed);
    const type = TYPES[seed % 3]!;
    const p = 1 + (seed % 48);
    const dtype = DTYPES[(seed >>> 3) % 3]!;
    const files = buildPeft(SPEC, type, p, seed, { dtype, config: { crash_seed: seed } });
    say(`begin up ${name}`);
    const v = await store.putPeftPrompt(tenant.id, 'crash', name, files);
    say(`ok up ${name} ${v.version}`);
  }
}
