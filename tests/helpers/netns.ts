/**
 * A client address that is not loopback, made on this machine: a network namespace joined to the
 * test's own by a veth pair, with a /30 of 10.0.0.0/8 that no interface or route here uses (the
 * test's side .1, the namespace's .2). Nothing routes past the pair, so the traffic never leaves
 * this machine. `exchange` runs a small client inside the namespace (this file, run by bun).
 * Needs root and iproute2 (`ip`); `close` (also run at exit) removes the namespace and the pair.
 *
 *   bun tests/helpers/netns.ts exchange HOST PORT BASE64   (inside the namespace: connect, send, print what came back)
 */
import { spawn, spawnSync } from "bun";
import net from "node:net";

/** What a connection received until the server closed it (or 3 s passed). */
export interface Exchange {
  text: string;
  closed: boolean;
}

/** Connects to `host:port`, sends `bytes`, and collects everything received until the server closes. */
export function exchange(host: string, port: number, bytes: Uint8Array): Promise<Exchange> {
  return new Promise((resolve) => {
    let text = "";
    const socket = net.connect({ host, port }, () => socket.write(bytes));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, 3000);
    socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
  });
}

export interface PeerNamespace {
  /** The namespace's name (`ip netns exec NAME ...`). */
  name: string;
  /** The test side's address: what a server bound to 0.0.0.0 is reached at from the namespace. */
  hostAddress: string;
  /** The namespace's address: the client address the server sees. */
  peerAddress: string;
  /** `exchange` from inside the namespace, to `hostAddress`. */
  exchange(port: number, bytes: Uint8Array): Promise<Exchange>;
  /** Removes the namespace and the veth pair; safe to call twice. */
  close(): void;
}

const PREFIX = "mmapd-test-";

function ip(...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(["ip", ...args], { stdout: "pipe", stderr: "pipe" });
  return { ok: r.exitCode === 0, out: r.stdout.toString() + r.stderr.toString() };
}

/** Why no namespace can be made here (no `ip`, not root), or null. */
export function peerNamespaceUnavailable(): string | null {
  if (spawnSync(["sh", "-c", "command -v ip"]).exitCode !== 0) return "iproute2's `ip` is not installed (apt-get install -y iproute2)";
  if (process.getuid?.() !== 0) return "making a network namespace needs root";
  return null;
}

const toInt = (address: string) => address.split(".").reduce((n, part) => n * 256 + Number(part), 0);

/** The IPv4 prefixes this machine already uses (addresses and routes), as [first, last] integers. */
function usedRanges(): [number, number][] {
  const text = ip("-4", "-o", "addr", "show").out + ip("-4", "route", "show", "table", "all").out;
  const ranges: [number, number][] = [];
  for (const m of text.matchAll(/(?<![\d.])(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?(?![\d.])/g)) {
    const bits = m[2] === undefined ? 32 : Number(m[2]);
    if (bits === 0) continue; // a default route is no prefix in use
    const size = 2 ** (32 - bits);
    const first = Math.floor(toInt(m[1]!) / size) * size;
    ranges.push([first, first + size - 1]);
  }
  return ranges;
}

/** Removes namespaces left by test processes that no longer exist (killed before their cleanup ran). */
function removeStale(): void {
  for (const line of ip("netns", "list").out.split("\n")) {
    const m = new RegExp(`^${PREFIX}(\\d+)\\b`).exec(line);
    if (m === null) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch {
      ip("netns", "del", `${PREFIX}${m[1]}`);
    }
  }
}

/** Makes the namespace and the veth pair; throws with `ip`'s words when it cannot. */
export function createPeerNamespace(): PeerNamespace {
  removeStale();
  const pid = process.pid;
  const name = `${PREFIX}${pid}`;
  const hostVeth = `mt${pid}h`;
  const peerVeth = `mt${pid}n`;
  // A /30 chosen by the pid, moved on while it overlaps anything in use.
  const used = usedRanges();
  let first = 0;
  for (let tries = 0; ; tries++) {
    first = toInt("10.0.0.0") + ((pid + tries) % (1 << 22)) * 4;
    if (!used.some(([a, b]) => first <= b && a <= first + 3)) break;
    if (tries > 1000) throw new Error("no free /30 in 10.0.0.0/8 for the test namespace");
  }
  const text = (n: number) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
  const hostAddress = text(first + 1);
  const peerAddress = text(first + 2);

  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    ip("netns", "del", name); // takes the namespace's end of the pair, and with it the pair
    if (ip("link", "show", hostVeth).ok) ip("link", "del", hostVeth);
  };
  process.once("exit", close);
  const steps = [
    ["netns", "add", name],
    ["link", "add", hostVeth, "type", "veth", "peer", "name", peerVeth],
    ["link", "set", peerVeth, "netns", name],
    ["addr", "add", `${hostAddress}/30`, "dev", hostVeth],
    ["link", "set", hostVeth, "up"],
    ["-n", name, "addr", "add", `${peerAddress}/30`, "dev", peerVeth],
    ["-n", name, "link", "set", peerVeth, "up"],
    ["-n", name, "link", "set", "lo", "up"],
  ];
  for (const step of steps) {
    const r = ip(...step);
    if (!r.ok) {
      close();
      throw new Error(`ip ${step.join(" ")} failed: ${r.out.trim()}`);
    }
  }
  return {
    name,
    hostAddress,
    peerAddress,
    async exchange(port, bytes) {
      const proc = spawn(
        [
          "ip",
          "netns",
          "exec",
          name,
          process.execPath,
          import.meta.path,
          "exchange",
          hostAddress,
          String(port),
          Buffer.from(bytes).toString("base64"),
        ],
        {
          stdout: "pipe",
          stderr: "pipe",
        },
      );
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (code !== 0) throw new Error(`the client in namespace ${name} failed (exit ${code}): ${err}`);
      return JSON.parse(out) as Exchange;
    },
    close,
  };
}

if (import.meta.main && process.argv[2] === "exchange") {
  const [host, port, payload] = process.argv.slice(3);
  const result = await exchange(host!, Number(port), Buffer.from(payload!, "base64"));
  process.stdout.write(JSON.stringify(result));
}
