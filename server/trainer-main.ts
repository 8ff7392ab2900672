// npm run trainer: a trainer process (server/trainer.ts) against
// SOFTSERVE_DATABASE_URL with the model in SOFTSERVE_MODEL_DIR. SIGTERM or
// SIGINT puts the running job back in the queue (attempt not counted) and
// exits; a trainer killed outright loses its lease and another trainer
// retrains the job.

import { loadSettings } from './config.ts';
import { startTrainer, type RunningTrainer } from './trainer.ts';

let trainer: RunningTrainer;
try {
  trainer = await startTrainer(loadSettings());
} catch (err) {
  const e = err as { code?: string; message?: string };
  process.stderr.write(`softserve trainer: could not start: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
  process.exit(1);
}
const running = trainer;
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    running.logger.info({ signal }, 'shutting down');
    void running.stop().then(() => process.exit(0), (err) => {
      running.logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  });
}
