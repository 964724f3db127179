/**
 * Server configuration: one table of parameters. Each parameter has one name that is at once its
 * flag (`--maxclients 77`), its config-file directive (`maxclients 77`, in redis.conf's syntax)
 * and its CONFIG GET/SET name, with how its value parses and prints, its default, whether CONFIG
 * SET may change it while the server runs, and its --help line. The flag parser, the config-file
 * parser, CONFIG GET/SET/REWRITE and --help all read the table; nothing else lists parameters.
 *
 * This file holds the Config object and its defaults; config_kinds.ts what a parameter is and how
 * values parse, config_table.ts the table itself with CONFIG GET/SET, config_file.ts config files
 * and CONFIG REWRITE, config_flags.ts the command line and --help.
 */
import os from "node:os";
import type { FsyncPolicy } from "../workers/wire.ts";
import type { LogLevel } from "./log.ts";

export const VERSION = "0.1.0";

export interface Config {
  port: number;
  bind: string;
  dir: string;
  workers: number;
  requirepass: string;
  maxclients: number;
  fsync: FsyncPolicy;
  allowAnyPath: boolean;
  /** Refuse clients from outside the loopback interface while no password is set (as Redis). */
  protectedMode: boolean;
  /** Seconds a client may stay idle before it is closed; 0 = never. */
  timeout: number;
  loglevel: LogLevel;
  /** Where log lines go: a file appended to, or "" for standard output. */
  logfile: string;
  /** A file the server writes its process id to at start and removes at exit; "" for none. */
  pidfile: string;
  /** Bytes a client may send of one command not yet complete, before it is disconnected. */
  clientQueryBufferLimit: number;
  /** Bytes of replies a client may leave unread before it is disconnected. */
  clientOutputBufferLimit: number;
  /** Largest bulk string in a request. */
  protoMaxBulkLen: number;
  /** Bytes per shard ring (each direction). */
  ringBytes: number;
  /** Threads per shard that format big text replies (piscina, workers/format_pool.ts); 0: the shard formats them. */
  streamFormatThreads: number;
  /** Enables DEBUG (used by tests to crash a shard worker). */
  enableDebugCommand: boolean;
  /** Commands that take at least this many microseconds go to the slow log; negative: none do. */
  slowlogLogSlowerThan: number;
  /** Entries the slow log keeps. */
  slowlogMaxLen: number;
  /** Cluster mode (`cluster-enabled`): serve only the hash slots the topology gives this node. */
  clusterEnabled: boolean;
  /** A topology file in Kvrocks's SETNODES text, read at start (`cluster-config`); "" for none. */
  clusterConfig: string;
  /** This node's 40-character id (`cluster-node-id`); "" to find it in the topology by address. */
  clusterNodeId: string;
  /** The address and port this node has in the topology, when not `bind` and `port` (NAT, containers). */
  clusterAnnounceIp: string;
  clusterAnnouncePort: number;
  /** The config file the server was started with (absolute), for CONFIG REWRITE; "" for none. */
  configFile: string;
}

export function defaultConfig(): Config {
  return {
    port: 6379,
    bind: "127.0.0.1",
    dir: "./data",
    workers: Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
    requirepass: "",
    maxclients: 10000,
    fsync: "everysec",
    allowAnyPath: false,
    protectedMode: true,
    timeout: 0,
    loglevel: "notice",
    logfile: "",
    pidfile: "",
    clientQueryBufferLimit: 1024 * 1024 * 1024,
    clientOutputBufferLimit: 256 * 1024 * 1024,
    protoMaxBulkLen: 512 * 1024 * 1024,
    ringBytes: 8 * 1024 * 1024,
    // Two per shard: the most that helped on 2 cores; each shard has its own pool, so more would
    // multiply by the workers (threads start only when a big reply needs them).
    streamFormatThreads: Math.min(2, os.availableParallelism?.() ?? os.cpus().length),
    enableDebugCommand: false,
    slowlogLogSlowerThan: 10_000,
    slowlogMaxLen: 128,
    clusterEnabled: false,
    clusterConfig: "",
    clusterNodeId: "",
    clusterAnnounceIp: "",
    clusterAnnouncePort: 0,
    configFile: "",
  };
}

/**
 * A bad flag, directive or value. `message` is what the command line and config file print
 * (`maxclients: 'lots' is not an integer`); `reason` is Redis's wording for CONFIG SET
 * (`argument couldn't be parsed into an integer`).
 */
export class ConfigError extends Error {
  constructor(
    message: string,
    readonly reason = message,
  ) {
    super(message);
  }
}

/** What CONFIG may see and change of the running server beyond the Config object. */
export interface LiveServer {
  /** Absolute real path of the data directory. */
  readonly dataDir: string;
  /** The port listened on. */
  readonly port: number;
  setFsync(policy: FsyncPolicy): void;
  setTimeoutSeconds(seconds: number): void;
  setSlowlogThreshold(micros: number): void;
}
