import winston from 'winston';

/**
 * The logger every module receives from the composition root. Modules never create their
 * own: they take a `Logger` and make children that carry `requestId`, `webhookId`,
 * `endpointId`, `attempt`.
 */
export type Logger = winston.Logger;

/** Keys whose values never reach a log line, whatever object they sit in. */
const SECRET_KEYS = /^(authorization|token|secret|password|signingKey|apiKey|x-api-key|cookie|set-cookie)$/i;
const SECRET_VALUES = /\b(whsec_[A-Za-z0-9+/=]+|whsk_[A-Za-z0-9+/=]+|hr_[A-Za-z0-9_-]+|Bearer\s+\S+)/g;

function scrub(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.replace(SECRET_VALUES, '[redacted]');
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (value instanceof Error) return { name: value.name, message: scrub(value.message, depth + 1), stack: value.stack };
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.test(k) ? '[redacted]' : scrub(v, depth + 1);
  return out;
}

/** Secrets are removed from every field before a line is written (invariant 5). */
const redact = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level') continue;
    (info as Record<string, unknown>)[key] = SECRET_KEYS.test(key) ? '[redacted]' : scrub(info[key]);
  }
  return info;
});

const LEVELS = winston.config.npm.levels;
const LEVEL = Symbol.for('level');

/** Whether a line at `level` is written by a logger at `current` (an unknown level always is). */
function enabled(level: string, current: string): boolean {
  return (LEVELS[level] ?? 0) <= (LEVELS[current] ?? LEVELS.info!);
}

/**
 * Drops a line below the logger's level before any other format runs. winston runs the whole
 * format chain (here: scrubbing, timestamp, JSON) for every line and leaves the level to the
 * transport; the level methods below return before that, and this catches what reaches the
 * format another way (log() with an info object, write()).
 */
function atLevel(current: () => string) {
  return winston.format((info) => (enabled((info as Record<symbol, string | undefined>)[LEVEL] ?? info.level, current()) ? info : false))();
}

export function createLogger(options: { level: string; silent?: boolean; stream?: NodeJS.WritableStream }): Logger {
  const transport = options.stream
    ? new winston.transports.Stream({ stream: options.stream })
    : new winston.transports.Console({ stderrLevels: [] });
  const logger: Logger = winston.createLogger({
    level: options.level,
    silent: options.silent ?? false,
    format: winston.format.combine(
      atLevel(() => logger.level),
      redact(),
      winston.format.timestamp(),
      winston.format.errors({ stack: true }),
      winston.format.json(),
    ),
    defaultMeta: { service: 'hookrelay' },
    transports: [transport],
  });
  // The same test before winston builds a line at all: a call below the level returns at once
  // instead of going through winston's streams (children inherit these from the root).
  const log = logger.log;
  logger.log = function (this: Logger, level: unknown, ...rest: unknown[]) {
    if (typeof level === 'string' && !enabled(level, this.level)) return this;
    return (log as (...args: unknown[]) => Logger).call(this, level, ...rest);
  } as Logger['log'];
  for (const level of Object.keys(LEVELS) as (keyof typeof LEVELS & keyof Logger)[]) {
    const method = logger[level] as (...args: unknown[]) => Logger;
    (logger as unknown as Record<string, unknown>)[level] = function (this: Logger, ...args: unknown[]) {
      return enabled(level, this.level) ? method.apply(this, args) : this;
    };
  }
  return logger;
}
