// Worker threads do not inherit tsx's loader hooks on Node 20: register tsx,
// then load the TypeScript worker (as server/inference/worker-entry.mjs does).
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
