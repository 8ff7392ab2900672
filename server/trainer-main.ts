// npm run trainer: a trainer process (server/trainer.ts) against
// SOFTSERVE_DATABASE_URL with the model in SOFTSERVE_MODEL_DIR. SIGTERM or
// SIGINT puts the running job back in the queue (attempt not counted) and
// exits; a trainer killed outright loses its lease and another trainer
// retrains the job.

import { loadSettings } from './config.ts';
import { startOrExit, stopOnSignals } from './process-lifecycle.ts';
import { startTrainer } from './trainer.ts';

const trainer = await startOrExit('softserve trainer', () => startTrainer(loadSettings()));
stopOnSignals(trainer.logger, () => trainer.stop());
