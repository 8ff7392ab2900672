// The web console at /console: static ES modules (server/console/), no build
// step, plus the chart library served from node_modules. Every answer carries
// a Content-Security-Policy that allows only this origin's scripts, styles and
// API calls (no inline script, no eval, no framing), so an injected string in
// a task or prompt name cannot run. The console talks to the public API with
// the key the user typed; the server gives it no special access.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type NextFunction, type Request, type Response } from 'express';

import { SoftserveError } from '../kernels/errors.ts';

const STATIC_DIR = fileURLToPath(new URL('./console/', import.meta.url));
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot/dist/uPlot.esm.js'));

export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

export function consoleRouter(): express.Router {
  const r = express.Router();
  r.use((_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Content-Security-Policy', CONSOLE_CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    next();
  });
  const files = { index: 'index.html', etag: false, lastModified: false, fallthrough: true, redirect: true, setHeaders: (res: Response) => { res.setHeader('Cache-Control', 'no-cache'); } };
  // Only the two files the console uses, not the package directory.
  r.get('/vendor/uPlot.esm.js', (_req, res) => { res.sendFile(join(UPLOT_DIR, 'uPlot.esm.js'), { headers: { 'Cache-Control': 'no-cache' } }); });
  r.get('/vendor/uPlot.min.css', (_req, res) => { res.sendFile(join(UPLOT_DIR, 'uPlot.min.css'), { headers: { 'Cache-Control': 'no-cache' } }); });
  r.use(express.static(STATIC_DIR, files));
  r.use((_req: Request, _res: Response, next: NextFunction) => {
    next(new SoftserveError('NOT_FOUND', 'no such console file'));
  });
  return r;
}
