/**
 * A connection whose socket write fails (the peer reset it) gives up on the socket at once: Bun
 * reports that failure only by write's -1, with no close event while the socket is not read, so
 * replies kept for it would pile up until the output limit (a whole VALL, hundreds of MB).
 * In-process, with a socket that records what it is asked.
 */
import { describe, expect, test } from "bun:test";
import { Connection } from "../../server/connection.ts";

/** A socket stand-in: `accept` says how many bytes each write takes (-1: the write fails). */
function fakeSocket(accept: (length: number) => number) {
  const socket = {
    written: 0,
    terminated: 0,
    write(_buf: Uint8Array, _start: number, length: number): number {
      const n = accept(length);
      if (n > 0) socket.written += n;
      return n;
    },
    terminate(): void {
      socket.terminated++;
    },
    end(): void {},
  };
  return socket;
}

function connectionOn(socket: ReturnType<typeof fakeSocket>): Connection {
  // biome-ignore lint/suspicious/noExplicitAny: the stand-in has only what Connection calls
  return new Connection(1, socket as any, "127.0.0.1:1", { maxBulkLength: 512 * 1024 * 1024 }, false, { netOutputBytes: 0 });
}

const REPLY = new TextEncoder().encode("+OK\r\n");

describe("streamed parts", () => {
  test("behind a backlog they join its end, in order, and leave in order once the socket drains", () => {
    let open = false;
    const sent: number[] = [];
    const socket = fakeSocket((length) => (open ? length : 0));
    const origWrite = socket.write;
    socket.write = (buf: Uint8Array, start: number, length: number) => {
      const n = origWrite(buf, start, length);
      for (let i = 0; i < Math.max(n, 0); i++) sent.push(buf[start + i]!);
      return n;
    };
    const conn = connectionOn(socket);
    const part = (byte: number, length: number) => new Uint8Array(length).fill(byte);
    conn.partial(1, part(1, 10), 0, 10); // the socket takes nothing: the backlog begins
    expect(conn.backlog).not.toBeNull();
    const ring = part(2, 20);
    conn.partial(1, ring, 0, 20);
    ring.fill(9); // the ring's record is reused: the backlog kept its own copy
    conn.complete(1, part(3, 5), 0, 5);
    expect(conn.flush(1024)).toBe(true);
    expect(conn.unsent).toBe(35);
    open = true;
    conn.drainBacklog();
    expect(conn.backlog).toBeNull();
    expect(sent).toEqual([...part(1, 10), ...part(2, 20), ...part(3, 5)]);
  });
});

describe("a failed socket write", () => {
  test("in a flush: the socket is terminated and nothing is kept", () => {
    const socket = fakeSocket(() => -1);
    const conn = connectionOn(socket);
    conn.complete(1, REPLY, 0, REPLY.length);
    expect(conn.flush(1024)).toBe(true);
    expect(conn.writeFailed).toBe(true);
    expect(socket.terminated).toBe(1);
    expect(conn.unsent).toBe(0);
    // Later replies are dropped, not kept for a socket that is gone.
    conn.complete(2, REPLY, 0, REPLY.length);
    conn.flush(1024);
    expect(conn.unsent).toBe(0);
  });

  test("in a streamed part written straight from the ring", () => {
    const socket = fakeSocket(() => -1);
    const conn = connectionOn(socket);
    const part = new Uint8Array(1 << 20);
    conn.partial(1, part, 0, part.length);
    expect(conn.writeFailed).toBe(true);
    expect(conn.unsent).toBe(0);
    expect(socket.terminated).toBe(1);
  });

  test("when the backlog drains: a socket that took part, then failed", () => {
    let calls = 0;
    const socket = fakeSocket((length) => (++calls === 1 ? Math.min(2, length) : -1));
    const conn = connectionOn(socket);
    conn.complete(1, REPLY, 0, REPLY.length);
    expect(conn.flush(1024)).toBe(true);
    expect(conn.backlog).not.toBeNull();
    expect(conn.unsent).toBe(REPLY.length - 2);
    conn.drainBacklog();
    expect(conn.writeFailed).toBe(true);
    expect(conn.backlog).toBeNull();
    expect(conn.unsent).toBe(0);
    expect(socket.terminated).toBe(1);
  });

  test("a socket that takes everything is never given up", () => {
    const socket = fakeSocket((length) => length);
    const conn = connectionOn(socket);
    conn.complete(1, REPLY, 0, REPLY.length);
    expect(conn.flush(1024)).toBe(true);
    expect(conn.writeFailed).toBe(false);
    expect(socket.written).toBe(REPLY.length);
  });
});
