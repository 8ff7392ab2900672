// One log line and one metric sample per request, whatever answers it: the
// route label comes from the route that matched (server/route-module.ts, or
// the fast route's own label), so it stays bounded without a hand-kept list
// of paths. Requests answered by express and by the fast path
// (server/fast-path.ts) are recorded by the same `RequestRecorder`.

import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';

import type { Metrics } from './metrics.ts';
import { routeLabelOf } from './route-module.ts';
import { pathOf } from './url-path.ts';
import type { UsageCounter } from './usage.ts';

/** What the classify route reports about a request it answered (log line fields; usage counts rows and tokens). */
export interface ClassifyFields {
  rows: number;
  tokens: number;
  batches: number[];
  queueMs: number;
  inferenceMs: number;
  tokenizeMs: number;
}

/** A finished request, as the log line, the metrics and the usage counter see it. */
export interface FinishedRequest {
  requestId?: string;
  method: string;
  /** The URL path, without the query. */
  path: string;
  status: number;
  seconds: number;
  /** The metric label of the route that matched ('other' when none did). */
  route: string;
  /** Set once the request's tenant key was accepted. */
  tenantId?: string;
  /** Set by the classify route on success. */
  classify?: ClassifyFields;
  /** The error code of a refused request. */
  errorCode?: string;
}

export type RequestRecorder = (r: FinishedRequest) => void;

export function requestRecorder(deps: { metrics: Metrics; usage: UsageCounter; logger: Logger }): RequestRecorder {
  const { metrics, usage, logger } = deps;
  return (r) => {
    const labels = { route: r.route, method: r.method, status: String(r.status) };
    metrics.httpRequests.inc(labels);
    metrics.httpDuration.observe(labels, r.seconds);
    if (r.tenantId !== undefined) usage.record(r.tenantId, r.status, r.classify);
    // One object of one shape per line: pino leaves out the fields that are undefined.
    const c = r.classify;
    logger.info({
      request_id: r.requestId, method: r.method, path: r.path, status: r.status, ms: round(r.seconds * 1000), tenant: r.tenantId,
      rows: c?.rows, tokens: c?.tokens, batches: c?.batches, queueMs: c?.queueMs, inferenceMs: c?.inferenceMs, tokenizeMs: c?.tokenizeMs,
      code: r.errorCode,
    }, 'request');
  };
}

/** Express middleware: records every request the app answers when its response finishes. */
export function observeRequests(record: RequestRecorder): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const started = performance.now();
    const path = pathOf(req.originalUrl);
    res.on('finish', () => {
      const tenant = res.locals.tenant as { id: string } | undefined;
      record({
        requestId: typeof res.locals.requestId === 'string' ? res.locals.requestId : undefined,
        method: req.method, path, status: res.statusCode, seconds: (performance.now() - started) / 1000, route: routeLabelOf(res),
        tenantId: tenant?.id,
        errorCode: typeof res.locals.errorCode === 'string' ? res.locals.errorCode : undefined,
      });
    });
    next();
  };
}

const round = (x: number) => Math.round(x * 1000) / 1000;
