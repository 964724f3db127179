/**
 * Streaming parser for client requests: RESP arrays of bulk strings and inline commands, with the
 * limits and error texts of Redis 7 (src/networking.c, processMultibulkBuffer and
 * processInlineBuffer).
 *
 * A command that arrives whole inside one chunk is parsed in place: its arguments are offsets into
 * that chunk and nothing is copied. Only a command cut by the end of a chunk is assembled in an
 * internal buffer, and the parse resumes where it stopped (inside a header line, between
 * arguments, or inside a bulk) instead of rescanning the frame. Nothing is allocated per command.
 */
import { ProtocolErrors } from "../core/errors.ts";
import { copyBytes } from "./bytes.ts";

export interface ParserLimits {
  /** Largest bulk string accepted (Redis proto-max-bulk-len). */
  maxBulkLength: number;
  /** Largest argument count accepted in `*N`. */
  maxMultibulkLength: number;
  /** Longest inline line accepted while its newline has not arrived. */
  maxInlineLength: number;
}

const DEFAULT_LIMITS: ParserLimits = {
  maxBulkLength: 512 * 1024 * 1024,
  maxMultibulkLength: 2 ** 31 - 1,
  maxInlineLength: 64 * 1024,
};

/** Redis refuses a `*N` or `$N` line that grows beyond this without its CR (PROTO_INLINE_MAX_SIZE). */
const MAX_HEADER_LINE = 64 * 1024;

const CR = 13;
const LF = 10;
const STAR = 42;
const DOLLAR = 36;
const BACKSLASH = 92;
const DOUBLE_QUOTE = 34;
const SINGLE_QUOTE = 39;

// Parse states: where the next byte belongs.
const COMMAND_START = 0;
const COUNT_LINE = 1;
const BULK_LINE = 2;
const BULK_DATA = 3;
const INLINE_LINE = 4;
const FAILED = 5;

const READY = 1;
const NEED_MORE = 0;
const ERROR = -1;

/** The assembly buffer's first size, and the size above which it is dropped once idle. */
const MIN_ASSEMBLY_CAPACITY = 16 * 1024;
const MAX_IDLE_ASSEMBLY_CAPACITY = 1024 * 1024;
/** Room kept after a large bulk so the small arguments that may follow it need no regrowth. */
const BULK_RESERVE_SLACK = 4 * 1024;

const EMPTY = new Uint8Array(0);

export class RequestParser {
  /** The buffer the current command's arguments live in; valid until the next feed()/next(). */
  buf: Uint8Array = EMPTY;
  /** Number of arguments of the current command (argument 0 is the command name). */
  argc = 0;
  /** Argument i is buf[argStart[i], argEnd[i]). Arrays grow as needed and are reused. */
  argStart: Int32Array = new Int32Array(16);
  argEnd: Int32Array = new Int32Array(16);
  /** Redis text of the last protocol error, e.g. "ERR Protocol error: invalid bulk length". */
  error = "";
  /** True when the current command came in inline form. */
  inline = false;
  /** How many times the assembly buffer was allocated (diagnostics: large bulks must not regrow it). */
  assemblyAllocations = 0;

  private readonly maxBulkLength: number;
  private readonly maxMultibulkLength: number;
  private readonly maxInlineLength: number;

  // Unparsed input is assembly[.., assemblyLength) (while assembling) followed by
  // chunk[chunkPos, chunk.length).
  private chunk: Uint8Array = EMPTY;
  private chunkPos = 0;
  private assembly: Uint8Array = EMPTY;
  private assemblyLength = 0;
  /** True while commands are parsed from `assembly` rather than from `chunk`. */
  private assembling = false;

  // Parse state, as offsets into the current source (`assembly` or `chunk`).
  private state = COMMAND_START;
  /** Start of the next unit: command, header line, bulk payload or inline line. */
  private cursor = 0;
  /** First byte of the current header/inline line not yet searched for its terminator. */
  private scanPos = 0;
  private commandStart = 0;
  private argsLeft = 0;
  private bulkLength = 0;

  /** Decoded arguments of the current inline command (quotes and escapes resolved). */
  private inlineArgs: Uint8Array = EMPTY;

  constructor(limits?: Partial<ParserLimits>) {
    const merged = { ...DEFAULT_LIMITS, ...limits };
    this.maxBulkLength = merged.maxBulkLength;
    this.maxMultibulkLength = merged.maxMultibulkLength;
    this.maxInlineLength = merged.maxInlineLength;
  }

  /** Appends bytes read from the socket (the parser copies what it must keep; the caller may reuse `chunk` after next() returns 0). */
  feed(chunk: Uint8Array): void {
    if (this.state === FAILED) return;
    const previous = this.chunk;
    if (!this.assembling) {
      if (this.cursor < previous.length) {
        // The caller fed again before draining: the unparsed rest of the previous chunk must
        // survive that chunk being reused, so it moves into the assembly buffer.
        const from = this.cursor;
        this.cursor = 0;
        this.assemblyLength = 0;
        this.assembling = true;
        this.appendToAssembly(previous, from, previous.length);
      }
    } else if (this.chunkPos < previous.length) {
      if (this.state === COMMAND_START && this.cursor >= this.assemblyLength) {
        this.assemblyLength = 0;
        this.cursor = 0;
      }
      this.appendToAssembly(previous, this.chunkPos, previous.length);
    }
    this.chunk = chunk;
    this.chunkPos = 0;
    if (!this.assembling) this.cursor = 0;
  }

  /** 1: a whole command is ready (fields above set); 0: more bytes needed; -1: protocol error (`error` set; the connection must be closed after replying). Empty inline lines and `*0`/`*-1` arrays are skipped silently, as Redis does. */
  next(): number {
    for (;;) {
      if (this.state === FAILED) return ERROR;
      if (!this.assembling) {
        const chunk = this.chunk;
        const result = this.parse(chunk, chunk.length);
        if (result === READY) {
          if (!this.inline) this.buf = chunk;
          return READY;
        }
        if (result === ERROR) return ERROR;
        this.keepIncompleteTail();
        return NEED_MORE;
      }
      if (this.state === COMMAND_START && this.cursor >= this.assemblyLength) {
        this.leaveAssembly();
        continue;
      }
      const result = this.parse(this.assembly, this.assemblyLength);
      if (result === READY) {
        if (!this.inline) this.buf = this.assembly;
        return READY;
      }
      if (result === ERROR) return ERROR;
      if (this.state === COMMAND_START) continue;
      if (this.chunkPos >= this.chunk.length) return NEED_MORE;
      this.pullFromChunk();
    }
  }

  /** Bytes held for a command not yet complete (for query-buffer limits). */
  buffered(): number {
    if (!this.assembling) return this.chunk.length - this.cursor;
    const start = this.state === COMMAND_START ? this.cursor : this.commandStart;
    return this.assemblyLength - start + (this.chunk.length - this.chunkPos);
  }

  /**
   * Advances the state machine over src[.., end). Returns READY with the command's arguments as
   * offsets into `src`, NEED_MORE with the state saved, or ERROR with `error` set.
   */
  private parse(src: Uint8Array, end: number): number {
    let state = this.state;
    for (;;) {
      if (state === COMMAND_START) {
        const start = this.cursor;
        if (start >= end) {
          this.state = COMMAND_START;
          return NEED_MORE;
        }
        this.commandStart = start;
        this.argc = 0;
        if (src[start] === STAR) {
          state = COUNT_LINE;
          this.scanPos = start + 1;
        } else {
          state = INLINE_LINE;
          this.scanPos = start;
        }
      }

      if (state === COUNT_LINE || state === BULK_LINE) {
        // Like Redis, a header line ends at its CR, and the byte after the CR is taken as its LF.
        let cr = this.scanPos;
        while (cr < end && src[cr] !== CR) cr++;
        if (cr + 1 >= end) {
          this.scanPos = cr;
          this.state = state;
          if (cr >= end && end - this.cursor > MAX_HEADER_LINE) {
            return this.fail(state === COUNT_LINE ? ProtocolErrors.countTooBig : ProtocolErrors.bulkLengthTooBig);
          }
          return NEED_MORE;
        }
        const lineStart = this.cursor;
        if (state === COUNT_LINE) {
          const count = parseLength(src, lineStart + 1, cr);
          if (count !== count || count > this.maxMultibulkLength) {
            return this.fail(ProtocolErrors.invalidCount);
          }
          this.cursor = cr + 2;
          if (count <= 0) {
            state = COMMAND_START;
            continue;
          }
          this.argsLeft = count;
          state = BULK_LINE;
          this.scanPos = this.cursor;
          continue;
        }
        const kind = src[lineStart]!;
        if (kind !== DOLLAR) {
          return this.fail(ProtocolErrors.expectedBulk(String.fromCharCode(kind)));
        }
        const length = parseLength(src, lineStart + 1, cr);
        if (length !== length || length < 0 || length > this.maxBulkLength) {
          return this.fail(ProtocolErrors.invalidBulkLength);
        }
        this.bulkLength = length;
        this.cursor = cr + 2;
        state = BULK_DATA;
      }

      if (state === BULK_DATA) {
        const dataStart = this.cursor;
        const dataEnd = dataStart + this.bulkLength;
        // Like Redis, the two bytes after the payload are skipped unchecked.
        if (dataEnd + 2 > end) {
          this.state = state;
          return NEED_MORE;
        }
        this.pushArg(dataStart, dataEnd);
        this.cursor = dataEnd + 2;
        if (--this.argsLeft === 0) {
          this.state = COMMAND_START;
          this.inline = false;
          return READY;
        }
        state = BULK_LINE;
        this.scanPos = this.cursor;
        continue;
      }

      // INLINE_LINE
      let lf = this.scanPos;
      while (lf < end && src[lf] !== LF) lf++;
      if (lf >= end) {
        this.scanPos = lf;
        this.state = state;
        if (end - this.cursor > this.maxInlineLength) {
          return this.fail(ProtocolErrors.inlineTooBig);
        }
        return NEED_MORE;
      }
      let lineEnd = lf;
      if (lineEnd > this.cursor && src[lineEnd - 1] === CR) lineEnd--;
      if (!this.splitInline(src, this.cursor, lineEnd)) {
        return this.fail(ProtocolErrors.unbalancedQuotes);
      }
      this.cursor = lf + 1;
      state = COMMAND_START;
      if (this.argc === 0) continue;
      this.state = COMMAND_START;
      this.inline = true;
      this.buf = this.inlineArgs;
      return READY;
    }
  }

  private fail(message: string): number {
    this.error = message;
    this.state = FAILED;
    this.argc = 0;
    return ERROR;
  }

  private pushArg(start: number, end: number): void {
    const argc = this.argc;
    if (argc === this.argStart.length) {
      const starts = new Int32Array(argc * 2);
      const ends = new Int32Array(argc * 2);
      starts.set(this.argStart);
      ends.set(this.argEnd);
      this.argStart = starts;
      this.argEnd = ends;
    }
    this.argStart[argc] = start;
    this.argEnd[argc] = end;
    this.argc = argc + 1;
  }

  /**
   * Splits an inline line into `inlineArgs` exactly as Redis's sdssplitargs does, including its
   * C-string view of the line (a NUL byte ends it). False on unbalanced quotes.
   */
  private splitInline(src: Uint8Array, start: number, end: number): boolean {
    for (let i = start; i < end; i++) {
      if (src[i] === 0) {
        end = i;
        break;
      }
    }
    // Unescaping never lengthens the text, so the line's length bounds the output.
    if (this.inlineArgs.length < end - start) {
      this.inlineArgs = new Uint8Array(Math.max(end - start, 256));
    }
    const out = this.inlineArgs;
    let written = 0;
    let p = start;
    this.argc = 0;
    for (;;) {
      while (p < end && isCSpace(src[p]!)) p++;
      if (p >= end) return true;
      const argBegin = written;
      let inDoubleQuotes = false;
      let inSingleQuotes = false;
      let done = false;
      while (!done) {
        const c = p < end ? src[p]! : 0;
        const following = p + 1 < end ? src[p + 1]! : 0;
        if (inDoubleQuotes) {
          if (c === BACKSLASH && following === 120 /* x */ && p + 3 < end && isHexDigit(src[p + 2]!) && isHexDigit(src[p + 3]!)) {
            out[written++] = hexValue(src[p + 2]!) * 16 + hexValue(src[p + 3]!);
            p += 3;
          } else if (c === BACKSLASH && following !== 0) {
            p++;
            out[written++] = unescapeByte(following);
          } else if (c === DOUBLE_QUOTE) {
            // A closing quote must be followed by a space or by the end of the line.
            if (following !== 0 && !isCSpace(following)) return false;
            done = true;
          } else if (c === 0) {
            return false;
          } else {
            out[written++] = c;
          }
        } else if (inSingleQuotes) {
          if (c === BACKSLASH && following === SINGLE_QUOTE) {
            p++;
            out[written++] = SINGLE_QUOTE;
          } else if (c === SINGLE_QUOTE) {
            if (following !== 0 && !isCSpace(following)) return false;
            done = true;
          } else if (c === 0) {
            return false;
          } else {
            out[written++] = c;
          }
        } else if (c === 32 || c === LF || c === CR || c === 9 || c === 0) {
          done = true;
        } else if (c === DOUBLE_QUOTE) {
          inDoubleQuotes = true;
        } else if (c === SINGLE_QUOTE) {
          inSingleQuotes = true;
        } else {
          out[written++] = c;
        }
        if (p < end) p++;
      }
      this.pushArg(argBegin, written);
    }
  }

  /** After NEED_MORE in a chunk: copies the started command into the assembly buffer. */
  private keepIncompleteTail(): void {
    const chunk = this.chunk;
    if (this.state === COMMAND_START) {
      this.cursor = chunk.length;
      return;
    }
    const start = this.commandStart;
    let required = chunk.length - start;
    if (this.state === BULK_DATA) {
      // Reserve the whole announced payload once instead of doubling towards it.
      required = Math.max(required, this.cursor + this.bulkLength + 2 - start + BULK_RESERVE_SLACK);
    }
    if (this.assembly.length < required) {
      this.allocateAssembly(Math.max(required, MIN_ASSEMBLY_CAPACITY), 0);
    }
    copyBytes(this.assembly, 0, chunk, start, chunk.length);
    this.assemblyLength = chunk.length - start;
    this.shiftOffsets(-start);
    this.assembling = true;
    this.chunkPos = chunk.length;
  }

  /** Copies from the chunk only what the command being assembled can use next. */
  private pullFromChunk(): void {
    const chunk = this.chunk;
    const from = this.chunkPos;
    const available = chunk.length - from;
    let count: number;
    if (this.state === BULK_DATA) {
      count = Math.min(available, this.cursor + this.bulkLength + 2 - this.assemblyLength);
    } else if (this.state === INLINE_LINE) {
      const lf = chunk.indexOf(LF, from);
      count = lf < 0 ? available : lf + 1 - from;
    } else if (this.scanPos < this.assemblyLength) {
      count = 1; // the CR is here; only the byte after it is missing
    } else {
      const cr = chunk.indexOf(CR, from);
      count = cr < 0 ? available : Math.min(available, cr + 2 - from);
    }
    this.appendToAssembly(chunk, from, from + count);
    this.chunkPos = from + count;
  }

  private appendToAssembly(src: Uint8Array, from: number, to: number): void {
    const count = to - from;
    if (this.assemblyLength + count > this.assembly.length) this.makeAssemblyRoom(count);
    copyBytes(this.assembly, this.assemblyLength, src, from, to);
    this.assemblyLength += count;
  }

  private makeAssemblyRoom(extra: number): void {
    // Bytes before the command being parsed are consumed; drop them before growing.
    const keepFrom = this.state === COMMAND_START || this.state === FAILED ? this.cursor : this.commandStart;
    if (keepFrom > 0) {
      this.assembly.copyWithin(0, keepFrom, this.assemblyLength);
      this.assemblyLength -= keepFrom;
      this.shiftOffsets(-keepFrom);
    }
    const required = this.assemblyLength + extra;
    const capacity = this.assembly.length;
    if (required <= capacity) return;
    let next = Math.max(required, capacity * 2, MIN_ASSEMBLY_CAPACITY);
    if (this.state === BULK_DATA) {
      const bulkTotal = this.cursor + this.bulkLength + 2;
      if (bulkTotal >= required) next = Math.max(required, bulkTotal + BULK_RESERVE_SLACK);
    }
    this.allocateAssembly(next, this.assemblyLength);
  }

  private allocateAssembly(capacity: number, keep: number): void {
    // Uninitialized: only bytes [0, assemblyLength) are ever read, and each was written first.
    // Zero-filling a reservation made for an announced `$536870912` would touch half a gigabyte
    // (seconds of stall for every client, RSS that stays) before a single byte of it arrived.
    const next: Uint8Array = Buffer.allocUnsafe(capacity);
    if (keep > 0) copyBytes(next, 0, this.assembly, 0, keep);
    this.assembly = next;
    this.assemblyAllocations++;
  }

  /** The assembled commands are all consumed: parse in place from the chunk again. */
  private leaveAssembly(): void {
    this.assembling = false;
    this.assemblyLength = 0;
    this.cursor = this.chunkPos;
    // A connection that once sent a huge value should not keep its buffer forever.
    if (this.assembly.length > MAX_IDLE_ASSEMBLY_CAPACITY) this.assembly = EMPTY;
  }

  private shiftOffsets(delta: number): void {
    this.cursor += delta;
    this.scanPos += delta;
    this.commandStart += delta;
    const starts = this.argStart;
    const ends = this.argEnd;
    for (let i = 0; i < this.argc; i++) {
      starts[i]! += delta;
      ends[i]! += delta;
    }
  }
}

/**
 * The `*N` / `$N` number as Redis's string2ll reads it: optional '-', no '+', no leading zeros,
 * nothing else. NaN when malformed. Magnitudes beyond 2^53 are refused too (Redis goes to 2^63,
 * but every such count or length is refused anyway except negative counts, which Redis skips).
 */
function parseLength(src: Uint8Array, start: number, end: number): number {
  if (start >= end) return NaN;
  if (end - start === 1 && src[start] === 48) return 0;
  let p = start;
  const negative = src[p] === 45;
  if (negative && ++p === end) return NaN;
  let digit = src[p]! - 48;
  if (digit < 1 || digit > 9) return NaN;
  let value = digit;
  for (p++; p < end; p++) {
    digit = src[p]! - 48;
    if (digit < 0 || digit > 9) return NaN;
    value = value * 10 + digit;
    if (value > Number.MAX_SAFE_INTEGER) return NaN;
  }
  return negative ? -value : value;
}

/** C isspace() in the "C" locale. */
function isCSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

function isHexDigit(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

function hexValue(c: number): number {
  if (c <= 57) return c - 48;
  return (c | 32) - 87;
}

function unescapeByte(c: number): number {
  switch (c) {
    case 110: // n
      return LF;
    case 114: // r
      return CR;
    case 116: // t
      return 9;
    case 98: // b
      return 8;
    case 97: // a
      return 7;
    default:
      return c;
  }
}
