// Every response carries an X-Request-Id, and every log line about the
// request carries the same id, so a client quoting it (error bodies include
// it) leads to the server's detail. A well-formed incoming id (a proxy's or
// the client's own) is kept; anything else is replaced by a fresh UUID, so a
// client cannot put arbitrary bytes into the logs.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';

/** 1-128 characters of letters, digits and `.` `_` `:` `-`. */
const WELL_FORMED = /^[A-Za-z0-9._:-]{1,128}$/;

export function incomingRequestId(raw: string | string[] | undefined): string | null {
  return typeof raw === 'string' && WELL_FORMED.test(raw) ? raw : null;
}

/** The id of a request: its own well-formed X-Request-Id, else a fresh UUID. */
export function requestIdOf(req: IncomingMessage): string {
  return incomingRequestId(req.headers['x-request-id']) ?? randomUUID();
}

/** Express middleware: sets `res.locals.requestId` and the X-Request-Id header (an id already set is kept). */
export function requestIds() {
  return (req: Request, res: Response, next: NextFunction): void => {
    if (typeof res.locals.requestId !== 'string') {
      const id = requestIdOf(req);
      res.locals.requestId = id;
      res.setHeader('X-Request-Id', id);
    }
    next();
  };
}

/** `logger` bound to a request's id: every line about the request carries it. */
export function requestLogger(logger: Logger, requestId: string): Logger {
  return logger.child({ request_id: requestId });
}
