/**
 * Authentication and protected mode through a real server: with --requirepass every data command
 * answers NOAUTH until AUTH (or HELLO ... AUTH) succeeds, a wrong password answers WRONGPASS, and
 * CONFIG SET requirepass applies to new connections; with no password and a non-loopback --bind,
 * clients that do not come from the loopback interface get the DENIED reply (Redis's, naming mmapd's settings) and are closed.
 * The non-loopback client runs in a network namespace of this machine (tests/helpers/netns.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import path from "node:path";
import Redis from "ioredis";
import { call, ErrorReply, resp, RespClient } from "../../bench/resp_client.ts";
import { parseArgs } from "../../server/config_flags.ts";
import { PROTECTED_MODE_DENIED, refusedByProtectedMode } from "../../server/protected_mode.ts";
import { createPeerNamespace, exchange, type PeerNamespace, peerNamespaceUnavailable } from "../helpers/netns.ts";
import { startServer, type TestServer } from "../helpers/server.ts";

const NOAUTH = new ErrorReply("NOAUTH Authentication required.");
const WRONGPASS = new ErrorReply("WRONGPASS invalid username-password pair or user is disabled.");

describe("--requirepass", () => {
  let server: TestServer;
  const clients: RespClient[] = [];

  async function connect(): Promise<RespClient> {
    const c = await RespClient.connect(server.port);
    clients.push(c);
    return c;
  }

  beforeAll(async () => {
    server = await startServer({ args: ["--workers", "2", "--requirepass", "s3cret"] });
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await server?.stop();
    server?.cleanup();
  });

  test("every command but AUTH, HELLO, QUIT and RESET answers NOAUTH, and does nothing", async () => {
    const c = await connect();
    for (const command of [
      ["PING"],
      ["MMAP", "k", "created.f64"],
      ["VGET", "k", "0"],
      ["VADD", "k", "1"],
      ["DEL", "k"],
      ["KEYS", "*"],
      ["SCAN", "0"],
      ["FLUSHALL"],
      ["CONFIG", "SET", "requirepass", ""],
      ["CONFIG", "GET", "requirepass"],
      ["INFO"],
      ["CLIENT", "LIST"],
      ["SAVE"],
      ["SHUTDOWN"],
    ]) {
      expect(await call(c, ...command)).toEqual(NOAUTH);
    }
    // As in Redis, an unknown command is named unknown before authentication is asked for.
    expect(await call(c, "NOSUCHCOMMAND")).toEqual(new ErrorReply("ERR unknown command 'NOSUCHCOMMAND', with args beginning with: "));
    expect(fs.existsSync(path.join(server.dir, "created.f64"))).toBe(false);
    expect(server.proc.exitCode).toBeNull();
  });

  test("a pipeline sent before AUTH runs nothing; the commands after AUTH run", async () => {
    const c = await connect();
    c.write(Buffer.concat([resp("MMAP", "p", "p.f64"), resp("AUTH", "s3cret"), resp("MMAP", "p", "p.f64"), resp("VCOUNT", "p")]));
    const bytes = (await c.readReplies(4)).toString();
    expect(bytes).toBe("-NOAUTH Authentication required.\r\n+OK\r\n:0\r\n:0\r\n");
  });

  test("a wrong password, or another user, answers WRONGPASS and leaves the client unauthenticated", async () => {
    const c = await connect();
    expect(await call(c, "AUTH", "wrong")).toEqual(WRONGPASS);
    expect(await call(c, "AUTH", "s3cre")).toEqual(WRONGPASS);
    expect(await call(c, "AUTH", "s3cret\0")).toEqual(WRONGPASS);
    expect(await call(c, "AUTH", "default", "wrong")).toEqual(WRONGPASS);
    expect(await call(c, "AUTH", "admin", "s3cret")).toEqual(WRONGPASS);
    expect(await call(c, "PING")).toEqual(NOAUTH);
    expect(await call(c, "AUTH", "default", "s3cret")).toBe("OK");
    expect(await call(c, "PING")).toBe("PONG");
    // RESET forgets the authentication, as in Redis.
    expect(await call(c, "RESET")).toBe("RESET");
    expect(await call(c, "PING")).toEqual(NOAUTH);
  });

  test("HELLO 3 AUTH authenticates and switches protocol; without AUTH it answers NOAUTH", async () => {
    const c = await connect();
    const hello = await call(c, "HELLO", "3");
    expect(hello).toBeInstanceOf(ErrorReply);
    expect((hello as ErrorReply).message).toStartWith("NOAUTH HELLO must be called with the client already authenticated");
    expect(await call(c, "HELLO", "3", "AUTH", "default", "nope")).toEqual(WRONGPASS);
    expect(await call(c, "PING")).toEqual(NOAUTH);
    c.write(resp("HELLO", "3", "AUTH", "default", "s3cret"));
    const reply = (await c.readReplies(1)).toString();
    expect(reply).toStartWith("%7\r\n$6\r\nserver\r\n$5\r\nmmapd\r\n");
    expect(reply).toContain("$5\r\nproto\r\n:3\r\n");
    expect(await call(c, "PING")).toBe("PONG");
  });

  test("real clients authenticate with their password option", async () => {
    const good = new Redis({ host: "127.0.0.1", port: server.port, password: "s3cret", lazyConnect: true, maxRetriesPerRequest: 0 });
    await good.connect();
    expect(await good.call("PING")).toBe("PONG");
    await good.quit();
    const bad = new Redis({
      host: "127.0.0.1",
      port: server.port,
      password: "wrong",
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    const errors: string[] = [];
    bad.on("error", (e: Error) => errors.push(e.message));
    await expect(bad.connect()).rejects.toThrow();
    bad.disconnect();
    expect(errors).toContain(WRONGPASS.message);
  });

  test("CONFIG SET requirepass applies to new connections; authenticated ones stay so", async () => {
    const admin = await connect();
    expect(await call(admin, "AUTH", "s3cret")).toBe("OK");
    expect(await call(admin, "CONFIG", "SET", "requirepass", "n3w")).toBe("OK");
    expect(await call(admin, "CONFIG", "GET", "requirepass")).toEqual(["requirepass", "n3w"]);
    expect(await call(admin, "PING")).toBe("PONG");

    const fresh = await connect();
    expect(await call(fresh, "PING")).toEqual(NOAUTH);
    expect(await call(fresh, "AUTH", "s3cret")).toEqual(WRONGPASS);
    expect(await call(fresh, "AUTH", "n3w")).toBe("OK");

    // No password any more: new connections need none, and AUTH says so as Redis does.
    expect(await call(admin, "CONFIG", "SET", "requirepass", "")).toBe("OK");
    const open = await connect();
    expect(await call(open, "PING")).toBe("PONG");
    expect(await call(open, "AUTH", "x")).toEqual(
      new ErrorReply(
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
      ),
    );
    expect(await call(admin, "CONFIG", "SET", "requirepass", "s3cret")).toBe("OK");
  });
});

describe("protected mode", () => {
  test("the decision: no password, a non-loopback bind and a non-loopback client", () => {
    const open = { protectedMode: true, requirepass: "", bind: "0.0.0.0" };
    expect(refusedByProtectedMode(open, "192.0.2.7")).toBe(true);
    expect(refusedByProtectedMode(open, "::ffff:192.0.2.7")).toBe(true);
    expect(refusedByProtectedMode(open, "2001:db8::1")).toBe(true);
    expect(refusedByProtectedMode(open, undefined)).toBe(true);
    for (const local of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"]) expect(refusedByProtectedMode(open, local)).toBe(false);
    expect(refusedByProtectedMode({ ...open, requirepass: "x" }, "192.0.2.7")).toBe(false);
    expect(refusedByProtectedMode({ ...open, protectedMode: false }, "192.0.2.7")).toBe(false);
    expect(refusedByProtectedMode({ ...open, bind: "127.0.0.1" }, "192.0.2.7")).toBe(false);
    expect(refusedByProtectedMode({ ...open, bind: "::" }, "192.0.2.7")).toBe(true);
    expect(refusedByProtectedMode({ ...open, bind: "192.0.2.2" }, "192.0.2.7")).toBe(true);
    expect(PROTECTED_MODE_DENIED).toStartWith(
      "-DENIED mmapd is running in protected mode because protected mode is enabled and no password is set for the default user.",
    );
    // It names mmapd's own settings, not Redis's.
    for (const setting of [
      "'CONFIG SET protected-mode no'",
      "'--protected-mode no'",
      "'protected-mode no'",
      "'--requirepass <password>'",
      "'CONFIG SET requirepass <password>'",
    ]) {
      expect(PROTECTED_MODE_DENIED).toContain(setting);
    }
    // Flags mmapd takes.
    for (const flags of [
      ["--protected-mode", "no"],
      ["--requirepass", "secret"],
    ]) {
      expect(parseArgs(flags).kind).toBe("run");
    }
    expect(PROTECTED_MODE_DENIED).not.toContain("Redis");
    expect(PROTECTED_MODE_DENIED.indexOf("\r\n")).toBe(PROTECTED_MODE_DENIED.length - 2);
    expect(PROTECTED_MODE_DENIED).toEndWith("the server to start accepting connections from the outside.\r\n");
  });

  // A client from another network namespace of this machine, joined by a veth pair: an address
  // that is not loopback, on any host (CI included), with no traffic leaving the machine.
  const unavailable = peerNamespaceUnavailable();
  const required = process.env.MMAPD_REQUIRE_TOOLS === "1";
  let peer: PeerNamespace | undefined;
  /** The namespace, made on first use; under MMAPD_REQUIRE_TOOLS=1 a host that cannot make one fails the test. */
  function remote(): PeerNamespace {
    if (unavailable !== null) throw new Error(`protected mode needs a client from a non-loopback address: ${unavailable}`);
    peer ??= createPeerNamespace();
    return peer;
  }
  afterAll(() => peer?.close());

  test.skipIf(unavailable !== null && !required)(
    "bound to 0.0.0.0, a client from a non-loopback address is denied, loopback is served",
    async () => {
      const ns = remote();
      const server = await startServer({ args: ["--workers", "1", "--bind", "0.0.0.0"] });
      try {
        const denied = await ns.exchange(server.port, resp("PING"));
        expect(denied).toEqual({ text: PROTECTED_MODE_DENIED, closed: true });
        const local = await exchange("127.0.0.1", server.port, Buffer.concat([resp("PING"), resp("QUIT")]));
        expect(local.text).toBe("+PONG\r\n+OK\r\n");
        expect(fs.readdirSync(server.dir)).not.toContain("x.f64");

        // Turned off from the loopback interface, as the DENIED text suggests.
        const admin = await RespClient.connect(server.port);
        expect(await call(admin, "CONFIG", "SET", "protected-mode", "no")).toBe("OK");
        admin.close();
        expect((await ns.exchange(server.port, Buffer.concat([resp("PING"), resp("QUIT")]))).text).toBe("+PONG\r\n+OK\r\n");
      } finally {
        await server.stop();
        server.cleanup();
      }
    },
  );

  test.skipIf(unavailable !== null && !required)("with a password, non-loopback clients are let in (and must AUTH)", async () => {
    const ns = remote();
    const server = await startServer({ args: ["--workers", "1", "--bind", "0.0.0.0", "--requirepass", "pw"] });
    try {
      const reply = await ns.exchange(server.port, Buffer.concat([resp("PING"), resp("AUTH", "pw"), resp("PING"), resp("QUIT")]));
      expect(reply.text).toBe("-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n+OK\r\n");
    } finally {
      await server.stop();
      server.cleanup();
    }
  });
});
