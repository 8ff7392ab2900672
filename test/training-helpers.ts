// Shared by the training isolation tests (training-budget, training-fairness):
// a real HTTP listener with a real store and a real training worker
// (stories260k), tiny jobs, and waits on the job's own state.

import assert from 'node:assert/strict';
import { rmSync, mkdtempSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

import { loadCheckpoint } from '../models/checkpoint.ts';
import { familyOf } from '../models/families.ts';
import { PromptStore } from '../prompts/store.ts';
import { apiRoutes, createApp } from '../server/app.ts';
import { healthRoutes } from '../server/routes/system.ts';
import { DEFAULT_CONFIG, DEFAULT_TRAINING_CONFIG, promptLimits, type ServerConfig, type TrainingConfig } from '../server/config.ts';
import { jobsRoutes } from '../server/routes/jobs.ts';
import { TrainingManager } from '../server/training/manager.ts';
import { api } from './store-helpers.ts';

const STORIES = fileURLToPath(new URL('../../shared/models/stories260k', import.meta.url));
const ADMIN = 'iso-training-admin-key-0123456789';
const ckpt = loadCheckpoint(STORIES);
export const SPEC = familyOf(ckpt).spec(ckpt);

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

export interface Env { url: string; store: PromptStore; manager: TrainingManager; close(): Promise<void> }

export async function startEnv(training: Partial<TrainingConfig> = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'softserve-iso-'));
  dirs.push(dir);
  const config: ServerConfig = { ...DEFAULT_CONFIG, adminKey: ADMIN, dataDir: dir, port: 0 };
  const store = PromptStore.open({ dataDir: dir, spec: SPEC, limits: promptLimits(config) });
  const manager = new TrainingManager({ store, modelDir: STORIES, spec: SPEC, config: { ...DEFAULT_TRAINING_CONFIG, niceness: 0, progressIntervalMs: 50, ...training } });
  await manager.start();
  const app = createApp({ store, spec: SPEC, config, routes: [healthRoutes(), ...apiRoutes(undefined, [jobsRoutes(manager)])] });
  const server: Server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, store, manager,
    async close() {
      await manager.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await store.close();
    },
  };
}

export const SENTIMENT = { name: 'sentiment', labels: ['negative', 'positive'], template: '{text} It was', scoring: { type: 'verbalizer', label_words: [' sad', ' happy'] } };
const POS = ['the dog was happy and played all day', 'she smiled at the sun', 'they had a lovely time at the park', 'the cake was sweet and good'];
const NEG = ['the dog was sad and alone', 'she cried in the rain', 'they lost their toy and were upset', 'the food was cold and bad'];
export function examples(n: number): Array<{ text: string; label: string }> {
  return Array.from({ length: n }, (_, i) => (i % 2 === 0 ? { text: POS[(i / 2) % POS.length]!, label: 'positive' } : { text: NEG[((i - 1) / 2) % NEG.length]!, label: 'negative' }));
}
/** Texts of about `bytes` bytes (so the budget's text bound is that long). */
export function longExamples(n: number, bytes: number): Array<{ text: string; label: string }> {
  return examples(n).map((e) => ({ ...e, text: `${e.text} `.repeat(Math.ceil(bytes / (e.text.length + 1))).slice(0, bytes).trim() }));
}

export const QUICK = { method: 'prompt_tuning', num_virtual_tokens: 4, epochs: 1, batch_size: 8 };
export const LONG = { ...QUICK, epochs: 100 };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Job = any;

export async function job(url: string, key: string, id: string): Promise<Job> {
  const r = await api(url, 'GET', `/v1/jobs/${id}`, { key });
  assert.equal(r.status, 200);
  return r.json;
}

/** Polls the job's own state until `pred` holds (the bound only turns a hang into a failure). */
export async function waitFor(url: string, key: string, id: string, pred: (j: Job) => boolean, what: string): Promise<Job> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const j = await job(url, key, id);
    if (pred(j)) return j;
    if (Date.now() > deadline) assert.fail(`job ${id} never reached "${what}": state ${j.state}, error ${JSON.stringify(j.error)}, events ${JSON.stringify(j.events)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
export const isFinal = (j: Job) => ['succeeded', 'failed', 'cancelled'].includes(j.state);
export const runningAt = (step: number) => (j: Job) => j.state === 'running' && (j.progress?.step ?? 0) >= step;

export async function submit(url: string, key: string, body: Record<string, unknown>) {
  return api(url, 'POST', '/v1/tasks/sentiment/jobs', { key, json: body });
}

