/**
 * Finding where one RESP2/RESP3 reply ends, so replies written one after another (the parts of
 * a transaction's reply from each shard) can be taken apart without decoding them.
 */

const CR = 13;

/** Where the line starting at `at` ends (the index after its CRLF). */
function lineEnd(buf: Uint8Array, at: number): number {
  return buf.indexOf(CR, at) + 2;
}

/** The integer in a `<type>n\r\n` header at `at`. */
function headerNumber(buf: Uint8Array, at: number): number {
  let p = at + 1;
  let negative = false;
  if (buf[p] === 45 /* - */) {
    negative = true;
    p++;
  }
  let n = 0;
  for (; buf[p] !== CR; p++) n = n * 10 + (buf[p] - 48);
  return negative ? -n : n;
}

/** The index just past the one whole reply that starts at `at`. */
export function replyEnd(buf: Uint8Array, at: number): number {
  switch (buf[at]) {
    case 36 /* $ bulk */:
    case 33 /* ! bulk error */:
    case 61 /* = verbatim */:
      {
        const n = headerNumber(buf, at);
        const body = lineEnd(buf, at);
        return n < 0 ? body : body + n + 2;
      }
    case 42 /* * array */:
    case 126 /* ~ set */:
    case 62 /* > push */:
    case 37 /* % map */:
    case 124 /* | attribute */:
      {
        const n = headerNumber(buf, at);
        let p = lineEnd(buf, at);
        const items = buf[at] === 37 || buf[at] === 124 ? 2 * n : n;
        for (let k = 0; k < items; k++) p = replyEnd(buf, p);
        // An attribute precedes the reply it describes.
        return buf[at] === 124 ? replyEnd(buf, p) : p;
      }
    default: // + - : _ , # ( one line
      return lineEnd(buf, at);
  }
}
