import { Ajv2020 } from 'ajv/dist/2020.js';

/**
 * Checks answers of the API against its own OpenAPI document: the status must be documented for the route, and a JSON
 * body must match the documented schema. The document is read once per server.
 */
const documents = new Map<string, Promise<Record<string, any>>>();
const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });

/** operationId -> statuses answered and checked so far in this test process. */
export const checkedAnswers = new Map<string, Set<number>>();

export async function checkAnswer(baseUrl: string, method: string, pathname: string, status: number, contentType: string, body: unknown): Promise<void> {
  if (!documents.has(baseUrl)) documents.set(baseUrl, fetch(`${baseUrl}/api/v1/openapi.json`).then((r) => r.json() as Promise<Record<string, any>>));
  const doc = await documents.get(baseUrl)!;
  const path = pathname.split('?')[0]!;
  const route = Object.keys(doc.paths).find((p) => new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path));
  // Not a route of the API (a 404 for an unknown path, the dashboard's files): nothing documented to compare with.
  if (!route || !doc.paths[route][method.toLowerCase()]) return;
  const op = doc.paths[route][method.toLowerCase()];
  const answer = op.responses[String(status)];
  if (!answer) throw new Error(`${method} ${route} answered ${status}, which its OpenAPI operation ${op.operationId} does not document`);
  if (!checkedAnswers.has(op.operationId)) checkedAnswers.set(op.operationId, new Set());
  checkedAnswers.get(op.operationId)!.add(status);
  if (!contentType.includes('application/json')) return;
  let schema = answer.content?.['application/json']?.schema;
  if (!schema) throw new Error(`${method} ${route} ${status}: JSON answer, but no JSON schema documented`);
  if (schema.$ref) schema = doc.components.schemas[schema.$ref.split('/').pop()];
  const validate = ajv.compile(schema);
  if (!validate(body)) {
    throw new Error(`${method} ${path} ${status} does not match ${op.operationId}'s schema: ${ajv.errorsText(validate.errors)}; body ${JSON.stringify(body).slice(0, 500)}`);
  }
}
