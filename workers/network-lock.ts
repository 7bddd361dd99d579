import type { Config } from '../src/config/schema.js';

/**
 * The network lock of a job: what it asks for; else, when it keeps TCP connections, the configured method (nftables
 * by default, which needs no iptables program); else CRIU's default, which locks nothing when there is no connection
 * (forcing nftables there costs ~90 ms per dump for nothing).
 */
export function networkLockFor(
  criu: { networkLock?: 'iptables' | 'nftables' | 'skip'; tcpEstablished?: boolean } | undefined,
  config: Pick<Config, 'criu'>,
): 'iptables' | 'nftables' | 'skip' | undefined {
  return criu?.networkLock ?? (criu?.tcpEstablished ? config.criu.networkLock : undefined);
}
