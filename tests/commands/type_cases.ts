/**
 * The value types as the command tests see them: for each type, the MMAP arguments, sample values
 * (the text sent, the reply expected and its RESP kind), the inputs it must refuse with their
 * errors, and an encoder written independently of mmapd's (DataView, little-endian, x87 layout
 * by BigInt arithmetic) to make files and to check the bytes mmapd writes.
 */

/** How a value travels: RESP2 / RESP3 spelling. */
type ReplyKind =
  | "integer" // `:n` in both
  | "double" // RESP2 bulk string, RESP3 `,`
  | "big" // beyond 64-bit signed range: the exact decimal as a bulk string, in both
  | "bulk"; // bulk string in both

export interface Sample {
  /** The argument sent to VADD / VSET. */
  input: string;
  /** The reply text expected back. */
  text: string;
  kind: ReplyKind;
}

export interface TypeCase {
  /** VTYPE's reply. */
  name: string;
  /** MMAP arguments after the path, without WRITABLE. */
  mmapArgs: string[];
  width: number;
  samples: Sample[];
  /** Inputs refused, each with the whole error reply. */
  refused: [input: string, error: string][];
  /** Writes the value of `input` at `at`, as a C program or numpy would. */
  put(view: DataView, at: number, input: string): void;
}

const int = (input: string): Sample => ({ input, text: input, kind: "integer" });
const dbl = (input: string, text = input): Sample => ({ input, text, kind: "double" });

/** A number text as a double; `inf` and `-inf` as the infinities. */
function numberOf(text: string): number {
  if (/^\+?inf$/i.test(text)) return Infinity;
  if (/^-inf$/i.test(text)) return -Infinity;
  return Number(text);
}

function smallIntCase(
  name: string,
  width: number,
  min: number,
  max: number,
  put: (v: DataView, at: number, n: number) => void,
  extra: string[],
): TypeCase {
  const range = `ERR value must be between ${min} and ${max}`;
  return {
    name,
    mmapArgs: [name],
    width,
    samples: [String(min), String(max), "0", ...extra].map(int),
    refused: [
      [String(min - 1), range],
      [String(max + 1), range],
      ["1.5", "ERR value must be integer"],
      ["abc", "ERR value must be integer"],
      ["", "ERR value must be integer"],
      ["1e3", "ERR value must be integer"],
    ],
    put: (v, at, input) => put(v, at, Number(input)),
  };
}

/** The x87 80-bit extended layout of a double, in 16 bytes (C's long double on x86-64). */
export function x87Bytes(x: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(16);
  const view = new DataView(out.buffer);
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  if (x !== x) {
    view.setBigUint64(0, 0xc000000000000000n, true);
    view.setUint16(8, 0x7fff, true);
  } else if (Math.abs(x) === Infinity) {
    view.setBigUint64(0, 0x8000000000000000n, true);
    view.setUint16(8, sign | 0x7fff, true);
  } else if (x === 0) {
    view.setUint16(8, sign, true);
  } else {
    const bits = new DataView(new ArrayBuffer(8));
    bits.setFloat64(0, Math.abs(x), true);
    const raw = bits.getBigUint64(0, true);
    const biasedExponent = Number(raw >> 52n);
    const fraction = raw & ((1n << 52n) - 1n);
    // |x| = mantissa · 2^power, then normalised so the mantissa's top bit is bit 63.
    let mantissa = biasedExponent === 0 ? fraction : fraction | (1n << 52n);
    let power = biasedExponent === 0 ? -1074 : biasedExponent - 1075;
    while ((mantissa & (1n << 63n)) === 0n) {
      mantissa <<= 1n;
      power--;
    }
    view.setBigUint64(0, mantissa, true);
    view.setUint16(8, sign | (power + 63 + 16383), true);
  }
  return out;
}

export const TYPE_CASES: TypeCase[] = [
  smallIntCase("int8", 1, -128, 127, (v, at, n) => v.setInt8(at, n), ["-1", "42"]),
  smallIntCase("uint8", 1, 0, 255, (v, at, n) => v.setUint8(at, n), ["7"]),
  smallIntCase("int16", 2, -32768, 32767, (v, at, n) => v.setInt16(at, n, true), ["-1", "1000"]),
  smallIntCase("uint16", 2, 0, 65535, (v, at, n) => v.setUint16(at, n, true), ["40000"]),
  smallIntCase("int32", 4, -2147483648, 2147483647, (v, at, n) => v.setInt32(at, n, true), ["-1", "123456789"]),
  smallIntCase("uint32", 4, 0, 4294967295, (v, at, n) => v.setUint32(at, n, true), ["3000000000"]),
  {
    name: "int64",
    mmapArgs: ["int64"],
    width: 8,
    samples: ["-9223372036854775808", "9223372036854775807", "0", "-1", "9007199254740993", "-9007199254740993", "4294967296"].map(int),
    refused: [
      ["9223372036854775808", "ERR value must be between -9223372036854775808 and 9223372036854775807"],
      ["-9223372036854775809", "ERR value must be between -9223372036854775808 and 9223372036854775807"],
      ["1.5", "ERR value must be integer"],
      ["12345678901234567890.5", "ERR value must be integer"],
      ["", "ERR value must be integer"],
    ],
    put: (v, at, input) => v.setBigInt64(at, BigInt(input), true),
  },
  {
    name: "uint64",
    mmapArgs: ["uint64"],
    width: 8,
    samples: [
      { input: "18446744073709551615", text: "18446744073709551615", kind: "big" },
      int("9223372036854775807"),
      { input: "9223372036854775808", text: "9223372036854775808", kind: "big" },
      int("0"),
      int("9007199254740993"),
    ],
    refused: [
      ["18446744073709551616", "ERR value must be between 0 and 18446744073709551615"],
      ["-1", "ERR value must be between 0 and 18446744073709551615"],
      ["x", "ERR value must be integer"],
    ],
    put: (v, at, input) => v.setBigUint64(at, BigInt(input), true),
  },
  {
    name: "float",
    mmapArgs: ["float"],
    width: 4,
    samples: [
      dbl("0.1"),
      dbl("1.5"),
      { input: "-2", text: "-2", kind: "double" },
      dbl("0.3"),
      dbl("16777217", "16777216"),
      dbl("3.4028234663852886e38", "3.4028235e+38"),
      dbl("1e-45"),
      dbl("inf"),
      dbl("-inf"),
      dbl("-0"),
    ],
    refused: [
      ["1e39", "ERR value is out of range for float"],
      ["-1e39", "ERR value is out of range for float"],
      ["1e400", "ERR value is out of range for float"],
      ["nan", "ERR value must be float; NaN is not stored"],
      ["NaN", "ERR value must be float; NaN is not stored"],
      ["abc", "ERR value must be float"],
      ["", "ERR value must be float"],
    ],
    put: (v, at, input) => v.setFloat32(at, numberOf(input), true),
  },
  {
    name: "double",
    mmapArgs: ["double"],
    width: 8,
    samples: [
      dbl("0.1"),
      dbl("2"),
      dbl("-2.5"),
      dbl("1e21", "1e+21"),
      dbl("0.30000000000000004"),
      dbl("1.7976931348623157e308", "1.7976931348623157e+308"),
      dbl("5e-324"),
      dbl("123456789012345680000"),
      dbl("inf"),
      dbl("-inf"),
      dbl("-0"),
    ],
    refused: [
      ["1e400", "ERR value is out of range for double"],
      ["-1e400", "ERR value is out of range for double"],
      ["nan", "ERR value must be double; NaN is not stored"],
      ["-nan", "ERR value must be double; NaN is not stored"],
      ["1,5", "ERR value must be double"],
      ["", "ERR value must be double"],
    ],
    put: (v, at, input) => v.setFloat64(at, numberOf(input), true),
  },
  {
    name: "long_double",
    mmapArgs: ["long_double"],
    width: 16,
    samples: [dbl("1.5"), dbl("0.1"), dbl("-2"), dbl("1e300", "1e+300"), dbl("5e-324"), dbl("inf"), dbl("-inf")],
    refused: [
      ["1e400", "ERR value is out of range for long_double"],
      ["nan", "ERR value must be double; NaN is not stored"],
      ["abc", "ERR value must be double"],
    ],
    put: (v, at, input) => new Uint8Array(v.buffer, v.byteOffset + at, 16).set(x87Bytes(numberOf(input))),
  },
  {
    name: "string",
    mmapArgs: ["string", "8"],
    width: 8,
    samples: [
      { input: "hello", text: "hello", kind: "bulk" },
      { input: "", text: "", kind: "bulk" },
      { input: "12345678", text: "12345678", kind: "bulk" },
      { input: "héllo", text: "héllo", kind: "bulk" },
      { input: "REDUCE", text: "REDUCE", kind: "bulk" },
    ],
    refused: [
      ["123456789", "ERR value is too long (at most 8 bytes)"],
      ["héllo!!!", "ERR value is too long (at most 8 bytes)"],
    ],
    put: (v, at, input) => new Uint8Array(v.buffer, v.byteOffset + at, 8).set(new TextEncoder().encode(input)),
  },
];

/** The file bytes of `inputs` in type `t`, made by the test's own encoder. */
export function encodeFile(t: TypeCase, inputs: string[]): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(inputs.length * t.width);
  const view = new DataView(bytes.buffer);
  for (const [i, input] of inputs.entries()) t.put(view, i * t.width, input);
  return bytes;
}

/** The RESP bytes of one sample's reply in protocol `proto`. */
export function respOf(s: Pick<Sample, "text" | "kind">, proto: 2 | 3): string {
  const bulk = () => `$${Buffer.byteLength(s.text)}\r\n${s.text}\r\n`;
  switch (s.kind) {
    case "integer":
      return `:${s.text}\r\n`;
    case "double":
      return proto === 3 ? `,${s.text}\r\n` : bulk();
    case "big":
      return bulk();
    case "bulk":
      return bulk();
  }
}
