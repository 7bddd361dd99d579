import net from 'node:net';

/** The API's address is taken: found before anything else starts. */
export class AddressInUseError extends Error {
  readonly code = 'EADDRINUSE';
  constructor(readonly address: string) {
    super(`api ${address} is in use (EADDRINUSE): another process listens there; give this instance another api.port or api.host`);
    this.name = 'AddressInUseError';
  }
}

/**
 * Binds the API's address for a moment and lets it go, so an address in use stops a start before Redis or the CRIU
 * service is touched (the real listen comes last, when everything behind it runs). Port 0 (any free port) is not checked.
 */
export async function assertAddressFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err: NodeJS.ErrnoException) => {
      const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
      reject(err.code === 'EADDRINUSE' ? new AddressInUseError(address) : err);
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}
