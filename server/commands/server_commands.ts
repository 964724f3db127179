/**
 * Server commands: COMMAND, CONFIG, INFO, TIME, SAVE, BGSAVE, LASTSAVE, SHUTDOWN, DEBUG.
 */
import os from "node:os";
import { argIs, argString } from "../../core/args.ts";
import { SHARD_COMMANDS } from "../../core/commands.ts";
import { CommandError, Errors } from "../../core/errors.ts";
import { globMatch } from "../../core/glob.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import { applySetting, ConfigError } from "../config.ts";
import type { MmapdServer } from "../server.ts";
import type { ServerCommand } from "./server_command.ts";
import { DEFERRED } from "./server_command.ts";

/** CONFIG parameters: how to read each, and how to set it (absent: immutable while running). */
interface Parameter {
  get(server: MmapdServer): string;
  set?(server: MmapdServer, value: string): void;
}

const PARAMETERS: Record<string, Parameter> = {
  port: { get: (s) => String(s.port) },
  bind: { get: (s) => s.config.bind },
  dir: { get: (s) => s.dataDir },
  workers: { get: (s) => String(s.config.workers) },
  databases: { get: () => "1" },
  requirepass: { get: (s) => s.config.requirepass, set: (s, v) => applySetting(s.config, "requirepass", v) },
  maxclients: { get: (s) => String(s.config.maxclients), set: (s, v) => applySetting(s.config, "maxclients", v) },
  timeout: {
    get: (s) => String(s.config.timeout),
    set: (s, v) => {
      applySetting(s.config, "timeout", v);
      s.setTimeoutSeconds(s.config.timeout);
    },
  },
  fsync: {
    get: (s) => s.config.fsync,
    set: (s, v) => {
      applySetting(s.config, "fsync", v);
      s.pool.setFsync(s.config.fsync);
    },
  },
  // Redis's names for the same policy, so tools that set appendfsync work.
  appendfsync: { get: (s) => s.config.fsync, set: (s, v) => PARAMETERS.fsync.set!(s, v) },
  "allow-any-path": { get: (s) => (s.config.allowAnyPath ? "yes" : "no") },
  "protected-mode": { get: (s) => (s.config.protectedMode ? "yes" : "no"), set: (s, v) => applySetting(s.config, "protected-mode", v) },
  loglevel: { get: (s) => s.config.loglevel, set: (s, v) => applySetting(s.config, "loglevel", v) },
  "client-query-buffer-limit": { get: (s) => String(s.config.clientQueryBufferLimit), set: (s, v) => applySetting(s.config, "client-query-buffer-limit", v) },
  "client-output-buffer-limit": { get: (s) => String(s.config.clientOutputBufferLimit), set: (s, v) => applySetting(s.config, "client-output-buffer-limit", v) },
  "proto-max-bulk-len": { get: (s) => String(s.config.protoMaxBulkLen) },
  // Files are the data: there is no snapshot or AOF. Accepted so that tools which set them work.
  save: { get: () => "", set: () => {} },
  appendonly: { get: () => "no", set: () => {} },
};

function configCommand(server: MmapdServer, a: import("../../core/args.ts").ArgList, w: ReplyWriter): void {
  const sub = argString(a, 1).toLowerCase();
  if (sub === "get") {
    if (a.argc < 3) throw new CommandError(Errors.wrongArity("config|get"));
    const found = new Map<string, string>();
    for (let i = 2; i < a.argc; i++) {
      const pattern = argString(a, i).toLowerCase();
      for (const name of Object.keys(PARAMETERS)) if (globMatch(pattern, name)) found.set(name, PARAMETERS[name].get(server));
    }
    w.map(found.size);
    for (const [k, v] of found) {
      w.bulk(k);
      w.bulk(v);
    }
    return;
  }
  if (sub === "set") {
    if (a.argc < 4 || a.argc % 2 !== 0) throw new CommandError(Errors.wrongArity("config|set"));
    // Check every pair before applying any, as Redis does.
    const pairs: [Parameter, string, string][] = [];
    for (let i = 2; i < a.argc; i += 2) {
      const name = argString(a, i).toLowerCase();
      const p = PARAMETERS[name];
      if (p === undefined) throw new CommandError(`ERR Unknown option or number of arguments for CONFIG SET - '${argString(a, i)}'`);
      if (p.set === undefined) throw new CommandError(`ERR CONFIG SET failed (possibly related to argument '${name}') - can't set immutable config`);
      pairs.push([p, name, argString(a, i + 1)]);
    }
    const trial = structuredClone(server.config);
    for (const [, name, value] of pairs) {
      try {
        if (name !== "save" && name !== "appendonly") applySetting(trial, name === "appendfsync" ? "fsync" : name, value);
      } catch (e) {
        if (e instanceof ConfigError) throw new CommandError(`ERR CONFIG SET failed (possibly related to argument '${name}') - ${e.message}`);
        throw e;
      }
    }
    for (const [p, , value] of pairs) p.set!(server, value);
    w.simple("OK");
    return;
  }
  if (sub === "resetstat") {
    server.stats.commandsProcessed = 0;
    server.stats.connectionsReceived = 0;
    w.simple("OK");
    return;
  }
  if (sub === "rewrite") throw new CommandError("ERR The server is running without a config file");
  throw new CommandError(`ERR unknown subcommand '${argString(a, 1)}'. Try CONFIG HELP.`);
}

/** INFO's text for the sections asked for (default: all). */
export function infoText(server: MmapdServer, sections: string[]): string {
  const want = (name: string) => sections.length === 0 || sections.includes("all") || sections.includes("everything") || sections.includes("default") || sections.includes(name);
  const mem = process.memoryUsage();
  const uptime = Math.floor((Date.now() - server.stats.startedAt) / 1000);
  const shardStats = server.pool.stats();
  const out: string[] = [];
  const section = (name: string, fields: [string, string | number][]) => {
    if (!want(name.toLowerCase())) return;
    out.push(`# ${name}\r\n` + fields.map(([k, v]) => `${k}:${v}\r\n`).join(""));
  };
  section("Server", [
    ["mmapd_version", server.version],
    ["redis_version", "7.2.0"],
    ["redis_mode", "standalone"],
    ["os", `${os.type()} ${os.release()} ${os.arch()}`],
    ["arch_bits", 64],
    ["process_id", process.pid],
    ["run_id", server.runId],
    ["tcp_port", server.port],
    ["uptime_in_seconds", uptime],
    ["uptime_in_days", Math.floor(uptime / 86400)],
    ["executable", process.argv[1] ?? ""],
    ["bun_version", Bun.version],
    ["workers", server.config.workers],
  ]);
  section("Clients", [
    ["connected_clients", server.connections.size],
    ["maxclients", server.config.maxclients],
    ["blocked_clients", 0],
  ]);
  section("Memory", [
    ["used_memory", mem.heapUsed],
    ["used_memory_rss", mem.rss],
    ["used_memory_peak", mem.rss],
    ["mapped_files", server.registry.bindings.size],
    ["total_system_memory", os.totalmem()],
  ]);
  section("Persistence", [
    ["loading", 0],
    ["fsync_policy", server.config.fsync],
    ["bindings", server.registry.bindings.size],
    ["bindings_failed", server.stats.bindingsFailed.size],
    ["bindings_registry", server.registryFile],
    ["last_save_time", server.stats.lastSave],
    ["rdb_changes_since_last_save", 0],
    ["aof_enabled", 0],
  ]);
  section("Stats", [
    ["total_connections_received", server.stats.connectionsReceived],
    ["total_commands_processed", server.stats.commandsProcessed],
    ["rejected_connections", server.stats.rejectedConnections],
    ["total_error_replies", 0],
    ["protocol_errors", server.stats.protocolErrors],
    ["client_output_buffer_limit_disconnections", server.stats.outputLimitDisconnects],
    ["shard_restarts", server.stats.shardRestarts],
  ]);
  section(
    "Shards",
    shardStats.flatMap((s, i) => [[`shard${i}`, `alive=${s.alive ? 1 : 0},commands=${s.sent},in_flight=${s.inFlight}`] as [string, string]]),
  );
  const failed = [...server.stats.bindingsFailed.entries()];
  if (failed.length > 0 && want("persistence")) out.push("# Failed bindings\r\n" + failed.map(([k, why]) => `${k.replace(/[\r\n:]/g, " ")}:${why.replace(/[\r\n]/g, " ")}\r\n`).join(""));
  section("Keyspace", server.registry.bindings.size > 0 ? [["db0", `keys=${server.registry.bindings.size},expires=0,avg_ttl=0`]] : []);
  return out.join("\r\n");
}

/** COMMAND's description of one command: name, arity, flags, first/last key, step, and empty lists. */
function describe(w: ReplyWriter, name: string, arity: number, keyed: boolean, write: boolean): void {
  w.array(10);
  w.bulk(name);
  w.integer(arity);
  w.set(1);
  w.simple(write ? "write" : keyed ? "readonly" : "fast");
  w.integer(keyed ? 1 : 0);
  w.integer(keyed ? (arity < 0 && ["del", "unlink", "exists"].includes(name) ? -1 : 1) : 0);
  w.integer(keyed ? 1 : 0);
  w.set(0);
  w.array(0);
  w.array(0);
  w.array(0);
}

const WRITE_COMMANDS = new Set(["mmap", "vset", "vadd", "vpop", "vclear", "del", "unlink", "flushdb", "flushall"]);

function allCommands(): { name: string; arity: number; keyed: boolean }[] {
  const shard = SHARD_COMMANDS.filter((c) => !c.internal).map((c) => ({ name: c.name, arity: c.arity, keyed: c.route === "key" || c.route === "keys" }));
  return [...shard, ...SERVER_COMMANDS_FOR_DOCS.map((c) => ({ name: c.name, arity: c.arity, keyed: false }))];
}

/** Filled by commands/index.ts so COMMAND can list the server commands too. */
export const SERVER_COMMANDS_FOR_DOCS: ServerCommand[] = [];

const command: ServerCommand = {
  name: "command",
  arity: -1,
  run(_server, _conn, a, w) {
    const list = allCommands();
    if (a.argc === 1) {
      w.array(list.length);
      for (const c of list) describe(w, c.name, c.arity, c.keyed, WRITE_COMMANDS.has(c.name));
      return;
    }
    const sub = argString(a, 1).toLowerCase();
    if (sub === "count") w.integer(list.length);
    else if (sub === "info") {
      const names = a.argc === 2 ? list.map((c) => c.name) : Array.from({ length: a.argc - 2 }, (_, k) => argString(a, k + 2).toLowerCase());
      w.array(names.length);
      for (const n of names) {
        const c = list.find((x) => x.name === n);
        if (c === undefined) w.nilArray();
        else describe(w, c.name, c.arity, c.keyed, WRITE_COMMANDS.has(c.name));
      }
    } else if (sub === "docs") w.map(0);
    else if (sub === "list") {
      w.array(list.length);
      for (const c of list) w.bulk(c.name);
    } else throw new CommandError(`ERR unknown subcommand '${argString(a, 1)}'. Try COMMAND HELP.`);
  },
};

export const serverCommands: ServerCommand[] = [
  command,
  {
    name: "config",
    arity: -2,
    run(server, _conn, a, w) {
      configCommand(server, a, w);
    },
  },
  {
    name: "info",
    arity: -1,
    run(server, _conn, a, w) {
      const sections = Array.from({ length: a.argc - 1 }, (_, k) => argString(a, k + 1).toLowerCase());
      w.verbatim(infoText(server, sections));
    },
  },
  {
    name: "time",
    arity: 1,
    run(_server, _conn, _a, w) {
      const micros = BigInt(Math.floor(performance.timeOrigin * 1000 + performance.now() * 1000));
      w.array(2);
      w.bulk(String(micros / 1_000_000n));
      w.bulk(String(micros % 1_000_000n));
    },
  },
  {
    name: "lastsave",
    arity: 1,
    run(server, _conn, _a, w) {
      w.integer(server.stats.lastSave);
    },
  },
  {
    name: "save",
    arity: 1,
    run(server, conn, _a, _w, seq) {
      server.flushEverything((error) => server.replyTo(conn, seq, (w) => (error === null ? w.simple("OK") : w.error("ERR " + error))));
      return DEFERRED;
    },
  },
  {
    name: "bgsave",
    arity: -1,
    run(server, _conn, a, w) {
      if (a.argc > 2 || (a.argc === 2 && !argIs(a, 1, "schedule"))) throw new CommandError(Errors.syntax);
      server.flushEverything(() => {});
      w.simple("Background saving started");
    },
  },
  {
    name: "shutdown",
    arity: -1,
    run(server, _conn, a, _w) {
      for (let i = 1; i < a.argc; i++) {
        if (!["nosave", "save", "now", "force", "abort"].some((word) => argIs(a, i, word))) throw new CommandError(Errors.syntax);
        if (argIs(a, i, "abort")) throw new CommandError("ERR No shutdown in progress.");
      }
      server.shutdown(0, "SHUTDOWN");
      // Like Redis, a successful SHUTDOWN sends no reply: the connection closes.
      return DEFERRED;
    },
  },
  {
    name: "debug",
    arity: -2,
    run(server, _conn, a, w) {
      if (!server.config.enableDebugCommand) {
        throw new CommandError("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
      }
      if (argIs(a, 1, "crash-shard") && a.argc === 3) {
        const shard = Number(argString(a, 2));
        if (!(shard >= 0 && shard < server.config.workers)) throw new CommandError("ERR no such shard");
        server.pool.crash(shard);
        w.simple("OK");
        return;
      }
      throw new CommandError("ERR DEBUG subcommand must be CRASH-SHARD <n>");
    },
  },
];
