// Errors over HTTP: the status and headers each error code gets, and the one
// function that writes every error answer, `{error: {code, message,
// request_id, details?}}` (`writeError`: the express app's error handler and
// the fast path both call it). Routes, middleware and lower layers only throw
// (or `next(err)`) a SoftserveError; nothing else in the server writes an
// error body. (fastify's lib/error-handler.js and TEI's
// router work the same way: core errors carry no status, one place maps them.)

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorRequestHandler, NextFunction, Request, Response } from 'express';
import type { Logger } from 'pino';

import { isSoftserveError, SoftserveError, type ErrorCode } from '../kernels/errors.ts';
import { redactPaths } from './redact.ts';
import { requestLogger } from './request-id.ts';
import { pathOf } from './url-path.ts';

/** The HTTP status of every error code (docs/API.md lists them for clients). */
export const ERROR_STATUS: Record<ErrorCode, number> = {
  // 400: the request itself is malformed
  BAD_REQUEST: 400, INVALID_JSON: 400, INVALID_NAME: 400, INVALID_SAFETENSORS: 400, INVALID_ADAPTER_CONFIG: 400,
  INVALID_JSONL: 400, INVALID_MULTIPART: 400, JSON_TOO_DEEP: 400, INVALID_VOTE_MODE: 400, INVALID_MIN_AGREEMENT: 400,
  // 401/403: authentication
  UNAUTHORIZED: 401, FORBIDDEN: 403,
  // 404: unknown, or not yours (indistinguishable on purpose)
  NOT_FOUND: 404,
  // 409: conflicts with existing state
  CONFLICT: 409,
  // 413: over a configured limit; 415: a body in a format the route does not take
  PAYLOAD_TOO_LARGE: 413, UNSUPPORTED_MEDIA_TYPE: 415,
  // 422: well-formed but invalid against the loaded model or task
  UNSUPPORTED_PEFT_TYPE: 422, PROMPT_SHAPE_MISMATCH: 422, PROMPT_DTYPE_UNSUPPORTED: 422, PROMPT_NOT_FINITE: 422,
  PROMPT_TOO_LONG: 422, INVALID_TASK: 422, INVALID_TEMPLATE: 422, AMBIGUOUS_LABEL_WORDS: 422, PROMPT_TEMPLATE_MISMATCH: 422,
  DUPLICATE_ENSEMBLE_MEMBER: 422, INVALID_INPUT: 422, INVALID_EXAMPLES: 422, TRAINING_MEMORY_BUDGET: 422, VOTE_WEIGHT_UNKNOWN: 422,
  // 429: refused for load (always with Retry-After)
  OVERLOADED: 429, TRAINING_QUEUE_LIMIT: 429, TRAINING_TIME_QUOTA: 429, TENANT_LIMIT: 429, FAIR_SHARE_EXCEEDED: 429,
  // 503/504: lifecycle
  NOT_READY: 503, DRAINING: 503, INFERENCE_WORKER_RESTARTING: 503, STORE_UNAVAILABLE: 503, DEADLINE_EXCEEDED: 504,
  // 500: the server's own files or runtime; never the client's fault
  MODEL_FILE_MISSING: 500, MODEL_FILE_INVALID: 500, MODEL_CONFIG_INVALID: 500, MODEL_ARCHITECTURE_UNSUPPORTED: 500,
  MODEL_TENSOR_MISSING: 500, MODEL_TENSOR_SHAPE: 500, EXECUTION_PROVIDER_UNAVAILABLE: 500, ENGINE_INPUT_INVALID: 500,
  PROMPT_FILE_CORRUPT: 500, INTERNAL: 500,
};

export function httpStatus(err: SoftserveError | ErrorCode): number {
  return ERROR_STATUS[typeof err === 'string' ? err : err.code];
}

/** Refusals a client should retry later: every 429, and a restarting inference worker. */
export function isRetryable(err: SoftserveError): boolean {
  return httpStatus(err) === 429 || err.code === 'INFERENCE_WORKER_RESTARTING';
}

/**
 * Seconds a refused client should wait (the Retry-After value): what the error
 * says (details.retryAfter), else `estimate` (the scheduler's time to work off
 * its queue). Whole seconds, at least one.
 */
export function retryAfterSeconds(err: SoftserveError, estimate: () => number): number {
  const said = err.details?.retryAfter;
  const s = typeof said === 'number' && Number.isFinite(said) ? said : estimate();
  return Math.max(1, Math.ceil(s));
}

const BODY_PARSER_CODES: Record<string, ErrorCode> = {
  'entity.too.large': 'PAYLOAD_TOO_LARGE',
  'entity.parse.failed': 'INVALID_JSON',
  'charset.unsupported': 'UNSUPPORTED_MEDIA_TYPE',
  'encoding.unsupported': 'UNSUPPORTED_MEDIA_TYPE',
  'entity.verify.failed': 'BAD_REQUEST',
  'request.aborted': 'BAD_REQUEST',
  'request.size.invalid': 'BAD_REQUEST',
};

const BY_STATUS: Record<number, ErrorCode> = { 403: 'FORBIDDEN', 404: 'NOT_FOUND', 413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE' };

/**
 * Errors from libraries that carry a 4xx `status` (body-parser's carry a
 * `type`; static file serving's do not): ours, with the same meaning. The text
 * of a non-body-parser error (it may name a file on this machine) is not shown.
 */
export function fromHttpError(err: { type?: unknown; status?: unknown; message?: unknown }): SoftserveError | null {
  const status = typeof err.status === 'number' ? err.status : undefined;
  if (status === undefined || status < 400 || status >= 500) return null;
  const parserCode = typeof err.type === 'string' ? BODY_PARSER_CODES[err.type] : undefined;
  if (parserCode === undefined && typeof err.type === 'string') return new SoftserveError(status === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_REQUEST', String(err.message ?? 'bad request'));
  if (parserCode === undefined) return new SoftserveError(BY_STATUS[status] ?? 'BAD_REQUEST', 'bad request');
  const message = parserCode === 'INVALID_JSON' ? `body is not valid JSON: ${String(err.message)}` : String(err.message ?? 'bad request');
  return new SoftserveError(parserCode, message);
}

export interface ErrorAnswerOptions {
  /** The request's id (named in the body). */
  requestId?: string;
  /** Where a server failure is logged (bound to the request id only then: few requests fail). */
  logger?: Logger;
  /** Retry-After for a refusal that does not say (default 1 s): the scheduler's estimate. */
  retryAfterEstimate?: () => number;
}

/**
 * Writes the answer to `err` on a plain Node response: the express app's
 * error handler and the fast path (server/fast-path.ts) both answer errors
 * here. Returns the code it answered with.
 */
export function writeError(err: unknown, req: IncomingMessage, res: ServerResponse, opts: ErrorAnswerOptions = {}): string {
  const e = isSoftserveError(err) ? err : fromHttpError((err ?? {}) as Record<string, unknown>) ?? new SoftserveError('INTERNAL', 'internal error');
  const status = httpStatus(e);
  const requestId = opts.requestId;
  // Failures are logged with their cause. A 503 is a lifecycle answer (not ready, draining, the
  // inference worker restarting): the event itself is logged once, not once per refused request.
  if (status >= 500 && status !== 503 && opts.logger) (requestId ? requestLogger(opts.logger, requestId) : opts.logger).error({ err, method: req.method, path: pathOf(req.url ?? '/'), code: e.code }, 'request failed');
  if (res.headersSent) {
    res.destroy();
    return e.code;
  }
  // An upload cut off mid-body: answer, then drop the connection.
  if (e.code === 'PAYLOAD_TOO_LARGE' && !req.complete) res.setHeader('Connection', 'close');
  // A refusal says when to come back, the standard way (a route may have said it already).
  if ((isRetryable(e) || typeof e.details?.retryAfter === 'number') && !res.hasHeader('Retry-After')) {
    res.setHeader('Retry-After', String(retryAfterSeconds(e, opts.retryAfterEstimate ?? (() => 1))));
  }
  // The server's own failures (500) say only that they happened: their text
  // (fs errors, file names) stays in the log line that carries the same id.
  const internal = status === 500;
  // An unknown route's message is the client's own URL path: nothing to redact.
  const message = internal ? `internal error; the server log has the detail under request id ${requestId ?? 'unknown'}`
    : e.code === 'NOT_FOUND' ? e.message : redactPaths(e.message);
  const body: { error: { code: string; message: string; request_id?: string; details?: Record<string, unknown> } } = { error: { code: e.code, message } };
  if (requestId) body.error.request_id = requestId;
  if (e.details && !internal) body.error.details = e.details;
  writeJson(res, status, body);
  return e.code;
}

/** The answer to a request that arrives while the server drains (the connection closes after it). */
export function drainRefusal(res: { setHeader(name: string, value: string): unknown }): SoftserveError {
  res.setHeader('Connection', 'close');
  return new SoftserveError('DRAINING', 'the server is shutting down');
}

/** A JSON answer, as express's res.json writes it (no ETag: the app turns them off). */
export function writeJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** The one handler that answers every error of the express app. */
export function errorHandler(opts: Omit<ErrorAnswerOptions, 'requestId'> = {}): ErrorRequestHandler {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const requestId = typeof res.locals.requestId === 'string' ? res.locals.requestId : undefined;
    res.locals.errorCode = writeError(err, req, res, { ...opts, requestId });
  };
}
