// Worker threads do not inherit tsx's loader hooks on Node 20, so the worker
// starts from this plain module, registers tsx, then loads the TypeScript.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
