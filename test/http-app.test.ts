// The HTTP app's one error handler and its route labels, on a real app over
// the real store on 127.0.0.1: every error is the same envelope with the
// status server/errors.ts maps its code to; every 429 (and a restarting
// worker) carries Retry-After; draining answers 503 DRAINING except for the
// modules that serve while draining; metric labels come from the matched route.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { rmSync } from 'node:fs';
import type { NextFunction, Request, Response } from 'express';

import { ERROR_CODES, SoftserveError } from '../kernels/errors.ts';
import { PromptStore } from '../prompts/store.ts';
import { apiRoutes, createApp } from '../server/app.ts';
import { DEFAULT_CONFIG, promptLimits, type ServerConfig } from '../server/config.ts';
import { ERROR_STATUS, httpStatus } from '../server/errors.ts';
import { patternLabel, routeLabelOf, type RouteModule } from '../server/route-module.ts';
import { healthRoutes } from '../server/routes/system.ts';
import { ADMIN_KEY, api, SPEC, tempDir } from './store-helpers.ts';

test('every error code has an HTTP status, and only codes have one', () => {
  for (const code of ERROR_CODES) assert.ok(httpStatus(code) >= 400 && httpStatus(code) < 600, code);
  assert.deepEqual(Object.keys(ERROR_STATUS).sort(), [...ERROR_CODES].sort());
});

test('route labels: params become :id, no trailing slash', () => {
  assert.equal(patternLabel('/v1/tasks/:task/classify'), '/v1/tasks/:id/classify');
  assert.equal(patternLabel('/v1/tasks/:task/prompts/:name/versions/:version'), '/v1/tasks/:id/prompts/:id/versions/:id');
  assert.equal(patternLabel('/v1/tasks/'), '/v1/tasks');
  assert.equal(patternLabel('/'), '/');
});

test('one error handler: envelope, statuses, Retry-After, drain, labels', async () => {
  const dataDir = tempDir('http-app');
  const config: ServerConfig = { ...DEFAULT_CONFIG, adminKey: ADMIN_KEY, dataDir, port: 0 };
  const store = PromptStore.open({ dataDir, spec: SPEC, limits: promptLimits(config), maxEnsembleSize: config.maxEnsembleSize, cacheBytes: config.promptCacheBytes });
  const throwing: RouteModule = {
    name: 'throwing',
    mount(app) {
      app.get('/t/queue-limit', () => { throw new SoftserveError('TRAINING_QUEUE_LIMIT', 'too many jobs', { retryAfter: 30 }); });
      app.get('/t/overloaded', () => { throw new SoftserveError('OVERLOADED', 'busy'); });
      app.get('/t/restarting', () => { throw new SoftserveError('INFERENCE_WORKER_RESTARTING', 'restarting'); });
      app.get('/t/internal', () => { throw new Error('EACCES: /srv/secret/file'); });
      app.get('/t/invalid', () => { throw new SoftserveError('INVALID_TASK', 'bad template in /srv/secret/file', { field: 'template' }); });
    },
  };
  const labels: string[] = [];
  let draining = false;
  let drainRefusals = 0;
  const app = createApp({
    store, spec: SPEC, config,
    routes: [healthRoutes(), ...apiRoutes(), throwing],
    observe: (_req: Request, res: Response, next: NextFunction) => {
      res.on('finish', () => labels.push(routeLabelOf(res)));
      next();
    },
    draining: () => draining,
    onDrainRefusal: () => { drainRefusals++; },
    retryAfterEstimate: () => 7,
  });
  const server: Server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)); });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const queue = await api(url, 'GET', '/t/queue-limit');
    assert.equal(queue.status, 429);
    assert.equal(queue.headers.get('retry-after'), '30');
    assert.equal(queue.json.error.code, 'TRAINING_QUEUE_LIMIT');
    assert.equal(queue.json.error.request_id, queue.headers.get('x-request-id'));
    assert.deepEqual(queue.json.error.details, { retryAfter: 30 });

    const busy = await api(url, 'GET', '/t/overloaded');
    assert.equal(busy.status, 429);
    assert.equal(busy.headers.get('retry-after'), '7', 'a 429 that does not say gets the estimate');

    const restarting = await api(url, 'GET', '/t/restarting');
    assert.equal(restarting.status, 503);
    assert.equal(restarting.headers.get('retry-after'), '7');

    const internal = await api(url, 'GET', '/t/internal');
    assert.equal(internal.status, 500);
    assert.equal(internal.json.error.code, 'INTERNAL');
    assert.ok(!JSON.stringify(internal.json).includes('/srv/secret'));

    const invalid = await api(url, 'GET', '/t/invalid');
    assert.equal(invalid.status, 422);
    assert.equal(invalid.headers.get('retry-after'), null);
    assert.ok(!invalid.json.error.message.includes('/srv/secret'), invalid.json.error.message);
    assert.deepEqual(invalid.json.error.details, { field: 'template' });

    const unknown = await api(url, 'GET', '/nowhere');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, 'NOT_FOUND');

    const noKey = await api(url, 'GET', '/v1/tasks');
    assert.equal(noKey.status, 401);
    const tenant = await api(url, 'POST', '/v1/tenants', { key: ADMIN_KEY, json: { name: 'labels' } });
    assert.equal(tenant.status, 201);
    const missing = await api(url, 'GET', '/v1/tasks/t1/prompts/p/versions/3', { key: tenant.json.api_key });
    assert.equal(missing.status, 404);

    draining = true;
    const refused = await api(url, 'GET', '/v1/tasks', { key: tenant.json.api_key });
    assert.equal(refused.status, 503);
    assert.equal(refused.json.error.code, 'DRAINING');
    assert.equal(refused.headers.get('connection'), 'close');
    assert.equal(drainRefusals, 1);
    assert.equal((await api(url, 'GET', '/healthz')).status, 200, 'probes answer while draining');

    assert.deepEqual(labels, [
      '/t/queue-limit', '/t/overloaded', '/t/restarting', '/t/internal', '/t/invalid', 'other',
      '/v1/tasks', '/v1/tenants', '/v1/tasks/:id/prompts/:id/versions/:id', 'other', '/healthz',
    ]);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
