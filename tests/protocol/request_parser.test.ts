// Tests for the streaming request parser: framing, splitting at any byte, inline syntax, errors.
import { describe, expect, test } from "bun:test";
import { argInt, argIs, argLength, argString, argView, keyString } from "../../core/args.ts";
import { RequestParser, type ParserLimits } from "../../protocol/request_parser.ts";
import { seededUint32 as seededRandom } from "../helpers/random.ts";

const encoder = new TextEncoder();

/** Bytes of a latin1 string (each char one byte), so tests can spell any byte. */
function bytes(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, "latin1"));
}

/** RESP array-of-bulk encoding of a command whose arguments are latin1 strings. */
function resp(...args: string[]): string {
  let out = `*${args.length}\r\n`;
  for (const arg of args) out += `$${arg.length}\r\n${arg}\r\n`;
  return out;
}

/** The current command's arguments as latin1 strings. */
function argsOf(p: RequestParser): string[] {
  const args: string[] = [];
  for (let i = 0; i < p.argc; i++) {
    args.push(Buffer.from(p.buf.buffer, p.buf.byteOffset + p.argStart[i]!, argLength(p, i)).toString("latin1"));
  }
  return args;
}

interface Outcome {
  commands: string[][];
  inline: boolean[];
  error: string | null;
}

/** Drains every ready command; stops at the first error. */
function drain(p: RequestParser, into: Outcome): number {
  for (;;) {
    const r = p.next();
    if (r === 1) {
      into.commands.push(argsOf(p));
      into.inline.push(p.inline);
      continue;
    }
    if (r === -1) into.error = p.error;
    return r;
  }
}

/**
 * Feeds `input` cut at the given sizes through one reused scratch buffer that is scribbled over
 * after each drain, which proves the parser keeps its own copy of whatever it still needs.
 */
function parseInPieces(input: Uint8Array, sizes: (index: number) => number, limits?: Partial<ParserLimits>): Outcome {
  const p = new RequestParser(limits);
  const out: Outcome = { commands: [], inline: [], error: null };
  const scratch = new Uint8Array(input.length + 1);
  let pos = 0;
  for (let piece = 0; pos < input.length; piece++) {
    const size = Math.min(Math.max(1, sizes(piece)), input.length - pos);
    scratch.set(input.subarray(pos, pos + size));
    pos += size;
    p.feed(scratch.subarray(0, size));
    if (drain(p, out) === -1) return out;
    scratch.fill(0x55, 0, size);
  }
  return out;
}

function parseWhole(input: Uint8Array | string, limits?: Partial<ParserLimits>): Outcome {
  const p = new RequestParser(limits);
  const out: Outcome = { commands: [], inline: [], error: null };
  p.feed(typeof input === "string" ? bytes(input) : input);
  drain(p, out);
  return out;
}

/** A pipeline of `count` commands mixing binary bulks, inline lines and skipped frames. */
function makePipeline(count: number, seed: number): { input: Uint8Array; expected: string[][]; inline: boolean[] } {
  const next = seededRandom(seed);
  const parts: string[] = [];
  const expected: string[][] = [];
  const inline: boolean[] = [];
  for (let c = 0; c < count; c++) {
    const kind = next() % 10;
    if (kind === 0) {
      // Frames Redis skips without a reply, between real commands.
      parts.push(["*0\r\n", "*-1\r\n", "\r\n", "\n", "  \t\r\n"][next() % 5]!);
    }
    if (kind <= 1) {
      const words = ["PING"];
      const extra = next() % 4;
      for (let i = 0; i < extra; i++) words.push("w" + (next() % 100000));
      parts.push(words.join(next() % 2 ? " " : " \t ") + (next() % 2 ? "\r\n" : "\n"));
      expected.push(words);
      inline.push(true);
      continue;
    }
    const argc = 1 + (next() % 6);
    const args: string[] = [];
    for (let i = 0; i < argc; i++) {
      const length = next() % 3 === 0 ? next() % 200 : next() % 12;
      let arg = "";
      for (let k = 0; k < length; k++) arg += String.fromCharCode(next() & 0xff);
      args.push(arg);
    }
    parts.push(resp(...args));
    expected.push(args);
    inline.push(false);
  }
  return { input: bytes(parts.join("")), expected, inline };
}

describe("RESP arrays", () => {
  test("one command, parsed in place from the chunk", () => {
    const p = new RequestParser();
    const chunk = bytes(resp("SET", "key", "value"));
    p.feed(chunk);
    expect(p.next()).toBe(1);
    expect(p.buf).toBe(chunk);
    expect(p.argc).toBe(3);
    expect(p.inline).toBe(false);
    expect(argsOf(p)).toEqual(["SET", "key", "value"]);
    expect(p.next()).toBe(0);
    expect(p.buffered()).toBe(0);
  });

  test("a pipeline of 10,000 commands gives the same arguments whole, byte by byte and in random pieces", () => {
    const { input, expected, inline } = makePipeline(10_000, 1);
    const whole = parseWhole(input);
    expect(whole.error).toBeNull();
    expect(whole.commands.length).toBe(10_000);
    expect(whole.commands).toEqual(expected);
    expect(whole.inline).toEqual(inline);

    const byteByByte = parseInPieces(input, () => 1);
    expect(byteByByte.error).toBeNull();
    expect(byteByByte.commands).toEqual(expected);
    expect(byteByByte.inline).toEqual(inline);

    const next = seededRandom(99);
    const random = parseInPieces(input, () => 1 + (next() % 700));
    expect(random.error).toBeNull();
    expect(random.commands).toEqual(expected);
  });

  test("commands wholly inside a chunk point into it even after a split command", () => {
    const first = resp("GET", "a") + resp("SET", "k", "val");
    const second = resp("GET", "b") + resp("GET", "c");
    const p = new RequestParser();
    const chunk1 = bytes(first.slice(0, first.length - 3));
    p.feed(chunk1);
    expect(p.next()).toBe(1);
    expect(p.buf).toBe(chunk1);
    expect(p.next()).toBe(0);
    const chunk2 = bytes(first.slice(first.length - 3) + second);
    p.feed(chunk2);
    expect(p.next()).toBe(1);
    expect(argsOf(p)).toEqual(["SET", "k", "val"]);
    expect(p.buf).not.toBe(chunk2);
    expect(p.next()).toBe(1);
    expect(argsOf(p)).toEqual(["GET", "b"]);
    expect(p.buf).toBe(chunk2);
    expect(p.next()).toBe(1);
    expect(p.buf).toBe(chunk2);
    expect(argsOf(p)).toEqual(["GET", "c"]);
    expect(p.next()).toBe(0);
  });

  test("an inline command split across chunks does not pull the next commands into the copy", () => {
    const p = new RequestParser();
    p.feed(bytes("SET a "));
    expect(p.next()).toBe(0);
    const chunk2 = bytes("b\r\n" + resp("GET", "a") + "PING\r\n");
    p.feed(chunk2);
    expect(p.next()).toBe(1);
    expect(argsOf(p)).toEqual(["SET", "a", "b"]);
    expect(p.next()).toBe(1);
    expect(argsOf(p)).toEqual(["GET", "a"]);
    expect(p.buf).toBe(chunk2);
    expect(p.next()).toBe(1);
    expect(argsOf(p)).toEqual(["PING"]);
    expect(p.next()).toBe(0);
  });

  test("every split point of a pipeline gives the same commands", () => {
    const input = bytes(resp("SET", "k\r\n", "\x00\xff\r\n$3\r\n") + 'PING "a b"\r\n' + "*0\r\n" + resp("", "x".repeat(40)) + resp("Q"));
    const expected = parseWhole(input);
    expect(expected.commands).toEqual([["SET", "k\r\n", "\x00\xff\r\n$3\r\n"], ["PING", "a b"], ["", "x".repeat(40)], ["Q"]]);
    for (let a = 0; a <= input.length; a++) {
      const sizes = [a, input.length - a];
      const out = parseInPieces(input, (i) => sizes[i] ?? input.length);
      expect(out).toEqual(expected);
    }
    for (let a = 1; a < input.length; a += 3) {
      for (let b = 1; a + b < input.length; b += 5) {
        const sizes = [a, b];
        const out = parseInPieces(input, (i) => sizes[i] ?? input.length);
        expect(out).toEqual(expected);
      }
    }
  });

  test("bulk strings are binary-safe: every byte value and embedded CRLF", () => {
    let all = "";
    for (let i = 0; i < 256; i++) all += String.fromCharCode(i);
    const value = all + "\r\n" + all + "\r\n*1\r\n$1\r\n";
    const input = bytes(resp("ECHO", value, "\r\n", ""));
    for (const out of [parseWhole(input), parseInPieces(input, () => 1), parseInPieces(input, () => 17)]) {
      expect(out.error).toBeNull();
      expect(out.commands).toEqual([["ECHO", value, "\r\n", ""]]);
    }
  });

  test("*0, *-1 and other non-positive counts are skipped silently", () => {
    const out = parseWhole("*0\r\n*-1\r\n*-10\r\n" + resp("PING"));
    expect(out.error).toBeNull();
    expect(out.commands).toEqual([["PING"]]);
  });

  test("a 100 MB bulk in 64 KiB chunks arrives intact with O(1) buffer allocations", () => {
    const size = 100 * 1024 * 1024;
    const head = bytes(`*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$${size}\r\n`);
    const tail = bytes("\r\n" + resp("GET", "big"));
    const input = new Uint8Array(head.length + size + tail.length);
    input.set(head, 0);
    for (let i = 0; i < size; i += 4096) input[head.length + i] = (i / 4096) & 0xff;
    input[head.length + size - 1] = 0xab;
    input.set(tail, head.length + size);

    const p = new RequestParser();
    const chunkSize = 64 * 1024;
    const seen: string[] = [];
    let value: Uint8Array | null = null;
    for (let pos = 0; pos < input.length; pos += chunkSize) {
      p.feed(input.subarray(pos, Math.min(pos + chunkSize, input.length)));
      for (;;) {
        const r = p.next();
        expect(r).not.toBe(-1);
        if (r !== 1) break;
        seen.push(argString(p, 0));
        if (p.argc === 3) {
          expect(argString(p, 1)).toBe("big");
          expect(argLength(p, 2)).toBe(size);
          value = p.buf.subarray(p.argStart[2]!, p.argEnd[2]!);
          expect(Buffer.compare(value, input.subarray(head.length, head.length + size))).toBe(0);
        }
      }
      if (value === null) expect(p.buffered()).toBe(Math.min(pos + chunkSize, input.length));
    }
    expect(seen).toEqual(["SET", "GET"]);
    expect(value).not.toBeNull();
    // The first chunk announces the size: the buffer is allocated once, at full size.
    expect(p.assemblyAllocations).toBe(1);
  });

  test("a large bulk whose header is itself split still reserves its size once", () => {
    const size = 5_000_000;
    const input = bytes(`*2\r\n$4\r\nECHO\r\n$${size}\r\n` + "z".repeat(size) + "\r\n");
    const p = new RequestParser();
    const out: Outcome = { commands: [], inline: [], error: null };
    p.feed(input.subarray(0, 17)); // ends inside "$5000000"
    drain(p, out);
    for (let pos = 17; pos < input.length; pos += 1000) {
      p.feed(input.subarray(pos, Math.min(pos + 1000, input.length)));
      drain(p, out);
    }
    expect(out.error).toBeNull();
    expect(out.commands.length).toBe(1);
    expect(out.commands[0]![1]!.length).toBe(size);
    // Once for the cut header, once at full size when the length is known.
    expect(p.assemblyAllocations).toBe(2);
  });

  test("feeding again before draining keeps the unparsed rest of the previous chunk", () => {
    const p = new RequestParser();
    const chunk1 = bytes(resp("A") + resp("B") + resp("C").slice(0, 5));
    p.feed(chunk1);
    expect(p.next()).toBe(1);
    expect(argsOf(p)).toEqual(["A"]);
    const chunk2 = bytes(resp("C").slice(5) + resp("D"));
    p.feed(chunk2);
    chunk1.fill(0x55);
    const out: Outcome = { commands: [], inline: [], error: null };
    expect(drain(p, out)).toBe(0);
    expect(out.commands).toEqual([["B"], ["C"], ["D"]]);
  });

  test("feeding again right after an assembled command keeps the rest of the chunk it came from", () => {
    const p = new RequestParser();
    const a = resp("SET", "a", "1");
    p.feed(bytes(a.slice(0, 7)));
    expect(p.next()).toBe(0);
    const chunk2 = bytes(a.slice(7) + resp("B") + resp("C"));
    p.feed(chunk2);
    expect(p.next()).toBe(1);
    expect(argsOf(p)).toEqual(["SET", "a", "1"]);
    p.feed(bytes(resp("D")));
    chunk2.fill(0x55);
    const out: Outcome = { commands: [], inline: [], error: null };
    expect(drain(p, out)).toBe(0);
    expect(out.commands).toEqual([["B"], ["C"], ["D"]]);
  });

  test("buffered() counts the bytes of the incomplete command", () => {
    const p = new RequestParser();
    const text = resp("PING") + resp("SET", "k", "v");
    p.feed(bytes(text.slice(0, 20)));
    expect(p.next()).toBe(1);
    expect(p.next()).toBe(0);
    expect(p.buffered()).toBe(20 - resp("PING").length);
    p.feed(bytes(text.slice(20)));
    expect(p.next()).toBe(1);
    expect(argsOf(p)).toEqual(["SET", "k", "v"]);
    expect(p.next()).toBe(0);
    expect(p.buffered()).toBe(0);
  });

  test("argument arrays grow for many arguments and are reused", () => {
    const args = Array.from({ length: 1000 }, (_, i) => String(i));
    const out = parseWhole(resp("DEL", ...args) + resp("GET", "x"));
    expect(out.commands).toEqual([
      ["DEL", ...args],
      ["GET", "x"],
    ]);
  });
});

describe("inline commands", () => {
  const cases: [string, string[]][] = [
    ["PING\r\n", ["PING"]],
    ["PING\n", ["PING"]],
    ["  GET\t\tkey  \r\n", ["GET", "key"]],
    ["SET \"a b\" 'c d'\r\n", ["SET", "a b", "c d"]],
    ['ECHO "\\n\\r\\t\\b\\a\\\\\\"\\x41\\x7a\\xzz\\q"\r\n', ["ECHO", '\n\r\t\b\x07\\"Azxzzq']],
    ['ECHO "\\x00\\xFF"\n', ["ECHO", "\x00\xff"]],
    ["ECHO 'it\\'s' 'a\\nb' 'x\"y'\r\n", ["ECHO", "it's", "a\\nb", 'x"y']],
    ['SET k ""\r\n', ["SET", "k", ""]],
    ["SET k ''\r\n", ["SET", "k", ""]],
    ['foo"bar" baz\r\n', ["foobar", "baz"]],
    ["a\x0bb c\r\n", ["a\x0bb", "c"]],
    ['ECHO "a"\x0b\r\n', ["ECHO", "a"]],
    ["ECHO a\rb\r\n", ["ECHO", "a", "b"]],
    ["ECHO a\x00ignored\r\n", ["ECHO", "a"]],
  ];
  for (const [line, args] of cases) {
    test(JSON.stringify(line), () => {
      for (const out of [parseWhole(line), parseInPieces(bytes(line), () => 1)]) {
        expect(out.error).toBeNull();
        expect(out.commands).toEqual([args]);
        expect(out.inline).toEqual([true]);
      }
    });
  }

  test("empty and blank lines are skipped", () => {
    const out = parseWhole("\r\n\n   \r\n\t\nPING\r\n");
    expect(out.commands).toEqual([["PING"]]);
  });

  test("inline and RESP commands mix in one pipeline", () => {
    const out = parseWhole("PING\r\n" + resp("GET", "k") + "SET a b\n");
    expect(out.commands).toEqual([["PING"], ["GET", "k"], ["SET", "a", "b"]]);
    expect(out.inline).toEqual([true, false, true]);
  });
});

describe("protocol errors", () => {
  const errorCases: [string, string, Partial<ParserLimits>?][] = [
    ["*abc\r\n", "ERR Protocol error: invalid multibulk length"],
    ["*\r\n", "ERR Protocol error: invalid multibulk length"],
    ["*01\r\n", "ERR Protocol error: invalid multibulk length"],
    ["*-0\r\n", "ERR Protocol error: invalid multibulk length"],
    ["*+1\r\n", "ERR Protocol error: invalid multibulk length"],
    ["*1 \r\n", "ERR Protocol error: invalid multibulk length"],
    ["*2147483648\r\n", "ERR Protocol error: invalid multibulk length"],
    ["*99999999999999999999999\r\n", "ERR Protocol error: invalid multibulk length"],
    ["*11\r\n", "ERR Protocol error: invalid multibulk length", { maxMultibulkLength: 10 }],
    ["*1\r\nfoo\r\n", "ERR Protocol error: expected '$', got 'f'"],
    ["*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n", "ERR Protocol error: expected '$', got 'f'"],
    ["*1\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"],
    ["*1\r\n$abc\r\n", "ERR Protocol error: invalid bulk length"],
    ["*1\r\n$\r\n", "ERR Protocol error: invalid bulk length"],
    ["*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"],
    ["*1\r\n$01\r\n", "ERR Protocol error: invalid bulk length"],
    ["*1\r\n$536870913\r\n", "ERR Protocol error: invalid bulk length"],
    ["*1\r\n$11\r\n", "ERR Protocol error: invalid bulk length", { maxBulkLength: 10 }],
    ['SET "abc\r\n', "ERR Protocol error: unbalanced quotes in request"],
    ["SET 'abc\r\n", "ERR Protocol error: unbalanced quotes in request"],
    ['SET "a"b\r\n', "ERR Protocol error: unbalanced quotes in request"],
    ["SET 'a'b\r\n", "ERR Protocol error: unbalanced quotes in request"],
    ['SET "a\\"\r\n', "ERR Protocol error: unbalanced quotes in request"],
  ];
  for (const [input, message, limits] of errorCases) {
    test(`${JSON.stringify(input)} -> ${message}`, () => {
      for (const out of [parseWhole(input, limits), parseInPieces(bytes(input), () => 1, limits)]) {
        expect(out.error).toBe(message);
      }
    });
  }

  test("commands before the error are still delivered, and the parser stays failed", () => {
    const p = new RequestParser();
    p.feed(bytes(resp("PING") + "*1\r\n$x\r\n" + resp("PING")));
    expect(p.next()).toBe(1);
    expect(p.next()).toBe(-1);
    expect(p.error).toBe("ERR Protocol error: invalid bulk length");
    expect(p.next()).toBe(-1);
  });

  test("a count line may wait up to 64 KiB for its CR, then is refused", () => {
    const p = new RequestParser();
    p.feed(bytes("*" + "1".repeat(64 * 1024 - 1)));
    expect(p.next()).toBe(0);
    p.feed(bytes("1"));
    expect(p.next()).toBe(-1);
    expect(p.error).toBe("ERR Protocol error: too big mbulk count string");
  });

  test("a bulk length line may wait up to 64 KiB for its CR, then is refused", () => {
    const p = new RequestParser();
    p.feed(bytes("*2\r\n$4\r\nECHO\r\n$" + "1".repeat(64 * 1024 - 1)));
    expect(p.next()).toBe(0);
    p.feed(bytes("1"));
    expect(p.next()).toBe(-1);
    expect(p.error).toBe("ERR Protocol error: too big bulk count string");
  });

  test("the header line size is checked before the '$'", () => {
    const out = parseWhole("*1\r\n" + "X".repeat(70_000));
    expect(out.error).toBe("ERR Protocol error: too big bulk count string");
  });

  test("an inline line may wait up to the inline limit for its newline, then is refused", () => {
    const p = new RequestParser();
    p.feed(bytes("a".repeat(64 * 1024)));
    expect(p.next()).toBe(0);
    p.feed(bytes("a"));
    expect(p.next()).toBe(-1);
    expect(p.error).toBe("ERR Protocol error: too big inline request");

    const small = parseInPieces(bytes("GET " + "k".repeat(100)), () => 7, { maxInlineLength: 100 });
    expect(small.error).toBe("ERR Protocol error: too big inline request");
    const fits = parseWhole("GET " + "k".repeat(95) + "\r\n", { maxInlineLength: 100 });
    expect(fits.commands).toEqual([["GET", "k".repeat(95)]]);
  });
});

describe("the parser's arguments through core/args.ts", () => {
  // What commands read the parser's output with: the helpers of core/args.ts, which take any
  // ArgList (the parser's offsets, or a ring record's in a shard worker).
  function parsed(...args: string[]): RequestParser {
    const p = new RequestParser();
    p.feed(bytes(resp(...args)));
    expect(p.next()).toBe(1);
    return p;
  }

  test("argIs compares ASCII case-insensitively", () => {
    const p = parsed("GeT", "gets", "[", "EX", "");
    expect(argIs(p, 0, "get")).toBe(true);
    expect(argIs(p, 0, "set")).toBe(false);
    expect(argIs(p, 1, "get")).toBe(false);
    expect(argIs(p, 2, "{")).toBe(false);
    expect(argIs(p, 2, "[")).toBe(true);
    expect(argIs(p, 3, "ex")).toBe(true);
    expect(argIs(p, 4, "")).toBe(true);
  });

  test("argInt reads decimal integers within 2^53, with an optional sign", () => {
    const texts = [
      "123",
      "-45",
      "007",
      "-0",
      "0",
      "",
      "-",
      "+1",
      "1.5",
      " 1",
      "1 ",
      "1e3",
      "9007199254740991",
      "9007199254740992",
      "-9007199254740991",
      "00000000000000000000000001",
      "99999999999999999999",
      "+",
      "+-1",
    ];
    const p = parsed(...texts);
    const values = texts.map((_, i) => argInt(p, i));
    expect(values).toEqual([
      123,
      -45,
      7,
      -0,
      0,
      NaN,
      NaN,
      1,
      NaN,
      NaN,
      NaN,
      NaN,
      9007199254740991,
      NaN,
      -9007199254740991,
      1,
      NaN,
      NaN,
      NaN,
    ]);
    // "-0" is zero (its sign is kept; every caller compares it as a number).
    expect(argInt(p, 3) === 0).toBe(true);
  });

  test("argLength, argString, argView and keyString", () => {
    const p = new RequestParser();
    const utf8 = encoder.encode("héllo");
    const head = bytes("*2\r\n$3\r\nkey\r\n$6\r\n");
    const chunk = new Uint8Array(head.length + utf8.length + 2);
    chunk.set(head);
    chunk.set(utf8, head.length);
    chunk.set(bytes("\r\n"), head.length + utf8.length);
    p.feed(chunk);
    expect(p.next()).toBe(1);
    expect(argLength(p, 0)).toBe(3);
    expect(argLength(p, 1)).toBe(6);
    expect(argString(p, 1)).toBe("héllo");
    expect(argView(p, 1)).toEqual(utf8);
    // A key keeps its bytes: one latin1 char per byte.
    expect(keyString(p, 1)).toBe(Buffer.from(utf8).toString("latin1"));
  });

  test("helpers work on inline commands", () => {
    const p = new RequestParser();
    p.feed(bytes('INCRBY "counter" -12\r\n'));
    expect(p.next()).toBe(1);
    expect(p.inline).toBe(true);
    expect(argIs(p, 0, "incrby")).toBe(true);
    expect(argString(p, 1)).toBe("counter");
    expect(argInt(p, 2)).toBe(-12);
  });
});
