// OpenAPI helpers and the document served at /openapi.json. The document is
// assembled from the route modules' fragments (each file in server/routes/
// documents its own paths and schemas); docs/API.md is the prose version, and
// test/openapi.test.ts checks every documented path reaches a live route.

import { PRODUCT_VERSION } from './info.ts';
import type { RouteModule } from './route-module.ts';

export type Json = Record<string, unknown>;

export const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
export const json = (schema: Json): Json => ({ 'application/json': { schema } });
export const ok = (description: string, schema?: Json): Json => (schema ? { description, content: json(schema) } : { description });
export const errors = (...statuses: number[]): Json =>
  Object.fromEntries(statuses.map((s) => [String(s), { description: ERROR_TEXT[s] ?? 'error', content: json(ref('Error')) }]));

const ERROR_TEXT: Record<number, string> = {
  400: 'malformed request', 401: 'missing or unknown key', 403: 'wrong kind of key', 404: 'unknown, or not yours',
  409: 'conflict', 413: 'over a limit', 415: 'unsupported media type', 422: 'invalid against the model or task',
  429: 'overloaded (see Retry-After)', 503: 'not ready or draining', 504: 'deadline exceeded',
};

export const name = (what: string): Json => ({ name: what, in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' } });
export const version: Json = { name: 'version', in: 'path', required: true, schema: { oneOf: [{ type: 'integer', minimum: 1 }, { type: 'string', enum: ['latest'] }] } };

/** Shared by every module: the error envelope every error answer has. */
const sharedSchemas: Record<string, Json> = {
  Error: {
    type: 'object', required: ['error'],
    properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' }, request_id: { type: 'string', description: 'the X-Request-Id of the answer; quote it to find the server log line' }, details: { type: 'object' } } } },
  },
};

/** The document: the union of the modules' paths (operations of one path may come from several modules) and schemas. */
export function openApiDocument(modules: readonly RouteModule[]): Json {
  const paths: Record<string, Json> = {};
  const schemas: Record<string, Json> = { ...sharedSchemas };
  for (const m of modules) {
    for (const [path, item] of Object.entries(m.openapi?.paths ?? {})) paths[path] = { ...item, ...paths[path] };
    for (const [schema, body] of Object.entries(m.openapi?.schemas ?? {})) {
      if (schemas[schema] !== undefined && schemas[schema] !== body) throw new Error(`OpenAPI schema ${schema} is defined by two route modules (the second: ${m.name})`);
      schemas[schema] = body;
    }
  }
  return {
    openapi: '3.0.3',
    info: { title: 'softserve', version: PRODUCT_VERSION, description: 'Multi-tenant inference server for prompt-tuned text classification. Prose reference: docs/API.md.' },
    servers: [{ url: 'http://127.0.0.1:8080' }],
    security: [{ bearer: [] }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a tenant API key, or the admin key for /v1/tenants' } }, schemas },
    paths,
  };
}
