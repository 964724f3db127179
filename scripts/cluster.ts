/**
 * Starts a local mmapd cluster for trying cluster mode: N nodes on consecutive ports (7000, 7001,
 * ...), each with its own data directory (./data/cluster/<port>), the 16384 slots split evenly,
 * the topology pushed to every node with CLUSTERX SETNODES as a controller would. Runs in the
 * foreground; Ctrl-C stops every node cleanly.
 *
 *   npm run cluster -- [--nodes 3] [--port 7000] [--dir ./data/cluster] [--workers 1]
 *
 * A node keeps its id and topology in its data directory, so running the script again with the
 * same ports brings the same cluster back (with its bindings).
 */
import fs from "node:fs";
import path from "node:path";
import { RedisClient, spawn, type Subprocess } from "bun";
import { TOPOLOGY_FILE, evenSlotRanges, parseTopologyFile, randomNodeId } from "../server/cluster/topology.ts";

const ROOT = path.resolve(import.meta.dir, "..");
const HOST = "127.0.0.1";

interface Options {
  nodes: number;
  port: number;
  dir: string;
  workers: number;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { nodes: 3, port: 7000, dir: "./data/cluster", workers: 1 };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, "");
    const value = argv[++i];
    if (value === undefined) usage(`--${name} needs a value`);
    if (name === "dir") options.dir = value;
    else if (name === "nodes" || name === "port" || name === "workers") {
      const n = Number(value);
      if (!Number.isInteger(n) || n < 1) usage(`--${name}: '${value}' is not a positive integer`);
      options[name] = n;
    } else usage(`unknown option '${argv[i - 1]}'`);
  }
  if (options.nodes < 2) usage("a cluster needs at least 2 nodes");
  return options;
}

function usage(problem: string): never {
  process.stderr.write(`cluster: ${problem}\nusage: npm run cluster -- [--nodes 3] [--port 7000] [--dir ./data/cluster] [--workers 1]\n`);
  process.exit(2);
}

/** The id a node had in an earlier run (kept in its data directory), or a new one. */
function nodeId(dir: string): string {
  const file = path.join(dir, TOPOLOGY_FILE);
  if (fs.existsSync(file)) {
    const id = parseTopologyFile(fs.readFileSync(file, "utf8"), file).myId;
    if (id !== "") return id;
  }
  return randomNodeId();
}

/** Starts one node and resolves once it accepts connections; its log lines are printed with its port. */
async function startNode(port: number, dir: string, id: string, workers: number): Promise<Subprocess> {
  fs.mkdirSync(dir, { recursive: true });
  const args = [
    "--port",
    String(port),
    "--bind",
    HOST,
    "--dir",
    dir,
    "--workers",
    String(workers),
    "--cluster-enabled",
    "yes",
    "--cluster-node-id",
    id,
  ];
  const proc = spawn([process.execPath, path.join(ROOT, "server.ts"), ...args], { stdout: "pipe", stderr: "pipe" });
  let ready!: () => void;
  const started = new Promise<void>((r) => (ready = r));
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let partial = "";
    for await (const chunk of stream) {
      const lines = (partial + new TextDecoder().decode(chunk)).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        process.stdout.write(`[${port}] ${line}\n`);
        if (line.includes("Ready to accept connections")) ready();
      }
    }
  };
  void pump(proc.stdout as ReadableStream<Uint8Array>);
  void pump(proc.stderr as ReadableStream<Uint8Array>);
  await Promise.race([started, proc.exited.then((code) => Promise.reject(new Error(`node on port ${port} exited with code ${code}`)))]);
  return proc;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const ports = Array.from({ length: options.nodes }, (_, i) => options.port + i);
  const dirs = ports.map((p) => path.resolve(options.dir, String(p)));
  const ids = dirs.map(nodeId);
  const procs: Subprocess[] = [];
  const stopAll = async (code: number) => {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGTERM");
    await Promise.all(procs.map((p) => p.exited));
    process.exit(code);
  };
  process.on("SIGINT", () => void stopAll(0));
  process.on("SIGTERM", () => void stopAll(0));
  try {
    for (let i = 0; i < ports.length; i++) procs.push(await startNode(ports[i], dirs[i], ids[i], options.workers));
    // The controller's part: one topology, pushed to every node at a version newer than any node's.
    const ranges = evenSlotRanges(options.nodes);
    const text = ports.map((port, i) => `${ids[i]} ${HOST} ${port} master - ${ranges[i][0]}-${ranges[i][1]}`).join("\n");
    const clients = ports.map((port) => new RedisClient(`redis://${HOST}:${port}`));
    const versions = await Promise.all(clients.map((c) => c.send("CLUSTERX", ["VERSION"])));
    const version = Math.max(...versions.map(Number)) + 1;
    await Promise.all(clients.map((c) => c.send("CLUSTERX", ["SETNODES", text, String(version)])));
    for (const c of clients) c.close();
    const lines = [
      "",
      `mmapd cluster ready: ${options.nodes} nodes, topology version ${version}`,
      ...ports.map((port, i) => `  ${HOST}:${port}  ${ids[i]}  slots ${ranges[i][0]}-${ranges[i][1]}  data ${dirs[i]}`),
      "",
      "Connect with any cluster client, e.g.:",
      `  redis-cli -c -p ${ports[0]} MMAP prices prices.f64`,
      `  redis-cli -c -p ${ports[0]} CLUSTER NODES`,
      `  ioredis: new Redis.Cluster([{ host: "${HOST}", port: ${ports[0]} }])`,
      `  redis-py: redis.RedisCluster(host="${HOST}", port=${ports[0]})`,
      "Ctrl-C stops every node.",
      "",
    ];
    process.stdout.write(lines.join("\n"));
  } catch (e) {
    process.stderr.write(`cluster: ${(e as Error).message}\n`);
    await stopAll(1);
  }
}

await main();
