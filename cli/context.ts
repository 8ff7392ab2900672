// What every command needs from the command line and the environment: the
// server URL, the right key (tenant or admin), --json, and output helpers.

import type { Command } from 'commander';

import { Client, UsageError } from './client.ts';

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface GlobalOptions {
  url?: string;
  key?: string;
  json?: boolean;
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

export function serverUrl(cmd: Command): string {
  return globals(cmd).url ?? process.env.SOFTSERVE_URL ?? DEFAULT_URL;
}

/** A client with a tenant key: --key or SOFTSERVE_API_KEY. */
export function tenantClient(cmd: Command): Client {
  const key = globals(cmd).key ?? process.env.SOFTSERVE_API_KEY;
  if (!key) throw new UsageError('this command needs a tenant API key: pass --key or set SOFTSERVE_API_KEY (make one with: softserve tenants create NAME)');
  return new Client({ url: serverUrl(cmd), key });
}

/** A client with the admin key: --key or SOFTSERVE_ADMIN_KEY. */
export function adminClient(cmd: Command): Client {
  const key = globals(cmd).key ?? process.env.SOFTSERVE_ADMIN_KEY;
  if (!key) throw new UsageError('this command needs the admin key: pass --key or set SOFTSERVE_ADMIN_KEY (the server prints it on its first start)');
  return new Client({ url: serverUrl(cmd), key });
}

/** A client without a key (/info, /healthz). */
export function openClient(cmd: Command): Client {
  return new Client({ url: serverUrl(cmd) });
}

export function wantsJson(cmd: Command): boolean {
  return globals(cmd).json === true;
}

export function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2));
}

/** A plain aligned table; `none` is printed when there are no rows. */
export function printTable(columns: string[], rows: Array<Array<string | number | null | undefined>>, none = '(none)'): void {
  if (rows.length === 0) {
    out(none);
    return;
  }
  const cells = [columns, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  for (const r of cells) out(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

/** Parses a positive integer option, or throws a usage error naming it. */
export function positiveInt(name: string) {
  return (raw: string): number => {
    const v = Number(raw);
    if (!Number.isSafeInteger(v) || v < 1) throw new UsageError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
    return v;
  };
}

/** Parses a number option. */
export function number(name: string) {
  return (raw: string): number => {
    const v = Number(raw);
    if (!Number.isFinite(v)) throw new UsageError(`${name} must be a number, got ${JSON.stringify(raw)}`);
    return v;
  };
}

/** The task name: --task, or SOFTSERVE_TASK. */
export function taskOf(opts: { task?: string }): string {
  const t = opts.task ?? process.env.SOFTSERVE_TASK;
  if (!t) throw new UsageError('which task? pass --task NAME (or set SOFTSERVE_TASK)');
  return t;
}

/** NAME or NAME@VERSION (a prompt and optionally one of its versions). */
export function promptRef(raw: string): { name: string; version?: number } {
  const m = /^([^@]+)(?:@([1-9][0-9]{0,9}))?$/.exec(raw);
  if (!m) throw new UsageError(`a prompt is NAME or NAME@VERSION (e.g. mood@2), got ${JSON.stringify(raw)}`);
  return m[2] === undefined ? { name: m[1]! } : { name: m[1]!, version: Number(m[2]) };
}
