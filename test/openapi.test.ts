// /openapi.json lists the routes the server really answers: every documented
// path and method reaches a route handler (not the catch-all 404), on a live
// server on 127.0.0.1.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServingServer, api, createTenant } from './serving-helpers.ts';
import { ADMIN_KEY } from './store-helpers.ts';

test('every path and method in /openapi.json reaches a route', async () => {
  const srv = await startServingServer();
  try {
    const key = await createTenant(srv.url, 'docs');
    const doc = (await api(srv.url, 'GET', '/openapi.json')).json;
    assert.equal(doc.openapi, '3.0.3');
    const paths = Object.entries(doc.paths as Record<string, Record<string, unknown>>);
    assert.ok(paths.length >= 15);
    for (const [path, item] of paths) {
      for (const method of Object.keys(item).filter((m) => ['get', 'post', 'delete', 'put'].includes(m))) {
        const concrete = path.replace(/\{version\}/g, '1').replace(/\{[^}]+\}/g, 'x');
        const auth = path.startsWith('/v1/tenants') ? ADMIN_KEY : key;
        const r = await api(srv.url, method.toUpperCase(), concrete, { key: auth, ...(method === 'post' ? { json: {} } : {}) });
        const message = r.json?.error?.message ?? '';
        assert.ok(!String(message).startsWith('no route'), `${method.toUpperCase()} ${path}: ${message}`);
        const responses = (item[method] as { responses: Record<string, unknown> }).responses;
        assert.ok(Object.keys(responses).includes(String(r.status)) || r.status === 404,
          `${method.toUpperCase()} ${path} answered ${r.status}, not among its documented responses`);
      }
    }
  } finally {
    await srv.close();
  }
});
