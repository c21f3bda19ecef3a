import { PassThrough } from 'node:stream';
import test from 'ava';
import { createLogger } from '../../src/log.ts';

/** A logger writing into memory; `lines()` parses what it wrote so far. */
function memoryLogger(level: string) {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
  const log = createLogger({ level, stream });
  const lines = async () => {
    await new Promise((r) => setImmediate(r));
    return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  return { log, lines };
}

test('lines at and above the level are written as JSON with a timestamp; lines below it are not', async (t) => {
  const { log, lines } = memoryLogger('info');
  log.debug('quiet');
  log.info('said', { webhookId: 'msg_1' });
  log.child({ requestId: 'r1' }).warn('louder');
  log.child({ requestId: 'r2' }).debug('quiet child');
  const written = await lines();
  t.deepEqual(written.map((l) => l.message), ['said', 'louder']);
  t.is(written[0]!.webhookId, 'msg_1');
  t.is(written[1]!.requestId, 'r1');
  t.is(written[1]!.level, 'warn');
  t.is(written[0]!.service, 'hookrelay');
  t.false(Number.isNaN(Date.parse(String(written[0]!.timestamp))));
});

test('a line below the level is dropped before it is formatted', async (t) => {
  const { log, lines } = memoryLogger('warn');
  let serialized = 0;
  const meta = () => ({ detail: { toJSON: () => (serialized += 1, 'x') } });
  log.info('not at warn', meta());
  log.child({ requestId: 'r' }).debug('not at warn either', meta());
  // An info object passes the level methods; the format drops it.
  log.log({ level: 'info', message: 'as an object', ...meta() });
  t.is(serialized, 0, 'never turned into JSON');
  log.warn('at warn', meta());
  t.is(serialized, 1);
  t.deepEqual((await lines()).map((l) => [l.message, l.detail]), [['at warn', 'x']]);
});

test('a level changed at run time takes effect for the next line, children included', async (t) => {
  const { log, lines } = memoryLogger('warn');
  const child = log.child({ requestId: 'r' });
  child.info('before');
  log.level = 'debug';
  child.debug('after');
  t.deepEqual((await lines()).map((l) => l.message), ['after']);
});

test('secrets are redacted by key and by shape in every field', async (t) => {
  const { log, lines } = memoryLogger('info');
  log.info('request with Bearer abc.def', { authorization: 'Bearer abc', nested: { secret: 's', note: 'key whsec_AAAA and hr_abc_def' } });
  const [line] = await lines();
  t.is(line!.message, 'request with [redacted]');
  t.is(line!.authorization, '[redacted]');
  t.deepEqual(line!.nested, { secret: '[redacted]', note: 'key [redacted] and [redacted]' });
});

test('a call below the level never reaches winston\'s stream, from the root or a child', async (t) => {
  const { log, lines } = memoryLogger('warn');
  let writes = 0;
  const write = log.write.bind(log);
  log.write = ((...args: Parameters<typeof write>) => (writes += 1, write(...args))) as typeof log.write;
  const child = log.child({ requestId: 'r' });
  log.debug('a');
  log.info('b', { x: 1 });
  log.log('debug', 'c');
  child.info('d');
  child.log('http', 'e');
  t.is(writes, 0);
  child.warn('f');
  log.log('error', 'g');
  t.is(writes, 2);
  t.deepEqual((await lines()).map((l) => [l.message, l.requestId]), [['f', 'r'], ['g', undefined]]);
});
