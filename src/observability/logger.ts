import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Structured JSON logs on stderr (one object per line), level from CKPT_LOG_LEVEL (default info).
 * Secrets never go in: tokens and Redis commands' arguments are redacted wherever they appear in a logged object.
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
      // A Redis error carries its command's arguments: AUTH's are the password, and data commands' are job data.
      redact: {
        paths: ['token', '*.token', 'headers.authorization', 'req.headers.authorization', 'err.command.args', '*.err.command.args'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
