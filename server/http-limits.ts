// Connection-level limits of the HTTP listener: how many connections a
// process holds, how long a client may take to send its headers and its body,
// how long an idle keep-alive connection is kept, and an answer to
// `Expect: 100-continue` that follows the body limits (413 before the body is
// sent, never "100 Continue" for a body that would be refused).
//
// At the connection limit, Node accepts the new connection and closes it at
// once (the client sees the connection reset or closed before any response);
// each one is counted in softserve_connections_dropped_total. Connections
// already open are not disturbed, so requests in progress finish.

import http, { type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';

export interface HttpLimits {
  /** SOFTSERVE_MAX_CONNECTIONS: open connections per process (default 1024). */
  maxConnections: number;
  /** SOFTSERVE_HEADERS_TIMEOUT_MS: time from connect to the end of the request headers (default 15000). */
  headersTimeoutMs: number;
  /** SOFTSERVE_REQUEST_TIMEOUT_MS: time to receive a whole request, headers and body (default 60000). */
  requestTimeoutMs: number;
  /** SOFTSERVE_KEEPALIVE_TIMEOUT_MS: an idle keep-alive connection is closed after this (default 5000). */
  keepAliveTimeoutMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = { maxConnections: 1024, headersTimeoutMs: 15_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5_000 };

export interface HttpServerHooks {
  /** A connection closed at once because the process was at its connection limit. */
  onDrop?(): void;
  /** The largest body this request's route accepts (for Expect: 100-continue). */
  bodyLimit(req: IncomingMessage): number;
}

/** An http.Server for `app` with the limits applied (not yet listening). */
export function createHttpServer(app: RequestListener, limits: HttpLimits, hooks: HttpServerHooks): Server {
  const server = http.createServer({
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // How often Node checks the two timeouts above (its default, 30 s, would let them overrun by that much).
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
  }, app);
  server.maxConnections = limits.maxConnections;
  server.on('drop', () => hooks.onDrop?.());
  // With a 'checkContinue' listener Node no longer answers 100 by itself: we do, if the body may come.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const declared = Number(req.headers['content-length']);
    const limit = hooks.bodyLimit(req);
    if (Number.isFinite(declared) && declared > limit) {
      const body = JSON.stringify({ error: { code: 'PAYLOAD_TOO_LARGE', message: `the body of ${declared} bytes is over this route's limit of ${limit} bytes`, details: { limit } } });
      res.writeHead(413, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
      res.end(body);
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });
  return server;
}
