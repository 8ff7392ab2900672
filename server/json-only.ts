// Routes that take only JSON answer any other body with 415, as docs/API.md
// says, instead of letting the JSON parser skip it and the route complain
// that the (absent) body is not an object. A request without a body passes:
// the route decides whether it needs one.

import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import typeis from 'type-is';

import { SoftserveError } from '../kernels/errors.ts';

function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const len = req.headers['content-length'];
  return len !== undefined && len !== '0';
}

/** The 415 for a body that is not JSON (type-is matches as express's `req.is` does); null when it may pass. */
export function jsonOnlyRefusal(req: IncomingMessage): SoftserveError | null {
  if (!hasBody(req) || typeis(req, ['application/json'])) return null;
  const type = req.headers['content-type'];
  return new SoftserveError('UNSUPPORTED_MEDIA_TYPE', `this route takes application/json, not ${JSON.stringify(type ?? 'no content type')}`);
}

export function requireJson(req: Request, _res: Response, next: NextFunction): void {
  const refusal = jsonOnlyRefusal(req);
  if (refusal) next(refusal);
  else next();
}
