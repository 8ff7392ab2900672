// softserve serve: the server itself (what `npm start` runs), with a few
// settings as flags; every other setting is an environment variable (README).

import type { Command } from 'commander';

interface ServeOptions { host?: string; port?: string; dataDir?: string; modelDir?: string }

export function registerServe(program: Command): void {
  program.command('serve').description('run the server (as npm start); settings from flags or SOFTSERVE_* variables')
    .option('--host <host>', 'listen address (SOFTSERVE_HOST, default 127.0.0.1)')
    .option('--port <port>', 'listen port, 0 for any free one (SOFTSERVE_PORT, default 8080)')
    .option('--data-dir <dir>', 'database and prompt files (SOFTSERVE_DATA_DIR, default ./data)')
    .option('--model-dir <dir>', 'Hugging Face checkpoint directory (SOFTSERVE_MODEL_DIR, default ../shared/models/stories260k)')
    .addHelpText('after', '\nOn its first start with no SOFTSERVE_ADMIN_KEY the server makes an admin key and prints it once on stderr.')
    .action(async (opts: ServeOptions) => {
      if (opts.host !== undefined) process.env.SOFTSERVE_HOST = opts.host;
      if (opts.port !== undefined) process.env.SOFTSERVE_PORT = opts.port;
      if (opts.dataDir !== undefined) process.env.SOFTSERVE_DATA_DIR = opts.dataDir;
      if (opts.modelDir !== undefined) process.env.SOFTSERVE_MODEL_DIR = opts.modelDir;
      // The server's own entry point: it reads the environment, serves, and drains on SIGTERM/SIGINT.
      await import('../../server/main.ts');
      await new Promise<never>(() => { /* runs until a signal ends the process */ });
    });
}
