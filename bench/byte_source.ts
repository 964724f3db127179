/**
 * The big-reply client's own ceiling: a process that answers every request with one prepared
 * bulk string of a given size, written straight from memory. What the client reads from it is
 * the most it can read over loopback on this machine, whatever the server.
 *
 *   bun bench/byte_source.ts BYTES     (prints "port N" once listening)
 */
import path from "node:path";
import { spawnOwned } from "./processes.ts";

/** A running byte source: its port, and the process that `cleanUp()` stops. */
export interface ByteSource {
  port: number;
  stop(): Promise<void>;
}

/** Starts a byte source answering with a bulk string of `bytes` bytes. */
export async function startByteSource(bytes: number): Promise<ByteSource> {
  const proc = spawnOwned([process.execPath, path.join(import.meta.dir, "byte_source.ts"), String(bytes)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  while (!/port (\d+)\n/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the byte source exited before listening: ${text}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return {
    port: Number(/port (\d+)/.exec(text)![1]),
    stop: async () => {
      proc.kill();
      await proc.exited;
    },
  };
}

function serve(bytes: number): void {
  const header = Buffer.from(`$${bytes}\r\n`);
  const reply = Buffer.alloc(header.length + bytes + 2, 0x61);
  header.copy(reply, 0);
  reply.write("\r\n", header.length + bytes);
  const unsent = new Map<object, Uint8Array>();
  const write = (socket: { write(b: Uint8Array): number }, data: Uint8Array) => {
    const written = Math.max(0, socket.write(data));
    if (written < data.length) unsent.set(socket, data.subarray(written));
    else unsent.delete(socket);
  };
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      // One request per read is all the benchmark sends: answer each read with the reply.
      data: (socket) => write(socket, reply),
      drain: (socket) => {
        const rest = unsent.get(socket);
        if (rest !== undefined) write(socket, rest);
      },
      close: (socket) => void unsent.delete(socket),
    },
  });
  process.stdout.write(`port ${listener.port}\n`);
}

if (import.meta.main) serve(Number(process.argv[2]));
