/**
 * Errors that carry their Redis reply text.
 *
 * A command fails by throwing a `CommandError`; the dispatcher turns it into one `-` reply. The
 * text is the whole line after `-`, code included (`ERR ...`, `WRONGTYPE ...`).
 */
export class CommandError extends Error {
  constructor(readonly reply: string) {
    super(reply);
  }
}

/** Throws `ERR <text>`. */
export function fail(text: string): never {
  throw new CommandError("ERR " + text);
}

/** The texts used by more than one command, so each is spelled once. */
export const Errors = {
  notMapped: "ERR You must do MMAP first",
  notWritable: "ERR The file is not writable",
  indexNotInteger: "ERR index argument must be integer",
  indexOutOfRange: "ERR index exceeds size",
  valueNotInteger: "ERR value must be integer",
  valueTooLong: "ERR value is too long",
  syntax: "ERR syntax error",
  outsideDataDir: "ERR path is outside the data directory",
  notAnInteger: "ERR value is not an integer or out of range",
  invalidCursor: "ERR invalid cursor",
  badClientName: "ERR Client names cannot contain spaces, newlines or special characters.",
  wrongArity: (name: string) => `ERR wrong number of arguments for '${name.toLowerCase()}' command`,
  /** For container commands (CONFIG, CLIENT, COMMAND): `sub` as the client typed it. */
  unknownSubcommand: (sub: string, command: string) => `ERR unknown subcommand '${sub}'. Try ${command.toUpperCase()} HELP.`,
  internal: (e: unknown) => "ERR internal error: " + (e instanceof Error ? e.message : String(e)),
} as const;
