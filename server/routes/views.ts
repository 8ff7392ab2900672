// JSON shapes of the API (snake_case), from the store's objects.

import type { ApiKeyInfo, EnsembleInfo, PromptInfo, PromptVersionInfo, Task, Tenant } from '../../prompts/store.ts';

export function tenantView(t: Tenant) {
  return { id: t.id, name: t.name, created_at: t.createdAt };
}

export function keyView(k: ApiKeyInfo) {
  return { id: k.id, prefix: k.prefix, created_at: k.createdAt, revoked_at: k.revokedAt };
}

export function taskView(t: Task) {
  return {
    name: t.name,
    labels: t.labels,
    template: t.template,
    scoring: t.scoring.type === 'head'
      ? { type: 'head', pooling: t.scoring.pooling }
      : { type: 'verbalizer', label_words: t.scoring.labelWords },
    created_at: t.createdAt,
  };
}

export function versionView(v: PromptVersionInfo) {
  return {
    task: v.task,
    name: v.name,
    version: v.version,
    kind: v.kind,
    num_virtual_tokens: v.numVirtualTokens,
    has_head: v.hasHead,
    tensor_sha256: v.tensorHash,
    tensor_bytes: v.tensorBytes,
    source: v.source,
    source_dtype: v.sourceDtype,
    provenance: v.provenance,
    created_at: v.createdAt,
  };
}

export function promptView(p: PromptInfo) {
  return {
    task: p.task,
    name: p.name,
    latest_version: p.latestVersion,
    versions: p.versions.map(versionView),
    created_at: p.createdAt,
  };
}

export function ensembleView(e: EnsembleInfo) {
  return {
    task: e.task,
    name: e.name,
    members: e.members.map((m) => ({ prompt: m.prompt, version: m.version ?? null })),
    vote: e.vote ?? 'majority',
    created_at: e.createdAt,
  };
}
