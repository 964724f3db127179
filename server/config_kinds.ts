/**
 * What a configuration parameter is (see config_table.ts for the table of them) and the kinds of
 * value one may hold: how each reads from text, with mmapd's and Redis's error texts, and writes back.
 */
import { type Config, ConfigError, type LiveServer } from "./config.ts";

/** How a value is read from text (throwing `Invalid`) and written back. */
interface Kind<T> {
  parse(value: string): T;
  format(value: T): string;
}

/** A value a kind refuses: mmapd's text (after `name: `) and Redis's CONFIG SET reason. */
export class Invalid extends Error {
  constructor(
    readonly text: string,
    readonly reason: string,
  ) {
    super(text);
  }
}

export function integer(min: number, max: number): Kind<number> {
  return {
    parse(value) {
      if (!/^-?[0-9]+$/.test(value)) throw new Invalid(`'${value}' is not an integer`, "argument couldn't be parsed into an integer");
      return inRange(Number(value), min, max);
    },
    format: String,
  };
}

function inRange(n: number, min: number, max: number): number {
  if (n < min || n > max)
    throw new Invalid(`${n} is out of range [${min}, ${max}]`, `argument must be between ${min} and ${max} inclusive`);
  return n;
}

const UNITS: Record<string, number> = { "": 1, b: 1, k: 1000, kb: 1024, m: 1000 ** 2, mb: 1024 ** 2, g: 1000 ** 3, gb: 1024 ** 3 };

/** A byte count, with redis.conf's units: `1gb` (1024³), `1g` (1000³), `64mb`, `512kb`. */
export function bytes(min: number, max: number): Kind<number> {
  return {
    parse(value) {
      const m = /^([0-9]+)([a-z]*)$/i.exec(value);
      const unit = m === null ? undefined : UNITS[m[2].toLowerCase()];
      if (m === null || unit === undefined)
        throw new Invalid(`'${value}' is not a byte count (a number, optionally with kb, mb or gb)`, "argument must be a memory value");
      return inRange(Number(m[1]) * unit, min, max);
    },
    format: String,
  };
}

export function yesNo(): Kind<boolean> {
  return {
    parse(value) {
      const v = value.toLowerCase();
      if (v === "yes" || v === "true") return true;
      if (v === "no" || v === "false") return false;
      throw new Invalid(`'${value}' must be yes or no`, "argument must be 'yes' or 'no'");
    },
    format: (v) => (v ? "yes" : "no"),
  };
}

export function oneOf<T extends string>(...choices: T[]): Kind<T> {
  return {
    parse(value) {
      const v = value.toLowerCase() as T;
      if (choices.includes(v)) return v;
      const list = `${choices.slice(0, -1).join(", ")} or ${choices.at(-1)}`;
      throw new Invalid(`'${value}' must be ${list}`, `argument(s) must be one of the following: ${choices.join(", ")}`);
    },
    format: (v) => v,
  };
}

export function text(check?: (value: string) => void): Kind<string> {
  return {
    parse(value) {
      check?.(value);
      return value;
    },
    format: (v) => v,
  };
}

/** One configuration parameter. */
export interface Parameter {
  name: string;
  /** Another name for the same setting (Redis's name for mmapd's own, or the other way round). */
  alias?: string;
  /** The --help line: the value's placeholder and what it sets; absent: not listed. */
  help?: readonly [placeholder: string, text: string];
  /** A flag without a value means yes. */
  switch?: boolean;
  /** Several lines of a config file may set it, each a part (client-output-buffer-limit's classes). */
  multiline?: boolean;
  /** CONFIG SET may change it while the server runs. */
  mutable: boolean;
  /** Parses `value` into `c`; throws ConfigError. */
  set(c: Config, value: string): void;
  /** The value as a config file line and CONFIG REWRITE write it. */
  get(c: Config): string;
  /** The value CONFIG GET shows, when the running server knows better than `c` (port 0, a relative dir). */
  show?(c: Config, live: LiveServer): string;
  /** Makes a change by CONFIG SET take effect. */
  apply?(c: Config, live: LiveServer): void;
  /**
   * A Redis setting mmapd understands but has no use for (save, appendonly): what the value would
   * mean here, and whether it describes what mmapd does anyway. Never stored or rewritten.
   */
  explain?(value: string): { matches: boolean; text: string };
}

/** A parameter stored in `c[key]`, read and written by `kind`. */
export function parameter<K extends keyof Config>(
  name: string,
  key: K,
  kind: Kind<Config[K]>,
  options: Omit<Parameter, "name" | "set" | "get" | "mutable"> & { mutable?: boolean },
): Parameter {
  return {
    name,
    mutable: false,
    ...options,
    set(c, value) {
      try {
        c[key] = kind.parse(value);
      } catch (e) {
        if (e instanceof Invalid) throw new ConfigError(`${name}: ${e.text}`, e.reason);
        throw e;
      }
    },
    get: (c) => kind.format(c[key]),
  };
}
