import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Structured JSON logs on stderr (one object per line), level from CKPT_LOG_LEVEL (default info).
 * Secrets never go in: tokens are redacted wherever they appear in a logged object.
 */
export function createLogger(
  name: string,
  level = process.env.CKPT_LOG_LEVEL ?? 'info',
  destination: DestinationStream = pino.destination(2),
): Logger {
  return pino(
    {
      name,
      level,
      base: { pid: process.pid },
      redact: { paths: ['token', '*.token', 'headers.authorization', 'req.headers.authorization'], censor: '[redacted]' },
    },
    destination,
  );
}
