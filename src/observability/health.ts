/** One dependency /healthz and the metrics look at. */
export interface HealthProbe {
  name: string;
  check(): Promise<{ ok: boolean; [detail: string]: unknown }>;
}

export type HealthChecks = Record<string, { ok: boolean; [detail: string]: unknown }>;

/** Runs every probe at once; one that throws or does not answer within `timeoutMs` is `{ok: false, error}`. */
export async function runHealthChecks(probes: readonly HealthProbe[], timeoutMs = 3000): Promise<HealthChecks> {
  const results = await Promise.all(
    probes.map(async (p) => {
      try {
        return [p.name, await withTimeout(p.check(), timeoutMs)] as const;
      } catch (err) {
        return [p.name, { ok: false, error: (err as Error).message }] as const;
      }
    }),
  );
  return Object.fromEntries(results);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(resolve, reject).finally(() => clearTimeout(timer));
  });
}
