/**
 * mmapd: a Redis-protocol server for memory-mapped files of fixed-width values.
 *
 * Where things live:
 *   server.ts            this entry point: flags, start-up, signals
 *   server/              the main thread: connections (connection.ts), dispatch and routing
 *                        (server.ts), connection and server commands (commands/), config, logs
 *   protocol/            RESP: the streaming request parser and the RESP2/RESP3 reply writer
 *   workers/             shard worker threads and the SharedArrayBuffer rings that feed them
 *   core/                files and values: libc through bun:ffi, mapped files, the value-type
 *                        table, the shard and its commands (commands/), the bindings registry
 *
 * A command's key picks its shard (CRC16 hash slot, as Redis Cluster); each shard is one worker
 * thread that owns its keys' mapped files, so commands on one key run in order on one thread.
 */
import fs from "node:fs";
import { ConfigError, VERSION } from "./server/config.ts";
import { helpText, type ParsedArgs, parseArgs } from "./server/config_flags.ts";
import { log, setLogFile, setLogLevel } from "./server/log.ts";
import { ListenError, MmapdServer } from "./server/server.ts";

async function main(): Promise<void> {
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`mmapd: ${e.message}\n`);
    process.exit(2);
  }
  if (parsed.kind === "help") {
    process.stdout.write(helpText());
    return;
  }
  if (parsed.kind === "version") {
    process.stdout.write(`mmapd v=${VERSION} bun=${Bun.version}\n`);
    return;
  }
  const config = parsed.config;
  setLogLevel(config.loglevel);
  if (config.logfile !== "") {
    try {
      setLogFile(config.logfile);
    } catch (e) {
      process.stderr.write(`mmapd: can't open the log file '${config.logfile}': ${(e as NodeJS.ErrnoException).code ?? e}\n`);
      process.exit(1);
    }
  }
  log("notice", `mmapd ${VERSION} starting, pid=${process.pid}, bun ${Bun.version}`);
  if (config.configFile !== "") log("notice", `Configuration loaded from ${config.configFile}`);
  for (const note of parsed.notes) log(note.level, note.text);
  const server = new MmapdServer(config);
  let port: number;
  try {
    port = await server.start();
  } catch (e) {
    log("warning", e instanceof ListenError ? e.message : `Cannot start: ${(e as Error).message}`);
    process.exit(1);
  }
  if (config.pidfile !== "") {
    const pidfile = config.pidfile;
    try {
      fs.writeFileSync(pidfile, `${process.pid}\n`);
      process.on("exit", () => fs.rmSync(pidfile, { force: true }));
    } catch (e) {
      log("warning", `Failed to write PID file ${pidfile}: ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  }
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => server.shutdown(0, `${signal === "SIGINT" ? "SIGINT" : "SIGTERM"} scheduling shutdown`));
  }
  log("notice", `Ready to accept connections tcp on ${config.bind}:${port}, dir=${server.dataDir}, workers=${config.workers}`);
}

await main();
