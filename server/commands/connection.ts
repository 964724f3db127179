/**
 * Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET. CLIENT is client.ts.
 */
import { timingSafeEqual } from "node:crypto";
import { argInt, argIs, argString } from "../../core/args.ts";
import { CommandError, ConnectionErrors, Errors } from "../../core/errors.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import { VERSION } from "../config.ts";
import type { Connection } from "../connection.ts";
import type { ServerContext } from "../context.ts";
import { validName } from "./client.ts";
import type { ServerCommand } from "./server_command.ts";

/** Compares a password in constant time (for equal lengths; lengths are not secret). */
function passwordMatches(ctx: ServerContext, given: string): boolean {
  const expected = Buffer.from(ctx.config.requirepass);
  const actual = Buffer.from(given);
  // Compare against a same-length buffer either way, so the time does not depend on where they differ.
  return (
    timingSafeEqual(expected, actual.length === expected.length ? actual : expected.map((b) => b ^ 1)) && actual.length === expected.length
  );
}

/** Checks `[user] pass` credentials: only the default user exists. */
function authenticate(ctx: ServerContext, conn: Connection, user: string, pass: string): void {
  if (ctx.config.requirepass === "") {
    throw new CommandError(ConnectionErrors.authWithoutPassword);
  }
  if (user !== "default" || !passwordMatches(ctx, pass)) throw new CommandError(ConnectionErrors.wrongPass);
  conn.authenticated = true;
}

/** The HELLO reply: server properties as a map. */
function helloReply(ctx: ServerContext, conn: Connection, w: ReplyWriter): void {
  w.map(7);
  w.bulk("server");
  w.bulk("mmapd");
  w.bulk("version");
  w.bulk(VERSION);
  w.bulk("proto");
  w.integer(w.proto);
  w.bulk("id");
  w.integer(conn.id);
  w.bulk("mode");
  w.bulk(ctx.cluster === null ? "standalone" : "cluster");
  w.bulk("role");
  w.bulk("master");
  w.bulk("modules");
  w.array(0);
}

export const connectionCommands: ServerCommand[] = [
  {
    name: "ping",
    arity: -1,
    route: "main",
    flags: ["fast"],
    keys: null,
    group: "connection",
    since: "0.1.0",
    summary: "Returns PONG, or the message.",
    complexity: "O(1)",
    syntax: "[message]",
    run(_ctx, _conn, a, w) {
      if (a.argc > 2) throw new CommandError(Errors.wrongArity("ping"));
      if (a.argc === 1) w.simple("PONG");
      else w.bulkBytes(a.buf, a.argStart[1], a.argEnd[1]);
    },
  },
  {
    name: "echo",
    arity: 2,
    route: "main",
    flags: ["fast"],
    keys: null,
    group: "connection",
    since: "0.1.0",
    summary: "Returns the message.",
    complexity: "O(1)",
    syntax: "message",
    run(_ctx, _conn, a, w) {
      w.bulkBytes(a.buf, a.argStart[1], a.argEnd[1]);
    },
  },
  {
    name: "hello",
    arity: -1,
    route: "main",
    flags: ["no_auth", "fast", "loading", "stale"],
    keys: null,
    group: "connection",
    since: "0.1.0",
    summary: "Switches the protocol (2 or 3), authenticates and names the connection; returns server properties.",
    complexity: "O(1)",
    syntax: "[protover [AUTH username password] [SETNAME clientname]]",
    run(ctx, conn, a, w) {
      let proto = w.proto;
      let i = 1;
      if (a.argc > 1) {
        const v = argInt(a, 1);
        if (v !== v) throw new CommandError(ConnectionErrors.protocolNotInteger);
        if (v !== 2 && v !== 3) throw new CommandError(ConnectionErrors.noProto);
        proto = v;
        i = 2;
      }
      let user: string | null = null;
      let pass = "";
      let name: string | null = null;
      for (; i < a.argc; i++) {
        if (argIs(a, i, "auth") && i + 2 < a.argc) {
          user = argString(a, i + 1);
          pass = argString(a, i + 2);
          i += 2;
        } else if (argIs(a, i, "setname") && i + 1 < a.argc) {
          name = argString(a, ++i);
          if (!validName(name)) throw new CommandError(Errors.badClientName);
        } else throw new CommandError(ConnectionErrors.helloSyntax(argString(a, i)));
      }
      if (user !== null) authenticate(ctx, conn, user, pass);
      if (!conn.authenticated) {
        throw new CommandError(ConnectionErrors.helloNoAuth);
      }
      if (name !== null) conn.name = name;
      conn.out.proto = proto as 2 | 3;
      w.proto = proto as 2 | 3;
      helloReply(ctx, conn, w);
    },
  },
  {
    name: "auth",
    arity: -2,
    route: "main",
    flags: ["no_auth", "fast", "loading", "stale"],
    keys: null,
    group: "connection",
    since: "0.1.0",
    summary: "Authenticates the connection (only the default user exists).",
    complexity: "O(N) where N is the password's length",
    syntax: "[username] password",
    run(ctx, conn, a, w) {
      if (a.argc > 3) throw new CommandError(Errors.syntax);
      const user = a.argc === 3 ? argString(a, 1) : "default";
      authenticate(ctx, conn, user, argString(a, a.argc - 1));
      w.simple("OK");
    },
  },
  {
    name: "select",
    arity: 2,
    route: "main",
    flags: ["fast", "loading", "stale"],
    keys: null,
    group: "connection",
    since: "0.1.0",
    summary: "Selects database 0, the only one.",
    complexity: "O(1)",
    syntax: "index",
    run(_ctx, _conn, a, w) {
      const db = argInt(a, 1);
      if (db !== db) throw new CommandError(Errors.notAnInteger);
      if (db !== 0) throw new CommandError(ConnectionErrors.dbOutOfRange);
      w.simple("OK");
    },
  },
  {
    name: "quit",
    arity: -1,
    route: "main",
    flags: ["no_auth", "fast", "loading", "stale"],
    keys: null,
    group: "connection",
    since: "0.1.0",
    summary: "Closes the connection once its replies are written.",
    complexity: "O(1)",
    syntax: "",
    inMulti: "runs-now",
    run(_ctx, conn, _a, w) {
      w.simple("OK");
      conn.closeAfterReplies = true;
    },
  },
  {
    name: "reset",
    arity: 1,
    route: "main",
    flags: ["no_auth", "fast", "loading", "stale"],
    keys: null,
    group: "connection",
    since: "0.1.0",
    summary: "Resets the connection: RESP2, unauthenticated if a password is set, no name, no transaction or WATCH.",
    complexity: "O(1)",
    syntax: "",
    inMulti: "runs-now",
    run(ctx, conn, _a, w) {
      ctx.transactions.discard(conn);
      ctx.transactions.unwatch(conn);
      conn.name = "";
      conn.monitoring = false;
      ctx.monitors.conns.delete(conn);
      conn.out.proto = 2;
      w.proto = 2;
      conn.authenticated = ctx.config.requirepass === "";
      w.simple("RESET");
    },
  },
];
