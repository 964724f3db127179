/**
 * Key to shard: Redis Cluster's hash slot, CRC16(key) mod 16384 honouring `{hash tags}`, so the
 * same function can serve cluster mode later. Slots are spread over shards by `slot mod shards`.
 */
import type { ArgList } from "./args.ts";

export const SLOT_COUNT = 16384;

const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let k = 0; k < 8; k++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    t[i] = crc;
  }
  return t;
})();

/** CRC16-CCITT (XModem), as Redis Cluster uses. */
function crc16(buf: Uint8Array, start: number, end: number): number {
  let crc = 0;
  for (let p = start; p < end; p++) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ buf[p]) & 0xff];
  return crc;
}

/** The hash slot of bytes [start, end): only the part inside the first non-empty `{...}` counts. */
export function hashSlot(buf: Uint8Array, start: number, end: number): number {
  let open = -1;
  for (let p = start; p < end; p++) {
    if (buf[p] === 123 /* { */) {
      open = p;
      break;
    }
  }
  if (open >= 0) {
    for (let p = open + 1; p < end; p++) {
      if (buf[p] === 125 /* } */) {
        if (p > open + 1) return crc16(buf, open + 1, p) & (SLOT_COUNT - 1);
        break;
      }
    }
  }
  return crc16(buf, start, end) & (SLOT_COUNT - 1);
}

/** The hash slot of argument i. */
export function argSlot(a: ArgList, i: number): number {
  return hashSlot(a.buf, a.argStart[i], a.argEnd[i]);
}

/** The shard of `workers` that owns the key in bytes [start, end): its slot, spread over the shards. */
export function shardOf(buf: Uint8Array, start: number, end: number, workers: number): number {
  return hashSlot(buf, start, end) % workers;
}

/** The shard that owns the key in argument i. */
export function argShard(a: ArgList, i: number, workers: number): number {
  return hashSlot(a.buf, a.argStart[i], a.argEnd[i]) % workers;
}

/** The positions of arguments `first`..argc of `a` (keys), grouped by the shard of `workers` that owns each, in order. */
export function keysByShard(a: ArgList, first: number, workers: number): Map<number, number[]> {
  const byShard = new Map<number, number[]>();
  for (let i = first; i < a.argc; i++) {
    const s = argShard(a, i, workers);
    const list = byShard.get(s);
    if (list === undefined) byShard.set(s, [i]);
    else list.push(i);
  }
  return byShard;
}
