/**
 * Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT.
 */
import { timingSafeEqual } from "node:crypto";
import { argInt, argIs, argString } from "../../core/args.ts";
import { CommandError, Errors } from "../../core/errors.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import { VERSION } from "../config.ts";
import type { Connection } from "../connection.ts";
import type { ServerContext } from "../context.ts";
import type { ServerCommand } from "./server_command.ts";

const WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled.";

/** Compares a password in constant time (for equal lengths; lengths are not secret). */
function passwordMatches(ctx: ServerContext, given: string): boolean {
  const expected = Buffer.from(ctx.config.requirepass);
  const actual = Buffer.from(given);
  // Compare against a same-length buffer either way, so the time does not depend on where they differ.
  return timingSafeEqual(expected, actual.length === expected.length ? actual : expected.map((b) => b ^ 1)) && actual.length === expected.length;
}

/** Checks `[user] pass` credentials: only the default user exists. */
function authenticate(ctx: ServerContext, conn: Connection, user: string, pass: string): void {
  if (ctx.config.requirepass === "") {
    throw new CommandError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?");
  }
  if (user !== "default" || !passwordMatches(ctx, pass)) throw new CommandError(WRONGPASS);
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
  w.bulk("standalone");
  w.bulk("role");
  w.bulk("master");
  w.bulk("modules");
  w.array(0);
}

/** One CLIENT LIST / CLIENT INFO line. */
export function clientLine(conn: Connection): string {
  const now = Date.now();
  return (
    `id=${conn.id} addr=${conn.address} laddr=- fd=-1 name=${conn.name} age=${Math.floor((now - conn.createdAt) / 1000)} ` +
    `idle=${Math.floor((now - conn.lastActive) / 1000)} flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 qbuf=${conn.parser.buffered()} ` +
    `obl=${conn.out.length} oll=${conn.owed} omem=${conn.unsent} tot-mem=0 events=r cmd=${conn.lastCommand} user=default redir=-1 resp=${conn.out.proto} ` +
    `lib-name=${conn.libName} lib-ver=${conn.libVersion}\n`
  );
}

function validName(name: string): boolean {
  return !/[\s\x00-\x1f\x7f]/.test(name);
}

const client: ServerCommand = {
  name: "client",
  arity: -2,
  route: "main",
  flags: [],
  keys: null,
  group: "connection",
  since: "0.1.0",
  summary: "Commands about client connections.",
  complexity: "Depends on subcommand",
  syntax: "subcommand [arg ...]",
  subcommands: [
    { name: "id", arity: 2, flags: ["fast", "loading", "stale"], summary: "Returns the connection's id.", syntax: "" },
    { name: "getname", arity: 2, flags: ["fast", "loading", "stale"], summary: "Returns the connection's name.", syntax: "" },
    { name: "setname", arity: 3, flags: ["fast", "loading", "stale"], summary: "Names the connection.", syntax: "connection-name" },
    { name: "setinfo", arity: 4, flags: ["fast", "loading", "stale"], summary: "Sets the client library's name or version.", syntax: "LIB-NAME|LIB-VER value" },
    { name: "info", arity: 2, flags: ["loading", "stale"], summary: "Returns this connection's CLIENT LIST line.", syntax: "" },
    { name: "list", arity: -2, flags: ["admin", "loading", "stale"], summary: "Lists the open connections.", syntax: "" },
    { name: "help", arity: 2, flags: ["loading", "stale"], summary: "Lists the subcommands.", syntax: "" },
  ],
  run(ctx, conn, a, w) {
    const sub = argString(a, 1).toLowerCase();
    const need = (n: number) => {
      if (a.argc !== n) throw new CommandError(`ERR unknown subcommand or wrong number of arguments for '${argString(a, 1)}'. Try CLIENT HELP.`);
    };
    switch (sub) {
      case "id":
        need(2);
        w.integer(conn.id);
        return;
      case "getname":
        need(2);
        if (conn.name === "") w.nil();
        else w.bulk(conn.name);
        return;
      case "setname": {
        need(3);
        const name = argString(a, 2);
        if (!validName(name)) throw new CommandError(Errors.badClientName);
        conn.name = name;
        w.simple("OK");
        return;
      }
      case "setinfo": {
        need(4);
        const value = argString(a, 3);
        if (!validName(value)) throw new CommandError("ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.");
        if (argIs(a, 2, "lib-name")) conn.libName = value;
        else if (argIs(a, 2, "lib-ver")) conn.libVersion = value;
        else throw new CommandError(`ERR Unrecognized option '${argString(a, 2)}'`);
        w.simple("OK");
        return;
      }
      case "info":
        need(2);
        w.verbatim(clientLine(conn));
        return;
      case "list":
        w.verbatim([...ctx.connections.values()].map(clientLine).join(""));
        return;
      case "help":
        w.array(6);
        for (const line of ["CLIENT <subcommand> [<arg> ...]. Subcommands are:", "ID", "GETNAME", "SETNAME <name>", "SETINFO <LIB-NAME|LIB-VER> <value>", "INFO | LIST"]) w.simple(line);
        return;
      default:
        throw new CommandError(Errors.unknownSubcommand(argString(a, 1), "client"));
    }
  },
};

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
        if (v !== v) throw new CommandError("ERR Protocol version is not an integer or out of range");
        if (v !== 2 && v !== 3) throw new CommandError("NOPROTO unsupported protocol version");
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
        } else throw new CommandError(`ERR Syntax error in HELLO option '${argString(a, i)}'`);
      }
      if (user !== null) authenticate(ctx, conn, user, pass);
      if (!conn.authenticated) {
        throw new CommandError(
          "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
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
      if (db !== db) throw new CommandError("ERR value is not an integer or out of range");
      if (db !== 0) throw new CommandError("ERR DB index is out of range");
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
    run(ctx, conn, _a, w) {
      conn.name = "";
      conn.out.proto = 2;
      w.proto = 2;
      conn.authenticated = ctx.config.requirepass === "";
      w.simple("RESET");
    },
  },
  client,
];
