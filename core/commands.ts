/**
 * Every command a shard runs, as one table. Adding a command means one entry in its family's file.
 */
import { CommandIndex } from "./command_index.ts";
import { analyticsCommands } from "./commands/analytics.ts";
import { keyspaceCommands } from "./commands/keyspace.ts";
import { listCommands } from "./commands/lists.ts";
import { memoryCommand } from "./commands/memory.ts";
import { mmapCommand, restoreBindingCommand } from "./commands/mmap.ts";
import { rawWriteCommands } from "./commands/raw_writes.ts";
import { readCommands } from "./commands/read.ts";
import { transactionCommands } from "./commands/transaction.ts";
import { writeCommands } from "./commands/write.ts";
import type { ShardCommand } from "./shard.ts";

/** Shard commands in a fixed order: a command's position is its id on the wire between threads. */
export const SHARD_COMMANDS: readonly ShardCommand[] = [
  mmapCommand,
  restoreBindingCommand,
  ...readCommands,
  ...writeCommands,
  ...keyspaceCommands,
  ...analyticsCommands,
  ...rawWriteCommands,
  memoryCommand,
  ...listCommands,
  ...transactionCommands(() => SHARD_COMMANDS),
];

/** The shard commands by name. */
export const SHARD_COMMAND_INDEX = new CommandIndex(SHARD_COMMANDS);

/** A command's id (its position in SHARD_COMMANDS). */
export const shardCommandId = new Map(SHARD_COMMANDS.map((c, i) => [c, i]));
