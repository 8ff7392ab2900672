#!/usr/bin/env node
// `softserve` (package.json "bin"): runs cli/main.ts through tsx, the same
// TypeScript loader `npm start` uses, so nothing needs building first.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
