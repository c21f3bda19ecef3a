import test from 'ava';
import {
  blockedName, classifyAddress, classifyHost, isNeverAllowedUrl, neverAllowedReason, parseAllowList, parseCidr,
} from '../../src/delivery/address-policy.ts';

/** The SSRF classifier as a pure table: no sockets, no DNS. */

const NONE = parseAllowList('');

// [address, expected reason] for addresses refused with no allow list.
const BLOCKED: [string, string][] = [
  // 0.0.0.0/8
  ['0.0.0.0', 'this-network'], ['0.0.0.1', 'this-network'], ['0.255.255.255', 'this-network'],
  // 10/8 edges
  ['10.0.0.0', 'private'], ['10.0.0.1', 'private'], ['10.128.0.1', 'private'], ['10.255.255.255', 'private'],
  // 100.64/10 edges
  ['100.64.0.0', 'cgnat'], ['100.64.0.1', 'cgnat'], ['100.100.0.1', 'cgnat'], ['100.127.255.255', 'cgnat'],
  // 127/8
  ['127.0.0.0', 'loopback'], ['127.0.0.1', 'loopback'], ['127.1.2.3', 'loopback'], ['127.255.255.255', 'loopback'],
  // 169.254/16
  ['169.254.0.0', 'link-local'], ['169.254.0.1', 'link-local'], ['169.254.255.255', 'link-local'],
  // 172.16/12 edges
  ['172.16.0.0', 'private'], ['172.16.0.1', 'private'], ['172.20.10.1', 'private'], ['172.31.255.255', 'private'],
  // 192.0.0/24, TEST-NETs, 6to4 relay
  ['192.0.0.0', 'reserved'], ['192.0.0.8', 'reserved'], ['192.0.0.255', 'reserved'],
  ['192.0.2.0', 'documentation'], ['192.0.2.1', 'documentation'], ['192.0.2.255', 'documentation'],
  ['192.88.99.1', 'reserved'],
  // 192.168/16
  ['192.168.0.0', 'private'], ['192.168.1.1', 'private'], ['192.168.255.255', 'private'],
  // 198.18/15
  ['198.18.0.0', 'benchmarking'], ['198.18.0.1', 'benchmarking'], ['198.19.255.255', 'benchmarking'],
  ['198.51.100.0', 'documentation'], ['198.51.100.7', 'documentation'], ['198.51.100.255', 'documentation'],
  ['203.0.113.0', 'documentation'], ['203.0.113.9', 'documentation'], ['203.0.113.255', 'documentation'],
  // multicast, reserved, broadcast
  ['224.0.0.0', 'multicast'], ['224.0.0.1', 'multicast'], ['239.255.255.250', 'multicast'], ['239.255.255.255', 'multicast'],
  ['240.0.0.0', 'reserved'], ['240.0.0.1', 'reserved'], ['250.1.2.3', 'reserved'], ['255.255.255.254', 'reserved'],
  ['255.255.255.255', 'broadcast'],
  // metadata
  ['169.254.169.254', 'cloud metadata'], ['169.254.170.2', 'cloud metadata'], ['100.100.100.200', 'cloud metadata'],
  ['168.63.129.16', 'cloud metadata'], ['fd00:ec2::254', 'cloud metadata'], ['[fd00:ec2::254]', 'cloud metadata'],
  ['fd00:ec2:0:0:0:0:0:254', 'cloud metadata'],
  // IPv6 specials
  ['::', 'unspecified'], ['0:0:0:0:0:0:0:0', 'unspecified'], ['::1', 'loopback'], ['0:0:0:0:0:0:0:1', 'loopback'], ['[::1]', 'loopback'],
  ['fc00::', 'unique-local'], ['fc00::1', 'unique-local'], ['fd12:3456:789a::1', 'unique-local'], ['fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'unique-local'],
  ['fe80::', 'link-local'], ['fe80::1', 'link-local'], ['fe80::1%eth0', 'link-local'], ['febf:ffff::1', 'link-local'],
  ['fec0::1', 'site-local'], ['feff::1', 'site-local'],
  ['ff00::', 'multicast'], ['ff02::1', 'multicast'], ['ff05::1:3', 'multicast'], ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'multicast'],
  ['2001:db8::', 'documentation'], ['2001:db8::1', 'documentation'], ['2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', 'documentation'],
  ['3fff::1', 'documentation'], ['3fff:0fff:ffff::1', 'documentation'],
  ['2001::1', 'reserved'], ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'], // Teredo
  ['2001:2::1', 'benchmarking'], ['2001:10::1', 'reserved'], ['100::1', 'reserved'], ['5f00::1', 'reserved'],
  ['64:ff9b:1::1', 'reserved'], ['64:ff9b:1:ffff::1', 'reserved'],
  // outside 2000::/3
  ['1::1', 'reserved'], ['4000::1', 'reserved'], ['e000::1', 'reserved'], ['::2:1', 'ipv4-compatible this-network'],
  // IPv4-mapped
  ['::ffff:127.0.0.1', 'ipv4-mapped loopback'], ['::ffff:7f00:1', 'ipv4-mapped loopback'], ['0:0:0:0:0:ffff:7f00:1', 'ipv4-mapped loopback'],
  ['[::ffff:127.0.0.1]', 'ipv4-mapped loopback'], ['::FFFF:127.0.0.1', 'ipv4-mapped loopback'],
  ['::ffff:10.0.0.1', 'ipv4-mapped private'], ['::ffff:a00:1', 'ipv4-mapped private'], ['::ffff:192.168.1.1', 'ipv4-mapped private'],
  ['::ffff:172.16.0.1', 'ipv4-mapped private'], ['::ffff:100.64.0.1', 'ipv4-mapped cgnat'], ['::ffff:0.0.0.0', 'ipv4-mapped this-network'],
  ['::ffff:169.254.169.254', 'cloud metadata'], ['::ffff:a9fe:a9fe', 'cloud metadata'], ['::ffff:100.100.100.200', 'cloud metadata'],
  ['::ffff:224.0.0.1', 'ipv4-mapped multicast'], ['::ffff:255.255.255.255', 'ipv4-mapped broadcast'], ['::ffff:192.0.2.1', 'ipv4-mapped documentation'],
  // IPv4-translated (SIIT)
  ['::ffff:0:127.0.0.1', 'ipv4-translated loopback'], ['::ffff:0:a00:1', 'ipv4-translated private'],
  // IPv4-compatible
  ['::127.0.0.1', 'ipv4-compatible loopback'], ['::7f00:1', 'ipv4-compatible loopback'], ['::10.1.2.3', 'ipv4-compatible private'],
  ['::169.254.169.254', 'cloud metadata'], ['::192.168.0.1', 'ipv4-compatible private'],
  // NAT64 well-known prefix
  ['64:ff9b::127.0.0.1', 'nat64 loopback'], ['64:ff9b::7f00:1', 'nat64 loopback'], ['64:ff9b::10.0.0.1', 'nat64 private'],
  ['64:ff9b::169.254.169.254', 'cloud metadata'], ['64:ff9b::a9fe:a9fe', 'cloud metadata'], ['64:ff9b::192.168.1.1', 'nat64 private'],
  ['64:ff9b::100.64.0.1', 'nat64 cgnat'], ['64:ff9b::224.0.0.1', 'nat64 multicast'],
  // 6to4
  ['2002:7f00:1::', '6to4 loopback'], ['2002:7f00:0001::1', '6to4 loopback'], ['2002:a00:1::1', '6to4 private'],
  ['2002:c0a8:101::1', '6to4 private'], ['2002:a9fe:a9fe::', 'cloud metadata'], ['2002:ac10:1::1', '6to4 private'],
  ['2002:6440:1::1', '6to4 cgnat'], ['2002:e000:1::1', '6to4 multicast'], ['2002::1', '6to4 this-network'],
];

const PUBLIC = [
  '1.1.1.1', '8.8.8.8', '9.255.255.255', '11.0.0.0', '100.63.255.255', '100.128.0.0', '126.255.255.255', '128.0.0.0',
  '169.253.255.255', '169.255.0.0', '172.15.255.255', '172.32.0.0', '192.0.1.255', '192.0.3.0', '192.167.255.255',
  '192.169.0.0', '198.17.255.255', '198.20.0.0', '198.51.99.255', '198.51.101.0', '203.0.112.255', '203.0.114.0',
  '223.255.255.255', '93.184.216.34', '170.254.169.253',
  '2000::1', '2001:4860:4860::8888', '2606:4700:4700::1111', '2a00:1450:4001::1', '3ffe::1', '2001:db7:ffff::1', '2001:db9::1',
  '::ffff:8.8.8.8', '::ffff:808:808', '64:ff9b::8.8.8.8', '64:ff9b::808:808', '2002:808:808::1', '::8.8.8.8',
  '2001:200::1', '3ffe:ffff::1', '2c0f:fb50::1',
];

for (const [address, reason] of BLOCKED) {
  test(`refuses ${address} (${reason})`, (t) => {
    t.deepEqual(classifyAddress(address, NONE), { allowed: false, reason });
  });
}

for (const address of PUBLIC) {
  test(`allows public ${address}`, (t) => {
    t.deepEqual(classifyAddress(address, NONE), { allowed: true, reason: 'public' });
  });
}

test('anything that is not an IP address is refused by classifyAddress', (t) => {
  for (const s of ['', 'localhost', 'example.com', '127.1', '0x7f000001', '2130706433', '1.2.3.4.5', '::g', '[::1', '1.2.3.4/8']) {
    t.deepEqual(classifyAddress(s, NONE), { allowed: false, reason: 'not an IP address' }, s);
  }
});

// The allow list exempts ranges, for internal receivers and tests.
const ALLOW = parseAllowList('127.0.0.0/8, ::1/128,10.1.0.0/16,fd00:1234::/32,169.254.0.0/16,192.0.2.0/24');
const ALLOWED_BY_LIST = [
  '127.0.0.1', '127.255.255.255', '::1', '10.1.0.0', '10.1.255.255', 'fd00:1234::1', 'fd00:1234:ffff::1', '169.254.1.1', '192.0.2.10',
  '::ffff:127.0.0.1', '::ffff:10.1.2.3', '64:ff9b::127.0.0.1', '2002:7f00:1::1', '::127.0.0.1',
];
const STILL_BLOCKED: [string, string][] = [
  ['10.0.255.255', 'private'], ['10.2.0.0', 'private'], ['fd00:1235::1', 'unique-local'], ['192.168.1.1', 'private'],
  ['169.254.169.254', 'cloud metadata'], ['169.254.170.2', 'cloud metadata'], ['::ffff:169.254.169.254', 'cloud metadata'],
  ['64:ff9b::a9fe:a9fe', 'cloud metadata'], ['2002:a9fe:a9fe::1', 'cloud metadata'], ['::0.0.0.0', 'unspecified'],
  ['0.0.0.0', 'this-network'], ['::ffff:192.168.0.1', 'ipv4-mapped private'],
];

for (const address of ALLOWED_BY_LIST) {
  test(`allow list exempts ${address}`, (t) => {
    t.deepEqual(classifyAddress(address, ALLOW), { allowed: true, reason: 'allow-listed' });
  });
}

for (const [address, reason] of STILL_BLOCKED) {
  test(`allow list does not exempt ${address}`, (t) => {
    t.deepEqual(classifyAddress(address, ALLOW), { allowed: false, reason });
  });
}

test('metadata addresses stay refused even when the allow list covers everything', (t) => {
  const all = parseAllowList('0.0.0.0/0,::/0');
  for (const a of ['169.254.169.254', '169.254.170.2', '100.100.100.200', 'fd00:ec2::254', '::ffff:169.254.169.254', '64:ff9b::169.254.169.254', '2002:a9fe:a9fe::']) {
    t.deepEqual(classifyAddress(a, all), { allowed: false, reason: 'cloud metadata' }, a);
  }
  t.true(classifyAddress('10.0.0.1', all).allowed);
  t.true(classifyAddress('fe80::1', all).allowed);
  t.true(isNeverAllowedUrl('http://169.254.169.254/latest/meta-data/', all));
  t.true(isNeverAllowedUrl('http://[fd00:ec2::254]/', all));
});

test('an allow-listed IPv6 form of a refused IPv4 address is allowed', (t) => {
  const allow = parseAllowList('::ffff:0:0/96');
  t.true(classifyAddress('::ffff:10.0.0.1', allow).allowed);
  t.false(classifyAddress('10.0.0.1', allow).allowed);
  t.false(classifyAddress('::ffff:169.254.169.254', allow).allowed);
});

test('parseCidr and parseAllowList', (t) => {
  t.like(parseCidr('10.0.0.0/8'), { family: 4, prefix: 8 });
  t.like(parseCidr('10.1.2.3/8'), { family: 4, prefix: 8, base: 10n << 24n }, 'host bits are cleared');
  t.like(parseCidr('1.2.3.4'), { family: 4, prefix: 32 });
  t.like(parseCidr('::1'), { family: 6, prefix: 128, base: 1n });
  t.like(parseCidr('fd00::/8'), { family: 6, prefix: 8 });
  t.like(parseCidr('[::1]/128'), { family: 6, prefix: 128 });
  t.like(parseCidr('0.0.0.0/0'), { family: 4, prefix: 0, base: 0n });
  t.deepEqual(parseAllowList(''), []);
  t.deepEqual(parseAllowList(undefined), []);
  t.is(parseAllowList(' 10.0.0.0/8 ,, fd00::/8 ').length, 2);
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/-1', '10.0.0.0/', '10.0.0/8', '127.1/8', 'example.com/8', '10.0.0.0/8/8', '0x7f000001/32', 'fd00::/x', 'abc']) {
    t.throws(() => parseCidr(bad), undefined, bad);
  }
  t.throws(() => parseAllowList('10.0.0.0/8,nope'), { message: /nope/ });
});

test('host names that name this machine or a metadata service are refused', (t) => {
  for (const name of ['localhost', 'LOCALHOST', 'localhost.', 'localhost..', 'foo.localhost', 'a.b.localhost.', 'ip6-localhost', 'ip6-loopback',
    'localhost.localdomain', 'localhost6', 'localhost6.localdomain6', 'localhost4']) {
    t.is(blockedName(name), 'localhost name', name);
  }
  for (const name of ['metadata.google.internal', 'metadata.google.internal.', 'metadata', 'instance-data']) t.is(blockedName(name), 'cloud metadata', name);
  for (const name of ['example.com', 'localhost.example.com', 'notlocalhost', 'mylocalhost.com', 'localhostx']) t.is(blockedName(name), undefined, name);
  t.deepEqual(classifyHost('example.com', NONE), { allowed: true, reason: 'name resolved at connection time' });
  t.deepEqual(classifyHost('[::1]', NONE), { allowed: false, reason: 'loopback' });
});

// Every notation the WHATWG URL parser accepts for an IPv4 address, as new URL() normalizes it.
const NEVER: [string, string][] = [
  ['http://127.0.0.1/', 'loopback'], ['http://127.0.0.1:8080/x', 'loopback'], ['https://127.0.0.1./', 'loopback'],
  ['http://2130706433/', 'loopback'], ['http://0x7f000001/', 'loopback'], ['http://0X7F000001/', 'loopback'],
  ['http://0177.0.0.1/', 'loopback'], ['http://0177.1/', 'loopback'], ['http://0x7f.1/', 'loopback'], ['http://0x7f.0.0.1/', 'loopback'],
  ['http://127.1/', 'loopback'], ['http://127.0.1/', 'loopback'], ['http://017700000001/', 'loopback'], ['http://0x7f.0x0.0x0.0x1/', 'loopback'],
  ['http://0/', 'this-network'], ['http://0.0.0.0/', 'this-network'], ['http://0x0/', 'this-network'],
  ['http://167772161/', 'private'], ['http://0xa000001/', 'private'], ['http://012.1/', 'private'], ['http://10.1/', 'private'],
  ['http://192.168.1/', 'private'], ['http://3232235777/', 'private'], ['http://0xc0.0xa8.1.1/', 'private'],
  ['http://169.254.169.254/', 'cloud metadata'], ['http://2852039166/', 'cloud metadata'], ['http://0xa9fea9fe/', 'cloud metadata'],
  ['http://0251.0376.0251.0376/', 'cloud metadata'], ['http://169.254.43518/', 'cloud metadata'], ['http://100.100.100.200/', 'cloud metadata'],
  ['http://169.254.170.2/v2/credentials', 'cloud metadata'], ['http://[fd00:ec2::254]/', 'cloud metadata'],
  ['http://4294967295/', 'broadcast'], ['http://0xffffffff/', 'broadcast'],
  ['http://[::1]/', 'loopback'], ['http://[0:0:0:0:0:0:0:1]/', 'loopback'], ['http://[::]/', 'unspecified'],
  ['http://[::ffff:127.0.0.1]/', 'ipv4-mapped loopback'], ['http://[::ffff:7f00:1]/', 'ipv4-mapped loopback'],
  ['http://[::ffff:169.254.169.254]/', 'cloud metadata'], ['http://[::127.0.0.1]/', 'ipv4-compatible loopback'],
  ['http://[64:ff9b::127.0.0.1]/', 'nat64 loopback'], ['http://[2002:7f00:1::1]/', '6to4 loopback'],
  ['http://[fe80::1]/', 'link-local'], ['http://[fc00::1]/', 'unique-local'], ['http://[ff02::1]/', 'multicast'],
  ['http://[2001:db8::1]/', 'documentation'],
  ['http://localhost/', 'localhost name'], ['http://localhost:3000/', 'localhost name'], ['http://LocalHost./', 'localhost name'],
  ['http://api.localhost/', 'localhost name'], ['http://ip6-localhost/', 'localhost name'], ['https://metadata.google.internal/', 'cloud metadata'],
  ['http://%6c%6f%63%61%6c%68%6f%73%74/', 'localhost name'], ['http://LOCALHOST%2E/', 'localhost name'],
  ['http://１２７.０.０.１/', 'loopback'], // full-width digits are mapped by IDNA
];

for (const [url, reason] of NEVER) {
  test(`never allowed: ${url}`, (t) => {
    t.is(neverAllowedReason(url, NONE), reason, new URL(url).hostname);
    t.true(isNeverAllowedUrl(url, NONE));
  });
}

test('URLs that may be allowed', (t) => {
  for (const url of ['https://example.com/hook', 'http://8.8.8.8/', 'http://134744072/', 'http://[2001:4860:4860::8888]/', 'https://localhost.example.com/',
    'http://[::ffff:8.8.8.8]/', 'not a url']) {
    t.false(isNeverAllowedUrl(url, NONE), url);
  }
  // ftp: is refused by normalizeUrl; the policy only judges hosts. A non-http scheme with a loopback host:
  t.is(neverAllowedReason('ftp://127.0.0.1/', NONE), 'loopback');
});

test('the allow list makes allow-listed IP literals acceptable at submission, never localhost names or metadata', (t) => {
  const allow = parseAllowList('127.0.0.0/8,::1/128,169.254.0.0/16');
  t.false(isNeverAllowedUrl('http://127.0.0.1:9/', allow));
  t.false(isNeverAllowedUrl('http://2130706433/', allow));
  t.false(isNeverAllowedUrl('http://[::1]/', allow));
  t.false(isNeverAllowedUrl('http://[::ffff:127.0.0.1]/', allow));
  t.false(isNeverAllowedUrl('http://169.254.1.1/', allow));
  t.true(isNeverAllowedUrl('http://localhost/', allow));
  t.true(isNeverAllowedUrl('http://169.254.169.254/', allow));
  t.true(isNeverAllowedUrl('http://10.0.0.1/', allow));
});
