/**
 * Every command the main thread runs itself, as one table.
 */
import { CommandIndex } from "../../core/command_index.ts";
import { connectionCommands } from "./connection_commands.ts";
import type { ServerCommand } from "./server_command.ts";
import { SERVER_COMMANDS_FOR_DOCS, serverCommands } from "./server_commands.ts";

export const SERVER_COMMANDS: readonly ServerCommand[] = [...connectionCommands, ...serverCommands];
SERVER_COMMANDS_FOR_DOCS.push(...SERVER_COMMANDS);

export const SERVER_COMMAND_INDEX = new CommandIndex(SERVER_COMMANDS);
