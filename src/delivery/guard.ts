import { lookup as dnsLookup } from 'node:dns/promises';
import { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { buildConnector } from 'undici';
import { blockedName, classifyAddress, isIpLiteral, type AllowList } from './address-policy.ts';

/**
 * The connect-time half of the SSRF guard, as an undici connector. For each new connection:
 *
 *   1. a host name that names this machine (localhost, *.localhost, …) is refused outright;
 *   2. an IP literal is classified as it is;
 *   3. any other name is resolved ONCE, every address it resolves to is classified, and if any
 *      one of them is refused the connection is refused;
 *   4. the socket is opened to an address that was checked (the name is never resolved again:
 *      no DNS rebinding between check and connect). TLS still verifies the certificate against
 *      the name (SNI and identity check use the original host).
 *
 * Nothing here reads proxy settings: the connector opens the socket itself.
 */

export const BLOCKED_CODE = 'HOOKRELAY_DESTINATION_BLOCKED';

/** A refused connection. `reason` is for our own logs only; a receiver's record never shows it. */
export class BlockedDestinationError extends Error {
  override name = 'BlockedDestinationError';
  readonly code = BLOCKED_CODE;
  readonly reason: string;
  constructor(reason: string) {
    super('destination not allowed');
    this.reason = reason;
  }
}

export interface ResolvedAddress {
  address: string;
  family: number;
}

/** Resolves a host name to all of its addresses (default: the system resolver, as Node connects). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, order: 'verbatim' });

export interface GuardOptions {
  allow: AllowList;
  /** Injected in tests; the system resolver otherwise. */
  resolve?: Resolver;
  /** Opens the socket to a checked address (undici's own connector by default); injected in tests. */
  connect?: buildConnector.connector;
  /** Connect timeout of undici's connector, in ms. */
  timeout?: number;
  /** Accept TLS certificates that do not verify (HOOKRELAY_TLS_INSECURE); never the default. */
  insecureTls?: boolean;
}

/** Decides the addresses to connect to, or throws BlockedDestinationError. Exported for tests. */
export async function checkedAddresses(hostname: string, allow: AllowList, resolve: Resolver): Promise<string[]> {
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (isIpLiteral(host)) {
    const verdict = classifyAddress(host, allow);
    if (!verdict.allowed) throw new BlockedDestinationError(verdict.reason);
    return [host];
  }
  const named = blockedName(host);
  if (named) throw new BlockedDestinationError(named);
  const resolved = await resolve(host);
  if (resolved.length === 0) throw Object.assign(new Error(`no address for ${host}`), { code: 'ENOTFOUND' });
  for (const { address } of resolved) {
    const verdict = classifyAddress(address, allow);
    if (!verdict.allowed) throw new BlockedDestinationError(verdict.reason);
  }
  return [...new Set(resolved.map((r) => r.address))];
}

export function createGuardedConnector(options: GuardOptions): buildConnector.connector {
  const resolve = options.resolve ?? systemResolver;
  const connect = options.connect ?? buildConnector({
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.insecureTls ? { rejectUnauthorized: false } : {}),
  });
  return (opts, callback) => {
    // undici cancels a connection attempt no request waits for (an attempt past its deadline)
    // by destroying what the connector returns. The socket only exists after the lookup, so a
    // stand-in is returned: destroying it stops the lookup's continuation or the socket.
    const handle = new PassThrough();
    let socket: Socket | undefined;
    handle.once('close', () => socket?.destroy());
    const cancelled = () => handle.destroyed;
    checkedAddresses(opts.hostname, options.allow, resolve).then((addresses) => {
      // Each checked address in turn until one connects; the name is not looked up again.
      // `host` keeps the original name, so TLS sends it as SNI and checks the certificate
      // against it.
      const attempt = (i: number) => {
        if (cancelled()) return callback(new Error('connection attempt cancelled'), null);
        const returned: unknown = connect({ ...opts, hostname: addresses[i]! }, (err, s) => {
          if (err && i + 1 < addresses.length) attempt(i + 1);
          else if (err) callback(err, null);
          else callback(null, s!);
        });
        if (returned instanceof Socket) socket = returned;
        if (cancelled()) socket?.destroy();
      };
      attempt(0);
    }, (err: Error) => callback(err, null));
    return handle;
  };
}
