// softserve prompts push|pull|ls|show|rm|inspect (tenant key). push and pull
// move PEFT's own files: the adapter_config.json and adapter_model.safetensors
// that PeftModel.save_pretrained writes and PeftModel.from_pretrained loads.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';

import { RuntimeError, seg } from '../client.ts';
import { out, positiveInt, printJson, printTable, promptRef, taskOf, tenantClient, wantsJson } from '../context.ts';

const CONFIG = 'adapter_config.json';
const MODEL = 'adapter_model.safetensors';

interface VersionView { task: string; name: string; version: number; kind: string; num_virtual_tokens: number; has_head: boolean; tensor_sha256: string; tensor_bytes: number; source: string; source_dtype: string | null; created_at: string }
interface PromptView { task: string; name: string; latest_version: number; versions: VersionView[]; created_at: string }

function readOrFail(path: string): Uint8Array<ArrayBuffer> {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    throw new RuntimeError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (a PEFT directory has ${CONFIG} and ${MODEL})`);
  }
}

const versionPath = (task: string, name: string, version: number | undefined) =>
  `/v1/tasks/${seg(task)}/prompts/${seg(name)}/versions/${version ?? 'latest'}`;

const kb = (n: number) => (n < 10240 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`);

export function registerPrompts(program: Command): void {
  const prompts = program.command('prompts').description('learned prompts: PEFT push/pull, versions, inspection (tenant key)');
  const taskOpt = ['-t, --task <task>', 'the task (or SOFTSERVE_TASK)'] as const;

  prompts.command('push').description('upload a PEFT save_pretrained directory as a new version')
    .argument('<dir>', `directory with ${CONFIG} and ${MODEL}`)
    .option(...taskOpt)
    .option('-n, --name <name>', "prompt name (default: the directory's name)")
    .action(async (dir: string, opts: { task?: string; name?: string }, cmd: Command) => {
      const task = taskOf(opts);
      const name = opts.name ?? basename(resolve(dir));
      const form = new FormData();
      form.append('name', name);
      form.append('adapter_config', new Blob([readOrFail(join(dir, CONFIG))], { type: 'application/json' }), CONFIG);
      form.append('adapter_model', new Blob([readOrFail(join(dir, MODEL))], { type: 'application/octet-stream' }), MODEL);
      const v = await tenantClient(cmd).json<VersionView>('POST', `/v1/tasks/${seg(task)}/prompts`, { body: form });
      if (wantsJson(cmd)) return printJson(v);
      out(`pushed ${v.name} v${v.version} to ${v.task}: ${v.kind}, ${v.num_virtual_tokens} virtual tokens${v.has_head ? ', head' : ''} (${v.source_dtype ?? 'F32'})`);
    });

  prompts.command('pull').description('download a version as the two files PEFT loads')
    .argument('<name[@version]>', 'prompt name, optionally @version (default: the latest)')
    .argument('<dir>', 'directory to write (made if missing)')
    .option(...taskOpt)
    .action(async (ref: string, dir: string, opts: { task?: string }, cmd: Command) => {
      const task = taskOf(opts);
      const { name, version } = promptRef(ref);
      const client = tenantClient(cmd);
      // Both files from one version: pin "latest" to a number first.
      const info = await client.json<VersionView>('GET', versionPath(task, name, version));
      const pinned = `${versionPath(task, name, info.version)}/export`;
      const config = await client.bytes('GET', pinned, { query: { file: CONFIG } });
      const model = await client.bytes('GET', pinned, { query: { file: MODEL } });
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, CONFIG), config);
      writeFileSync(join(dir, MODEL), model);
      if (wantsJson(cmd)) return printJson({ ...info, dir, files: [CONFIG, MODEL] });
      out(`pulled ${name} v${info.version} into ${dir} (${CONFIG}, ${MODEL}: ${kb(model.byteLength)})`);
    });

  prompts.command('ls').description("a task's prompts")
    .option(...taskOpt)
    .action(async (opts: { task?: string }, cmd: Command) => {
      const r = await tenantClient(cmd).json<{ prompts: PromptView[] }>('GET', `/v1/tasks/${seg(taskOf(opts))}/prompts`);
      if (wantsJson(cmd)) return printJson(r);
      printTable(['NAME', 'LATEST', 'VERSIONS', 'KIND', 'TOKENS', 'SOURCE'], r.prompts.map((p) => {
        const v = p.versions.find((x) => x.version === p.latest_version) ?? p.versions[p.versions.length - 1]!;
        return [p.name, `v${p.latest_version}`, p.versions.length, v.kind, v.num_virtual_tokens, v.source];
      }));
    });

  prompts.command('show').description('a prompt and its versions')
    .argument('<name>', 'prompt name')
    .option(...taskOpt)
    .action(async (name: string, opts: { task?: string }, cmd: Command) => {
      const p = await tenantClient(cmd).json<PromptView>('GET', `/v1/tasks/${seg(taskOf(opts))}/prompts/${seg(name)}`);
      if (wantsJson(cmd)) return printJson(p);
      out(`${p.task}/${p.name}: latest v${p.latest_version}`);
      printTable(['VERSION', 'KIND', 'TOKENS', 'HEAD', 'SIZE', 'SOURCE', 'DTYPE', 'SHA256', 'CREATED'], p.versions.map((v) => [
        `v${v.version}`, v.kind, v.num_virtual_tokens, v.has_head ? 'yes' : 'no', kb(v.tensor_bytes), v.source, v.source_dtype, v.tensor_sha256.slice(0, 12), v.created_at,
      ]));
    });

  prompts.command('rm').description('delete a prompt (all versions), or one version with NAME@VERSION')
    .argument('<name[@version]>', 'prompt name, optionally @version')
    .option(...taskOpt)
    .action(async (ref: string, opts: { task?: string }, cmd: Command) => {
      const task = taskOf(opts);
      const { name, version } = promptRef(ref);
      const path = version === undefined ? `/v1/tasks/${seg(task)}/prompts/${seg(name)}` : versionPath(task, name, version);
      await tenantClient(cmd).json('DELETE', path);
      const what = version === undefined ? name : `${name} v${version}`;
      if (wantsJson(cmd)) return printJson({ deleted: what });
      out(`deleted ${what}`);
    });

  prompts.command('inspect').description('what a prompt looks like to the model: nearest vocabulary tokens (soft, P-tuning) or per-layer norms (prefix)')
    .argument('<name[@version]>', 'prompt name, optionally @version (default: the latest)')
    .option(...taskOpt)
    .option('-k, --k <n>', 'nearest tokens per virtual token (server default 5)', positiveInt('-k'))
    .action(async (ref: string, opts: { task?: string; k?: number }, cmd: Command) => {
      const { name, version } = promptRef(ref);
      const r = await tenantClient(cmd).json<InspectView>('GET', `/v1/tasks/${seg(taskOf(opts))}/prompts/${seg(name)}/inspect`, { query: { version, k: opts.k } });
      if (wantsJson(cmd)) return printJson(r);
      out(`${r.task}/${r.prompt} v${r.version}: ${r.kind}, ${r.num_virtual_tokens} virtual tokens`);
      if (r.tokens) {
        printTable(['TOKEN', 'NORM', 'NEAREST (cosine similarity)'], r.tokens.map((t) => [
          `#${t.index}`, t.norm.toFixed(3), t.nearest.map((n) => `${JSON.stringify(n.token)} ${n.similarity.toFixed(2)}`).join('  '),
        ]));
      }
      if (r.layers) {
        printTable(['LAYER', 'KEY NORM', 'VALUE NORM'], r.layers.map((l) => [l.layer, l.key_norm.toFixed(3), l.value_norm.toFixed(3)]));
      }
    });
}

interface InspectView {
  task: string; prompt: string; version: number; kind: string; num_virtual_tokens: number;
  tokens?: Array<{ index: number; norm: number; nearest: Array<{ id: number; token: string; similarity: number }> }>;
  layers?: Array<{ layer: number; key_norm: number; value_norm: number }>;
}
