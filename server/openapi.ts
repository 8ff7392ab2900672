// The OpenAPI document served at /openapi.json. docs/API.md is the prose
// version; keep the two in step.

export function openApiDocument(): Record<string, unknown> {
  return {
    openapi: '3.0.3',
    info: { title: 'softserve', version: '0.1.0', description: 'Multi-tenant inference server for prompt-tuned text classification. See docs/API.md.' },
    paths: {},
  };
}
