import { isIPv4, isIPv6 } from 'node:net';

/**
 * Where deliveries may go: public unicast addresses only. Pure functions, no I/O: the
 * connect-time guard (guard.ts) applies them to every resolved address, the API to the IP
 * literals and names of submitted URLs.
 *
 * An address is refused when it is loopback, private, link-local, CGNAT, unique-local,
 * multicast, reserved, documentation or otherwise not globally reachable; IPv6 forms that
 * carry an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4) are judged by the IPv4
 * address they carry. HOOKRELAY_ALLOW_NETWORKS exempts ranges, but never a cloud metadata
 * address.
 */

export interface Cidr {
  family: 4 | 6;
  /** The network address, host bits cleared. */
  base: bigint;
  prefix: number;
  /** As written in the settings, for messages. */
  text: string;
}

/** Ranges exempted by HOOKRELAY_ALLOW_NETWORKS. */
export type AllowList = readonly Cidr[];

export interface Verdict {
  allowed: boolean;
  /** Why: `public`, `allow-listed`, or the kind of address that was refused. */
  reason: string;
}

interface Parsed {
  family: 4 | 6;
  value: bigint;
}

const BITS = { 4: 32, 6: 128 } as const;

function parseIPv4(text: string): bigint | undefined {
  if (!isIPv4(text)) return undefined;
  const parts = text.split('.').map(Number);
  return BigInt(((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!);
}

function parseIPv6(input: string): bigint | undefined {
  // A zone index (fe80::1%eth0) names an interface, not a different address.
  const pct = input.indexOf('%');
  let text = pct >= 0 ? input.slice(0, pct) : input;
  if (!isIPv6(text)) return undefined;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseIPv4(tail);
    if (v4 === undefined) return undefined;
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const split = (s: string | undefined) => (s ? s.split(':') : []);
  const head = split(halves[0]);
  const rest = split(halves[1]);
  const groups = halves.length === 2 ? [...head, ...Array<string>(8 - head.length - rest.length).fill('0'), ...rest] : head;
  if (groups.length !== 8) return undefined;
  let value = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    value = (value << 16n) | BigInt(parseInt(g, 16));
  }
  return value;
}

/** An IP address as a family and a number; brackets around IPv6 are accepted. */
function parseAddress(text: string): Parsed | undefined {
  const t = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const v4 = parseIPv4(t);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseIPv6(t);
  if (v6 !== undefined) return { family: 6, value: v6 };
  return undefined;
}

/** `10.0.0.0/8`, `fd00::/8`, or a bare address (one host). Host bits are cleared. Throws on anything else. */
export function parseCidr(input: string): Cidr {
  const text = input.trim();
  const slash = text.indexOf('/');
  const addr = parseAddress(slash >= 0 ? text.slice(0, slash) : text);
  if (!addr) throw new Error(`${JSON.stringify(text)} is not an IPv4 or IPv6 network (e.g. 10.0.0.0/8 or fd00::/8)`);
  const bits: number = BITS[addr.family];
  let prefix = bits;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) throw new Error(`${JSON.stringify(text)} has a prefix length outside 0-${bits}`);
    prefix = Number(p);
  }
  return { family: addr.family, base: mask(addr.value, bits, prefix), prefix, text };
}

/** A comma-separated list of CIDRs; empty entries are ignored. Throws naming the bad entry. */
export function parseAllowList(text: string | undefined): AllowList {
  if (!text) return Object.freeze([]);
  return Object.freeze(text.split(',').map((s) => s.trim()).filter(Boolean).map(parseCidr));
}

function mask(value: bigint, bits: number, prefix: number): bigint {
  const host = BigInt(bits - prefix);
  return (value >> host) << host;
}

function contains(cidr: Cidr, addr: Parsed): boolean {
  return cidr.family === addr.family && mask(addr.value, BITS[addr.family], cidr.prefix) === cidr.base;
}

function inList(list: AllowList, addr: Parsed): boolean {
  return list.some((c) => contains(c, addr));
}

const range = (text: string, reason: string) => ({ cidr: parseCidr(text), reason });

const METADATA_REASON = 'cloud metadata';

/** Cloud metadata endpoints: refused even when an allowed network covers them. */
const METADATA = [
  '169.254.169.254', // AWS, GCP, Azure, OCI, DigitalOcean, ...
  '169.254.170.2', // AWS ECS task metadata
  '100.100.100.200', // Alibaba Cloud
  '168.63.129.16', // Azure WireServer
  'fd00:ec2::254', // AWS IMDS over IPv6
].map((a) => parseCidr(a));

/** IPv4 ranges that are not public unicast. The first match names the reason. */
const BLOCKED_V4 = [
  range('0.0.0.0/8', 'this-network'),
  range('10.0.0.0/8', 'private'),
  range('100.64.0.0/10', 'cgnat'),
  range('127.0.0.0/8', 'loopback'),
  range('169.254.0.0/16', 'link-local'),
  range('172.16.0.0/12', 'private'),
  range('192.0.0.0/24', 'reserved'),
  range('192.0.2.0/24', 'documentation'),
  range('192.88.99.0/24', 'reserved'),
  range('192.168.0.0/16', 'private'),
  range('198.18.0.0/15', 'benchmarking'),
  range('198.51.100.0/24', 'documentation'),
  range('203.0.113.0/24', 'documentation'),
  range('224.0.0.0/4', 'multicast'),
  range('255.255.255.255/32', 'broadcast'),
  range('240.0.0.0/4', 'reserved'),
];

/** IPv6 ranges refused outright (forms carrying an IPv4 address are handled before these). */
const BLOCKED_V6 = [
  range('::/128', 'unspecified'),
  range('::1/128', 'loopback'),
  range('64:ff9b:1::/48', 'reserved'), // local-use NAT64 (RFC 8215)
  range('100::/64', 'reserved'), // discard-only
  range('2001::/32', 'reserved'), // Teredo
  range('2001:2::/48', 'benchmarking'),
  range('2001:10::/28', 'reserved'), // ORCHID
  range('2001:db8::/32', 'documentation'),
  range('3fff::/20', 'documentation'),
  range('5f00::/16', 'reserved'), // SRv6 SIDs
  range('fc00::/7', 'unique-local'),
  range('fe80::/10', 'link-local'),
  range('fec0::/10', 'site-local'),
  range('ff00::/8', 'multicast'),
];

/** Global unicast: anything outside it is unassigned or special. */
const GLOBAL_UNICAST_V6 = parseCidr('2000::/3');

/** IPv6 forms whose low 32 bits (or bits 16-47 for 6to4) are an IPv4 address. */
const EMBEDDING_V6: { cidr: Cidr; shift: bigint; form: string }[] = [
  { cidr: parseCidr('::ffff:0:0/96'), shift: 0n, form: 'ipv4-mapped' },
  { cidr: parseCidr('::ffff:0:0:0/96'), shift: 0n, form: 'ipv4-translated' },
  { cidr: parseCidr('::/96'), shift: 0n, form: 'ipv4-compatible' },
  { cidr: parseCidr('64:ff9b::/96'), shift: 0n, form: 'nat64' },
  { cidr: parseCidr('2002::/16'), shift: 80n, form: '6to4' },
];

function classifyParsed(addr: Parsed, allow: AllowList): Verdict {
  if (METADATA.some((m) => contains(m, addr))) return { allowed: false, reason: METADATA_REASON };
  if (addr.family === 4) {
    const hit = BLOCKED_V4.find((r) => contains(r.cidr, addr));
    if (!hit) return { allowed: true, reason: 'public' };
    return inList(allow, addr) ? { allowed: true, reason: 'allow-listed' } : { allowed: false, reason: hit.reason };
  }
  // :: and ::1 sit inside ::/96 but are not IPv4-compatible addresses.
  const special = BLOCKED_V6.slice(0, 2).find((r) => contains(r.cidr, addr));
  if (special) return inList(allow, addr) ? { allowed: true, reason: 'allow-listed' } : { allowed: false, reason: special.reason };
  const embedding = EMBEDDING_V6.find((e) => contains(e.cidr, addr));
  if (embedding) {
    const inner = classifyParsed({ family: 4, value: (addr.value >> embedding.shift) & 0xffffffffn }, allow);
    if (inner.allowed) return inner;
    // A metadata address stays refused in any form; otherwise the IPv6 form may be allowed itself.
    if (inner.reason === METADATA_REASON) return inner;
    if (inList(allow, addr)) return { allowed: true, reason: 'allow-listed' };
    return { allowed: false, reason: `${embedding.form} ${inner.reason}` };
  }
  const hit = BLOCKED_V6.find((r) => contains(r.cidr, addr))
    ?? (contains(GLOBAL_UNICAST_V6, addr) ? undefined : { reason: 'reserved' });
  if (!hit) return { allowed: true, reason: 'public' };
  return inList(allow, addr) ? { allowed: true, reason: 'allow-listed' } : { allowed: false, reason: hit.reason };
}

/**
 * The verdict on one IP address in canonical notation (as DNS answers or `new URL().hostname`
 * give it; IPv6 with or without brackets). Anything that is not an IP address is refused.
 */
export function classifyAddress(address: string, allow: AllowList = []): Verdict {
  const addr = parseAddress(address);
  if (!addr) return { allowed: false, reason: 'not an IP address' };
  return classifyParsed(addr, allow);
}

/** True for an IP literal (IPv6 with or without brackets). */
export function isIpLiteral(host: string): boolean {
  return parseAddress(host) !== undefined;
}

const LOCAL_NAMES = new Set(['localhost', 'localhost.localdomain', 'localhost4', 'localhost4.localdomain4', 'localhost6',
  'localhost6.localdomain6', 'ip6-localhost', 'ip6-loopback', 'ip6-localnet']);
const METADATA_NAMES = new Set(['metadata', 'metadata.google.internal', 'instance-data', 'instance-data.ec2.internal']);

/**
 * Host names refused before any lookup: those that name this machine (`localhost`,
 * `*.localhost`, `ip6-localhost`, …, trailing dots ignored) and cloud metadata names.
 * Undefined for any other name.
 */
export function blockedName(hostname: string): string | undefined {
  const name = hostname.toLowerCase().replace(/\.+$/, '');
  if (name === '') return 'empty host name';
  if (LOCAL_NAMES.has(name) || name.endsWith('.localhost')) return 'localhost name';
  if (METADATA_NAMES.has(name)) return METADATA_REASON;
  return undefined;
}

/**
 * The verdict on a host as it appears in a URL (`new URL(u).hostname`): an IP literal is
 * classified, a blocked name refused, any other name allowed for now (its addresses are
 * checked when a connection is made).
 */
export function classifyHost(hostname: string, allow: AllowList = []): Verdict {
  if (isIpLiteral(hostname)) return classifyAddress(hostname, allow);
  const named = blockedName(hostname);
  return named ? { allowed: false, reason: named } : { allowed: true, reason: 'name resolved at connection time' };
}

/** Why a URL can never be delivered to, or undefined when it may be (an unparseable URL is left to other checks). */
export function neverAllowedReason(url: string, allow: AllowList = []): string | undefined {
  let hostname: string;
  try {
    hostname = new URL(url).hostname;
  } catch {
    return undefined;
  }
  const verdict = classifyHost(hostname, allow);
  return verdict.allowed ? undefined : verdict.reason;
}

/**
 * True when no connection to this URL could ever be allowed: an IP literal in a refused range
 * that the allow list does not cover, a localhost name, a metadata address. Every notation the
 * URL parser accepts (decimal, octal, hex, shortened IPv4; IPv6 forms) is judged as the address
 * it denotes.
 */
export function isNeverAllowedUrl(url: string, allow: AllowList = []): boolean {
  return neverAllowedReason(url, allow) !== undefined;
}
