// One log line and one metric sample per request, whatever answers it: the
// route label comes from the route that matched (server/route-module.ts), so
// it stays bounded without a hand-kept list of paths.

import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';

import type { Metrics } from './metrics.ts';
import { requestLog } from './request-id.ts';
import { routeLabelOf } from './route-module.ts';
import type { UsageCounter } from './usage.ts';

export function observeRequests(deps: { metrics: Metrics; usage: UsageCounter; logger: Logger }): RequestHandler {
  const { metrics, usage, logger } = deps;
  return (req: Request, res: Response, next: NextFunction) => {
    const started = performance.now();
    const path = req.originalUrl.split('?')[0]!;
    res.on('finish', () => {
      const seconds = (performance.now() - started) / 1000;
      const labels = { route: routeLabelOf(res), method: req.method, status: String(res.statusCode) };
      metrics.httpRequests.inc(labels);
      metrics.httpDuration.observe(labels, seconds);
      usage.recordResponse(res);
      const line: Record<string, unknown> = { method: req.method, path, status: res.statusCode, ms: round(seconds * 1000) };
      if (res.locals.tenant) line.tenant = (res.locals.tenant as { id: string }).id;
      if (res.locals.classify) Object.assign(line, res.locals.classify);
      if (res.locals.errorCode) line.code = res.locals.errorCode;
      requestLog(res, logger)!.info(line, 'request');
    });
    next();
  };
}

const round = (x: number) => Math.round(x * 1000) / 1000;
