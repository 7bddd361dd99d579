import type { z } from 'zod';
import { closestName } from './suggest.js';

/** One problem with an input: where it is (dotted path, '' for the whole input) and why it is wrong. */
export interface ValidationIssue {
  field: string;
  reason: string;
}

/** Bad input at an edge (config, HTTP, WebSocket, CLI, job data). The message names every field and its reason. */
export class ValidationError extends Error {
  readonly code = 'EVALIDATION';
  constructor(
    readonly issues: ValidationIssue[],
    /** What was being validated, e.g. "config/default.yaml" or "request body". */
    readonly subject: string,
  ) {
    super(`invalid ${subject}: ${issues.map((i) => (i.field ? `${i.field}: ${i.reason}` : i.reason)).join('; ')}`);
    this.name = 'ValidationError';
  }
}

/** The issues of a failed parse; with the schema, an unknown key also gets the known key it is closest to. */
export function issuesOf(error: z.ZodError, schema?: z.ZodType): ValidationIssue[] {
  return error.issues.map((issue) => ({
    field: issue.path.map(String).join('.'),
    reason: issue.code === 'unrecognized_keys' && schema ? issue.message + didYouMean(issue.keys, keysAt(schema, issue.path)) : issue.message,
  }));
}

function didYouMean(unknown: string[], known: string[]): string {
  const hints = unknown.flatMap((key) => {
    const near = closestName(key, known);
    return near ? [unknown.length === 1 ? `"${near}"` : `"${near}" for "${key}"`] : [];
  });
  return hints.length ? ` (did you mean ${hints.join(', ')}?)` : '';
}

/** The keys an object schema at `path` inside `schema` knows (through defaults, optionals, pipes, arrays, records, unions). */
function keysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  const def = (schema as unknown as { _zod: { def: Record<string, any> } })._zod.def;
  switch (def.type) {
    case 'object':
      if (path.length === 0) return Object.keys(def.shape);
      return def.shape[path[0] as string] ? keysAt(def.shape[path[0] as string], path.slice(1)) : [];
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'nonoptional':
    case 'catch':
      return keysAt(def.innerType, path);
    case 'pipe':
      return keysAt(def.in, path);
    case 'array':
      return path.length ? keysAt(def.element, path.slice(1)) : [];
    case 'record':
      return path.length ? keysAt(def.valueType, path.slice(1)) : [];
    case 'union':
      return [...new Set((def.options as z.ZodType[]).flatMap((option) => keysAt(option, path)))];
    default:
      return [];
  }
}

/** Parses `input` with `schema`, or throws a ValidationError naming each bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, subject: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new ValidationError(issuesOf(result.error, schema), subject);
  return result.data;
}

/** True when `source` compiles as a JavaScript regular expression. */
export function isValidRegex(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    return false;
  }
}
