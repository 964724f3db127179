/**
 * The command table: every command a client may send, the shard commands (core/commands/) and
 * the ones the main thread runs (server/commands/), found by the bytes of their name.
 * A new command is one entry in its family's file, listed there in that family's array.
 */
import type { CommandCatalog } from "../core/command_spec.ts";
import { CommandIndex } from "../core/command_index.ts";
import { SHARD_COMMANDS } from "../core/commands.ts";
import type { ShardCommand } from "../core/shard.ts";
import { adminCommands } from "./commands/admin.ts";
import { clientCommands } from "./commands/client.ts";
import { clusterCommands, clusterRoutingCommands } from "./commands/cluster.ts";
import { clusterxCommands } from "./commands/clusterx.ts";
import { configCommands } from "./commands/config.ts";
import { connectionCommands } from "./commands/connection.ts";
import { diagnosticsCommands } from "./commands/diagnostics.ts";
import { infoCommands } from "./commands/info.ts";
import { introspectionCommands } from "./commands/introspection.ts";
import type { ServerCommand } from "./commands/server_command.ts";
import { transactionCommands } from "./commands/transactions.ts";

/** A command a client may send: run by a shard, or by the main thread (route "main"). */
export type Command = ShardCommand | ServerCommand;

const SERVER_COMMANDS: readonly ServerCommand[] = [
  ...connectionCommands,
  ...clientCommands,
  ...infoCommands,
  ...configCommands,
  ...adminCommands,
  ...introspectionCommands,
  ...diagnosticsCommands,
  ...clusterCommands,
  ...clusterxCommands,
  ...clusterRoutingCommands,
  ...transactionCommands,
];

/** Every client command, shard commands first, in their families' order. */
export const COMMANDS: readonly Command[] = [...SHARD_COMMANDS.filter((c) => !c.internal), ...SERVER_COMMANDS];

/** The client commands by the bytes of their name (any case). */
export const COMMAND_INDEX = new CommandIndex<Command>(COMMANDS);

const byName = new Map(COMMANDS.map((c) => [c.name, c]));

/** The table as COMMAND sees it. */
export const COMMAND_CATALOG: CommandCatalog = { all: COMMANDS, find: (name) => byName.get(name) };
