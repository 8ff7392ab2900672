// Routes that take only JSON answer any other body with 415, as docs/API.md
// says, instead of letting the JSON parser skip it and the route complain
// that the (absent) body is not an object. A request without a body passes:
// the route decides whether it needs one.

import type { NextFunction, Request, Response } from 'express';

import { SoftserveError } from '../kernels/errors.ts';

function hasBody(req: Request): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const len = req.headers['content-length'];
  return len !== undefined && len !== '0';
}

export function requireJson(req: Request, _res: Response, next: NextFunction): void {
  if (!hasBody(req) || req.is('application/json')) return next();
  const type = req.headers['content-type'];
  next(new SoftserveError('UNSUPPORTED_MEDIA_TYPE', `this route takes application/json, not ${JSON.stringify(type ?? 'no content type')}`));
}
