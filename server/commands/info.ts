/**
 * INFO: the server's state and counters as `field:value` lines in sections.
 */
import os from "node:os";
import { argString } from "../../core/args.ts";
import { VERSION } from "../config.ts";
import type { ServerContext } from "../context.ts";
import type { ServerCommand } from "./server_command.ts";

export function infoText(ctx: ServerContext, sections: string[]): string {
  const want = (name: string) => sections.length === 0 || sections.includes("all") || sections.includes("everything") || sections.includes("default") || sections.includes(name);
  const mem = process.memoryUsage();
  const uptime = Math.floor((Date.now() - ctx.stats.startedAt) / 1000);
  const shardStats = ctx.shardStats();
  const out: string[] = [];
  const section = (name: string, fields: [string, string | number][]) => {
    if (!want(name.toLowerCase())) return;
    out.push(`# ${name}\r\n` + fields.map(([k, v]) => `${k}:${v}\r\n`).join(""));
  };
  section("Server", [
    ["mmapd_version", VERSION],
    ["redis_version", "7.2.0"],
    ["redis_mode", "standalone"],
    ["os", `${os.type()} ${os.release()} ${os.arch()}`],
    ["arch_bits", 64],
    ["process_id", process.pid],
    ["run_id", ctx.runId],
    ["tcp_port", ctx.port],
    ["uptime_in_seconds", uptime],
    ["uptime_in_days", Math.floor(uptime / 86400)],
    ["executable", process.argv[1] ?? ""],
    ["bun_version", Bun.version],
    ["workers", ctx.config.workers],
  ]);
  section("Clients", [
    ["connected_clients", ctx.connections.size],
    ["maxclients", ctx.config.maxclients],
    ["blocked_clients", 0],
  ]);
  section("Memory", [
    ["used_memory", mem.heapUsed],
    ["used_memory_rss", mem.rss],
    ["used_memory_peak", mem.rss],
    ["mapped_files", ctx.bindingCount()],
    ["total_system_memory", os.totalmem()],
  ]);
  section("Persistence", [
    ["loading", 0],
    ["fsync_policy", ctx.config.fsync],
    ["bindings", ctx.bindingCount()],
    ["bindings_failed", ctx.stats.bindingsFailed.size],
    ["bindings_registry", ctx.registryFile],
    ["last_save_time", ctx.stats.lastSave],
    ["rdb_changes_since_last_save", 0],
    ["aof_enabled", 0],
  ]);
  section("Stats", [
    ["total_connections_received", ctx.stats.connectionsReceived],
    ["total_commands_processed", ctx.stats.commandsProcessed],
    ["rejected_connections", ctx.stats.rejectedConnections],
    ["total_error_replies", 0],
    ["protocol_errors", ctx.stats.protocolErrors],
    ["client_output_buffer_limit_disconnections", ctx.stats.outputLimitDisconnects],
    ["shard_restarts", ctx.stats.shardRestarts],
  ]);
  section(
    "Shards",
    shardStats.flatMap((s, i) => [[`shard${i}`, `alive=${s.alive ? 1 : 0},commands=${s.sent},in_flight=${s.inFlight}`] as [string, string]]),
  );
  const failed = [...ctx.stats.bindingsFailed.entries()];
  if (failed.length > 0 && want("persistence")) out.push("# Failed bindings\r\n" + failed.map(([k, why]) => `${k.replace(/[\r\n:]/g, " ")}:${why.replace(/[\r\n]/g, " ")}\r\n`).join(""));
  section("Keyspace", ctx.bindingCount() > 0 ? [["db0", `keys=${ctx.bindingCount()},expires=0,avg_ttl=0`]] : []);
  return out.join("\r\n");
}

export const infoCommands: ServerCommand[] = [
  {
    name: "info",
    arity: -1,
    route: "main",
    flags: ["loading", "stale"],
    keys: null,
    group: "server",
    since: "0.1.0",
    summary: "Returns information and counters about the server, by section.",
    complexity: "O(1)",
    syntax: "[section [section ...]]",
    run(ctx, _conn, a, w) {
      const sections = Array.from({ length: a.argc - 1 }, (_, k) => argString(a, k + 1).toLowerCase());
      w.verbatim(infoText(ctx, sections));
    },
  },
];
