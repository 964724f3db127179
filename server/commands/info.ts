/**
 * INFO: the server's state and counters as `field:value` lines in sections.
 */
import os from "node:os";
import { argString } from "../../core/args.ts";
import { VERSION } from "../config.ts";
import { processMemory } from "../stats.ts";
import type { ServerContext } from "../context.ts";
import type { ServerCommand } from "./server_command.ts";

/** Sections that only INFO all, INFO everything or their own name shows, as in Redis. */
const NOT_DEFAULT = new Set(["commandstats", "latencystats"]);

function infoText(ctx: ServerContext, sections: string[]): string {
  const want = (name: string) =>
    sections.includes(name) ||
    sections.includes("all") ||
    sections.includes("everything") ||
    ((sections.length === 0 || sections.includes("default")) && !NOT_DEFAULT.has(name));
  const mem = processMemory();
  ctx.stats.usedMemoryPeak = Math.max(ctx.stats.usedMemoryPeak, mem.used);
  const rates = ctx.stats.instantaneous();
  const uptime = Math.floor((Date.now() - ctx.stats.startedAt) / 1000);
  const shardStats = ctx.shardStats();
  const errors = ctx.commandStats.errorCounts();
  const out: string[] = [];
  const section = (name: string, fields: [string, string | number][]) => {
    if (!want(name.toLowerCase())) return;
    out.push(`# ${name}\r\n` + fields.map(([k, v]) => `${k}:${v}\r\n`).join(""));
  };
  section("Server", [
    ["mmapd_version", VERSION],
    ["redis_version", "7.2.0"],
    ["redis_mode", ctx.cluster === null ? "standalone" : "cluster"],
    ["os", `${os.type()} ${os.release()} ${os.arch()}`],
    ["arch_bits", 64],
    ["process_id", process.pid],
    ["run_id", ctx.runId],
    ["tcp_port", ctx.port],
    ["uptime_in_seconds", uptime],
    ["uptime_in_days", Math.floor(uptime / 86400)],
    ["executable", process.argv[1] ?? ""],
    ["config_file", ctx.config.configFile],
    ["bun_version", Bun.version],
    ["workers", ctx.config.workers],
  ]);
  section("Clients", [
    ["connected_clients", ctx.connections.size],
    ["maxclients", ctx.config.maxclients],
    ["blocked_clients", ctx.pause.waitingClients],
  ]);
  section("Memory", [
    // used_memory: what the process allocated (every thread's heap, the shard rings); the mapped
    // files' pages are in used_memory_rss only (see processMemory).
    ["used_memory", mem.used],
    ["used_memory_human", bytesToHuman(mem.used)],
    ["used_memory_rss", mem.rss],
    ["used_memory_rss_human", bytesToHuman(mem.rss)],
    ["used_memory_peak", ctx.stats.usedMemoryPeak],
    ["used_memory_peak_human", bytesToHuman(ctx.stats.usedMemoryPeak)],
    ["used_memory_peak_perc", `${((100 * mem.used) / Math.max(1, ctx.stats.usedMemoryPeak)).toFixed(2)}%`],
    ["total_system_memory", os.totalmem()],
    ["total_system_memory_human", bytesToHuman(os.totalmem())],
    ["maxmemory", 0],
    ["maxmemory_human", bytesToHuman(0)],
    ["maxmemory_policy", "noeviction"],
    ["mem_fragmentation_ratio", (mem.rss / Math.max(1, mem.used)).toFixed(2)],
    ["mem_fragmentation_bytes", mem.rss - mem.used],
    ["mapped_files", ctx.bindingCount()],
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
    ["total_commands_processed", ctx.commandStats.commandsProcessed()],
    ["instantaneous_ops_per_sec", rates.opsPerSec],
    ["total_net_input_bytes", ctx.stats.netInputBytes],
    ["total_net_output_bytes", ctx.stats.netOutputBytes],
    ["instantaneous_input_kbps", rates.inputKbps.toFixed(2)],
    ["instantaneous_output_kbps", rates.outputKbps.toFixed(2)],
    ["rejected_connections", ctx.stats.rejectedConnections],
    ["expired_keys", 0],
    ["evicted_keys", 0],
    ["evicted_clients", 0],
    ["total_error_replies", [...errors.values()].reduce((sum, n) => sum + n, 0)],
    ["protocol_errors", ctx.stats.protocolErrors],
    ["client_output_buffer_limit_disconnections", ctx.stats.outputLimitDisconnects],
    ["shard_restarts", ctx.stats.shardRestarts],
  ]);
  section(
    "Shards",
    shardStats.flatMap((s, i) => [
      [`shard${i}`, `alive=${s.alive ? 1 : 0},commands=${s.sent},in_flight=${s.inFlight}`] as [string, string],
    ]),
  );
  const failed = [...ctx.stats.bindingsFailed.entries()];
  if (failed.length > 0 && want("persistence"))
    out.push(
      "# Failed bindings\r\n" + failed.map(([k, why]) => `${k.replace(/[\r\n:]/g, " ")}:${why.replace(/[\r\n]/g, " ")}\r\n`).join(""),
    );
  const lines = (name: string, list: string[]) => {
    if (want(name.toLowerCase())) out.push(`# ${name}\r\n${list.map((l) => `${l}\r\n`).join("")}`);
  };
  lines("Commandstats", want("commandstats") ? ctx.commandStats.commandstats() : []);
  lines("Errorstats", errorstatLines(errors));
  lines("Latencystats", want("latencystats") ? ctx.commandStats.latencystats() : []);
  // redis-py's RedisCluster reads cluster_enabled from a plain INFO, so the default output has it.
  section("Cluster", [["cluster_enabled", ctx.cluster === null ? 0 : 1]]);
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

/** A byte count as Redis writes it for people: 1023B, 1.50K, 2.00M, 3.25G ... */
function bytesToHuman(n: number): string {
  const units = ["K", "M", "G", "T", "P"];
  if (n < 1024) return `${n}B`;
  for (let i = 0; i < units.length; i++) {
    const scale = 1024 ** (i + 1);
    if (n < scale * 1024 || i === units.length - 1) return `${(n / scale).toFixed(2)}${units[i]}`;
  }
  return `${n}B`;
}

/** INFO errorstats lines: `errorstat_ERR:count=3`. */
function errorstatLines(errors: Map<string, number>): string[] {
  return [...errors].map(([code, n]) => `errorstat_${code}:count=${n}`);
}
