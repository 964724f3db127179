/**
 * A real redis-server next to mmapd, for comparing replies and error texts with Redis's own.
 * Every test that runs redis-server runs it with `redisServerCommand`: on loopback, with nothing
 * saved, its files in a directory of its own.
 */
import { spawn } from "bun";
import fs from "node:fs";
import { RespClient } from "../../bench/resp_client.ts";
import { freePort, tempDir } from "./server.ts";

/** redis-server's command line for `port` on 127.0.0.1, without persistence, in `dir`, then `args`. */
export function redisServerCommand(port: number, dir: string, args: string[] = []): string[] {
  return ["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...args];
}

/** A running redis-server; `stop` ends it and removes its directory. */
export interface RealRedis {
  port: number;
  stop(): Promise<void>;
}

/** Starts redis-server (with `args`, e.g. cluster mode) on a free loopback port and resolves once it answers PING. */
export async function startRealRedis(args: string[] = []): Promise<RealRedis> {
  const dir = tempDir("mmapd-real-redis-");
  const port = freePort();
  const proc = spawn(redisServerCommand(port, dir, args), { cwd: dir, stdout: "ignore", stderr: "ignore" });
  const stop = async () => {
    if (proc.exitCode === null) proc.kill("SIGTERM");
    await proc.exited;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  for (const deadline = Date.now() + 10_000; ; await Bun.sleep(50)) {
    const c = await RespClient.connect(port).catch(() => null);
    const pong = c === null ? null : await c.command("PING").catch(() => null);
    c?.close();
    if (pong === "PONG") break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      const exit = proc.exitCode;
      proc.kill(9);
      await stop();
      throw new Error(`redis-server did not start (exit ${exit})`);
    }
  }
  return { port, stop };
}
