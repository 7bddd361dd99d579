import type { z } from 'zod';

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

export function issuesOf(error: z.ZodError): ValidationIssue[] {
  return error.issues.map((issue) => ({
    field: issue.path.map(String).join('.'),
    reason: issue.message,
  }));
}

/** Parses `input` with `schema`, or throws a ValidationError naming each bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, subject: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new ValidationError(issuesOf(result.error), subject);
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
