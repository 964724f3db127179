/**
 * Merging the replies of a command that ran on several shards into one reply.
 */

export type MergeKind = "sum" | "concat" | "ok";

const decoder = new TextDecoder();

/** The first error among the parts, if any. */
function firstError(parts: Uint8Array[]): Uint8Array | undefined {
  return parts.find((p) => p[0] === 45 /* - */);
}

/** The number in a `:n\r\n` or `*n\r\n` header at the start of `part`, and where the header ends. */
function header(part: Uint8Array): { n: number; end: number } {
  const cr = part.indexOf(13);
  return { n: Number(decoder.decode(part.subarray(1, cr))), end: cr + 2 };
}

const encoder = new TextEncoder();

/** Merges shard replies: integers summed, arrays concatenated, or one OK; any error wins. */
export function mergeReplies(kind: MergeKind, parts: Uint8Array[]): Uint8Array {
  const error = firstError(parts);
  if (error !== undefined) return error;
  if (kind === "ok") return encoder.encode("+OK\r\n");
  if (kind === "sum") return encoder.encode(`:${parts.reduce((n, p) => n + header(p).n, 0)}\r\n`);
  const headers = parts.map(header);
  const head = encoder.encode(`*${headers.reduce((n, h) => n + h.n, 0)}\r\n`);
  const size = head.length + parts.reduce((n, p, i) => n + p.length - headers[i].end, 0);
  const out = new Uint8Array(size);
  out.set(head);
  let at = head.length;
  parts.forEach((p, i) => {
    out.set(p.subarray(headers[i].end), at);
    at += p.length - headers[i].end;
  });
  return out;
}
