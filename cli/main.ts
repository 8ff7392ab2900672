// The `softserve` command line: one program, a file per command group under
// cli/commands/. Exit codes: 0 ok, 1 server or runtime error (the server's
// error code and message are printed), 2 usage error.

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';

import { ApiError, RuntimeError, UsageError } from './client.ts';
import { DEFAULT_URL, note } from './context.ts';
import { registerAdmin } from './commands/admin.ts';
import { registerClassify } from './commands/classify.ts';
import { registerEnsembles } from './commands/ensembles.ts';
import { registerJobs } from './commands/jobs.ts';
import { registerKeys } from './commands/keys.ts';
import { registerPrompts } from './commands/prompts.ts';
import { registerServe } from './commands/serve.ts';
import { registerTasks } from './commands/tasks.ts';
import { registerTenants } from './commands/tenants.ts';
import { registerTrain } from './commands/train.ts';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('softserve')
    .description('softserve: serve and train prompt-tuned text classifiers')
    .version(pkg.version)
    .option('--url <url>', `server URL (SOFTSERVE_URL, default ${DEFAULT_URL})`)
    .option('--key <key>', 'API key: a tenant key (SOFTSERVE_API_KEY), or for tenants/keys the admin key (SOFTSERVE_ADMIN_KEY)')
    .option('--json', 'machine-readable JSON output')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .exitOverride();
  registerServe(program);
  registerTenants(program);
  registerKeys(program);
  registerTasks(program);
  registerPrompts(program);
  registerEnsembles(program);
  registerTrain(program);
  registerClassify(program);
  registerJobs(program);
  registerAdmin(program);
  program.addHelpText('after', `
Environment: SOFTSERVE_URL, SOFTSERVE_API_KEY (tenant commands), SOFTSERVE_ADMIN_KEY (tenants, keys), SOFTSERVE_TASK.
Exit codes: 0 ok, 1 server or runtime error, 2 usage error. docs/CLI.md has the details.`);
  return program;
}

/** Turns what a command threw into a message on stderr and an exit code. */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE; // commander printed its message
  if (err instanceof UsageError) {
    note(`softserve: ${err.message}`);
    return EXIT_USAGE;
  }
  if (err instanceof ApiError) {
    note(`softserve: error ${err.code} (HTTP ${err.status}): ${err.message}`);
    const errors = err.details?.errors;
    if (Array.isArray(errors)) {
      for (const e of errors.slice(0, 20)) note(`  ${e.line !== undefined ? `line ${e.line}` : `#${e.index}`}: ${e.message}`);
      if (errors.length > 20) note(`  … and ${errors.length - 20} more`);
    }
    return EXIT_ERROR;
  }
  if (err instanceof RuntimeError) {
    note(`softserve: ${err.message}`);
    return EXIT_ERROR;
  }
  note(`softserve: ${(err as Error)?.stack ?? String(err)}`);
  return EXIT_ERROR;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (err) {
    return exitCodeFor(err);
  }
}

// exit() rather than waiting for the event loop: fetch's kept-alive sockets would hold it open.
process.exit(await main(process.argv.slice(2)));
