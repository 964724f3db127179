/**
 * The task a format pool thread runs (see format_pool.ts): the text replies of one chunk of values
 * whose bytes the shard copied into the task's input slot, written into its output slot. The
 * thread never sees a mapping; the slots are shared memory given once, in workerData.
 */
import { workerData } from "node:worker_threads";
import { VALUE_TYPES } from "../core/value_types.ts";
import { ReplyWriter } from "../protocol/reply_writer.ts";
import type { FormatSlots, FormatTask } from "./format_pool.ts";

const { input, output, inputSlotBytes, outputSlotBytes } = workerData as FormatSlots;
const writer = new ReplyWriter(64);

/** Formats the task's values; returns the length of their replies in the output slot. */
export default function format(task: FormatTask): number {
  const type = VALUE_TYPES.get(task.typeName)!;
  const width = type.width;
  const bytes = new Uint8Array(input, task.slot * inputSlotBytes, task.count * width);
  const view = new DataView(input, task.slot * inputSlotBytes, task.count * width);
  const slotOutput = new Uint8Array(output, task.slot * outputSlotBytes, outputSlotBytes);
  // Written straight into the slot; a reply that outgrew it (it cannot: the slot allows every
  // value its longest text) would have moved to a private buffer, and is copied back.
  writer.buf = slotOutput;
  writer.reset();
  writer.proto = task.proto;
  for (let at = 0, end = task.count * width; at < end; at += width) type.reply(writer, view, bytes, at, width);
  if (writer.buf !== slotOutput) {
    if (writer.length > outputSlotBytes) throw new RangeError(`format task: ${writer.length} bytes do not fit a slot`);
    slotOutput.set(writer.buf.subarray(0, writer.length));
  }
  return writer.length;
}
