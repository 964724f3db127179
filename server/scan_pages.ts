/**
 * SCAN over several shards. A cursor is (place in SCAN order) * shards + shard (see SCAN in
 * core/commands/keyspace.ts): a shard's last page answers the cursor of the next shard's start,
 * the last shard's answers 0. A shard cannot know whether the shards after it hold keys, so a
 * page that ends its shard goes on into the next shard in the same call, one hop per shard in
 * order, until a page stops inside a shard or the last shard is done. A SCAN therefore answers 0
 * in the call that returns the last keys, and a page holds keys whenever keys remain.
 *
 * Each hop is sent after the previous shard answered, behind whatever this connection sent that
 * shard before, so a pipelined MMAP before the SCAN is seen wherever its key lives.
 */
import type { ArgList } from "../core/args.ts";
import { argIs, argView } from "../core/args.ts";
import { SCAN_DEFAULT_COUNT } from "../core/commands/keyspace.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A shard's SCAN page: its next cursor, its number of keys, and where the keys' bulk strings start. */
interface Page {
  cursor: number;
  keys: number;
  keysAt: number;
}

/** Reads `<type>n\r\n` at `at`: n, and where the line ends. */
function header(part: Uint8Array, at: number): { n: number; end: number } {
  const cr = part.indexOf(13, at);
  return { n: Number(decoder.decode(part.subarray(at + 1, cr))), end: cr + 2 };
}

/** Parses `*2 $len cursor *n keys...`; null for an error reply. */
function parsePage(part: Uint8Array): Page | null {
  if (part[0] !== 42 /* * */) return null;
  const outer = header(part, 0);
  const cursorLength = header(part, outer.end);
  const cursor = Number(decoder.decode(part.subarray(cursorLength.end, cursorLength.end + cursorLength.n)));
  const keys = header(part, cursorLength.end + cursorLength.n + 2);
  return { cursor, keys: keys.n, keysAt: keys.end };
}

/** The pages of one SCAN call merged into one reply: the last page's cursor, every page's keys. */
export function mergeScanPages(parts: Uint8Array[]): Uint8Array {
  const pages = parts.map(parsePage);
  const failed = pages.indexOf(null);
  if (failed >= 0) return parts[failed];
  if (parts.length === 1) return parts[0];
  const cursor = String(pages[pages.length - 1]!.cursor);
  const keys = pages.reduce((n, p) => n + p!.keys, 0);
  const head = encoder.encode(`*2\r\n$${cursor.length}\r\n${cursor}\r\n*${keys}\r\n`);
  const size = head.length + parts.reduce((n, part, i) => n + part.length - pages[i]!.keysAt, 0);
  const out = new Uint8Array(size);
  out.set(head);
  let at = head.length;
  parts.forEach((part, i) => {
    out.set(part.subarray(pages[i]!.keysAt), at);
    at += part.length - pages[i]!.keysAt;
  });
  return out;
}

/**
 * Follows a SCAN call across shards: `nextHop` looks at each shard's page and returns the shard
 * and arguments of the next hop, or null when the call is complete.
 */
export class ScanHops {
  /** The client's arguments after the cursor, with COUNT's value left out (each hop sets its own). */
  private readonly options: Uint8Array[] = [];
  private readonly count: number;
  private returned = 0;

  constructor(
    a: ArgList,
    private readonly shards: number,
  ) {
    let count = SCAN_DEFAULT_COUNT;
    // Options come in pairs (the first shard refuses anything else, and then no hop follows).
    for (let i = 2; i + 1 < a.argc; i += 2) {
      if (argIs(a, i, "count")) count = Number(decoder.decode(argView(a, i + 1)));
      else this.options.push(new Uint8Array(argView(a, i)), new Uint8Array(argView(a, i + 1)));
    }
    this.count = count;
  }

  /**
   * After a shard's page: when it ends a shard that is not the last, the next shard's SCAN from
   * its start, asking for what is left of COUNT (at least 1, to learn whether that shard has keys).
   */
  nextHop(part: Uint8Array): { shard: number; args: (string | Uint8Array)[] } | null {
    const page = parsePage(part);
    if (page === null) return null;
    this.returned += page.keys;
    if (page.cursor === 0 || page.cursor >= this.shards) return null;
    const count = String(Math.max(1, this.count - this.returned));
    return { shard: page.cursor, args: ["scan", String(page.cursor), ...this.options, "COUNT", count] };
  }
}
