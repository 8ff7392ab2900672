// Worker threads do not inherit tsx's loader hooks on Node 20: register tsx,
// then load eval.ts, which runs its worker side when started this way.
import { register } from 'tsx/esm/api';

register();
await import('./eval.ts');
