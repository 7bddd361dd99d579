import { z } from 'zod';

const BYTE_UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** Bytes in "2G", "512MiB", "1.5G", "100K", "4096" (units are powers of 1024); null when the text is none of these. */
export function parseByteSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  const bytes = m ? Math.round(Number(m[1]) * BYTE_UNITS[m[2]!.toUpperCase()]!) : NaN;
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** A size in the config or a request: a whole number of bytes, or a string with a unit ("2G", "512MiB"). Output: bytes. */
export function byteSizeSchema(min = 0) {
  return z
    .union([z.number(), z.string()], { error: 'a size: a number of bytes, or like 512M, 2G, 1T' })
    .transform((value, ctx) => {
      const bytes = typeof value === 'number' ? (Number.isSafeInteger(value) ? value : null) : parseByteSize(value);
      if (bytes === null || bytes < min) {
        const floor = min > 0 ? ` of at least ${min} bytes` : '';
        ctx.addIssue({ code: 'custom', message: `not a size${floor}: ${JSON.stringify(value)} (a number of bytes, or like 512M, 2G, 1T)` });
        return z.NEVER;
      }
      return bytes;
    });
}
