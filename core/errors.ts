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
  wrongArity: (name: string) => `ERR wrong number of arguments for '${name.toLowerCase()}' command`,
} as const;
