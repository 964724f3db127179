/**
 * CLIENT and its subcommands: a connection's id, name, library and CLIENT LIST line, and the
 * other connections (LIST, KILL, PAUSE, UNPAUSE).
 */
import type { ArgList } from "../../core/args.ts";
import { argIs, argString } from "../../core/args.ts";
import { CommandError, ConnectionErrors, Errors } from "../../core/errors.ts";
import type { ReplyWriter } from "../../protocol/reply_writer.ts";
import type { Connection } from "../connection.ts";
import type { ServerContext } from "../context.ts";
import type { ServerCommand } from "./server_command.ts";

/** One CLIENT LIST / CLIENT INFO line. */
function clientLine(conn: Connection): string {
  const now = Date.now();
  return (
    `id=${conn.id} addr=${conn.address} laddr=${localAddress(conn)} fd=-1 name=${conn.name} age=${Math.floor((now - conn.createdAt) / 1000)} ` +
    `idle=${Math.floor((now - conn.lastActive) / 1000)} flags=${conn.monitoring ? "O" : "N"} db=0 sub=0 psub=0 ssub=0 multi=-1 watch=0 qbuf=${conn.parser.buffered()} ` +
    `obl=${conn.out.length} oll=${conn.owed} omem=${conn.unsent} tot-mem=0 events=r cmd=${conn.lastCommand} user=default redir=-1 resp=${conn.out.proto} ` +
    `lib-name=${conn.libName} lib-ver=${conn.libVersion}\n`
  );
}

/** The server's end of a connection, `ip:port` (CLIENT LIST laddr, CLIENT KILL LADDR). */
function localAddress(conn: Connection): string {
  return `${conn.socket.localAddress}:${conn.socket.localPort}`;
}

/**
 * CLIENT KILL: the old form `CLIENT KILL addr:port` (OK, or an error if no client has that
 * address), or filters `ID id`, `ADDR addr:port`, `LADDR addr:port`, `USER name`, `TYPE type`,
 * `SKIPME yes|no` (default yes), answering how many clients were closed. A client that kills
 * itself gets the reply first.
 */
function clientKill(ctx: ServerContext, conn: Connection, a: ArgList, w: ReplyWriter): void {
  const kill = (target: Connection) => {
    if (target === conn) conn.closeAfterReplies = true;
    else ctx.closeClient(target);
  };
  if (a.argc === 3) {
    const addr = argString(a, 2);
    const target = [...ctx.connections.values()].find((c) => c.address === addr);
    if (target === undefined) throw new CommandError(ConnectionErrors.noSuchClient);
    kill(target);
    w.simple("OK");
    return;
  }
  if (a.argc % 2 !== 0) throw new CommandError(Errors.syntax);
  const tests: ((c: Connection) => boolean)[] = [];
  let skipMe = true;
  for (let i = 2; i < a.argc; i += 2) {
    const value = argString(a, i + 1);
    if (argIs(a, i, "id")) {
      const id = /^[0-9]+$/.test(value) ? Number(value) : 0;
      if (!(id > 0)) throw new CommandError(ConnectionErrors.clientIdNotPositive);
      tests.push((c) => c.id === id);
    } else if (argIs(a, i, "addr")) tests.push((c) => c.address === value);
    else if (argIs(a, i, "laddr")) tests.push((c) => localAddress(c) === value);
    else if (argIs(a, i, "user")) {
      if (value !== "default") throw new CommandError(ConnectionErrors.noSuchUser(value));
    } else if (argIs(a, i, "type")) {
      const type = value.toLowerCase();
      if (!["normal", "master", "replica", "slave", "pubsub"].includes(type))
        throw new CommandError(ConnectionErrors.unknownClientType(value));
      // Every client here is a normal one.
      if (type !== "normal") tests.push(() => false);
    } else if (argIs(a, i, "skipme")) {
      const v = value.toLowerCase();
      if (v !== "yes" && v !== "no") throw new CommandError(Errors.syntax);
      skipMe = v === "yes";
    } else throw new CommandError(Errors.syntax);
  }
  let killed = 0;
  for (const c of [...ctx.connections.values()]) {
    if ((skipMe && c === conn) || !tests.every((test) => test(c))) continue;
    kill(c);
    killed++;
  }
  w.integer(killed);
}

/** CLIENT PAUSE timeout [WRITE|ALL]. */
function clientPause(ctx: ServerContext, a: ArgList): void {
  const text = argString(a, 2);
  const ms = /^-?[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(ms)) throw new CommandError(Errors.timeoutNotInteger);
  if (ms < 0) throw new CommandError(Errors.timeoutNegative);
  let mode: "all" | "write" = "all";
  if (a.argc === 4) {
    if (argIs(a, 3, "write")) mode = "write";
    else if (!argIs(a, 3, "all")) throw new CommandError(ConnectionErrors.pauseMode);
  }
  ctx.pause.pause(ms, mode);
}

/** CLIENT HELP, in Redis's form, for the subcommands mmapd has. */
const CLIENT_HELP = [
  "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
  "GETNAME",
  "    Return the name of the current connection.",
  "ID",
  "    Return the ID of the current connection.",
  "INFO",
  "    Return information about the current client connection.",
  "KILL <ip:port>",
  "    Kill connection made from <ip:port>.",
  "KILL <option> <value> [<option> <value> [...]]",
  "    Kill connections. Options are:",
  "    * ADDR (<ip:port>|<unixsocket>:0)",
  "      Kill connections made from the specified address",
  "    * LADDR (<ip:port>|<unixsocket>:0)",
  "      Kill connections made to specified local address",
  "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
  "      Kill connections by type.",
  "    * USER <username>",
  "      Kill connections authenticated by <username>.",
  "    * SKIPME (YES|NO)",
  "      Skip killing current connection (default: yes).",
  "    * ID <client-id>",
  "      Kill connections by client id.",
  "LIST",
  "    Return information about client connections.",
  "UNPAUSE",
  "    Stop the current client pause, resuming traffic.",
  "PAUSE <timeout> [WRITE|ALL]",
  "    Suspend all, or just write, clients for <timeout> milliseconds.",
  "SETNAME <name>",
  "    Assign the name <name> to the current connection.",
  "SETINFO <option> <value>",
  "    Set client meta attr. Options are:",
  "    * LIB-NAME: the client lib name.",
  "    * LIB-VER: the client lib version.",
  "NO-EVICT (ON|OFF)",
  "    Protect current client connection from eviction (accepted; mmapd evicts nothing).",
  "NO-TOUCH (ON|OFF)",
  "    Will not touch LRU/LFU stats when this mode is on (accepted; mmapd keeps none).",
  "HELP",
  "    Prints this help.",
];

export function validName(name: string): boolean {
  // Redis refuses spaces and control characters in client names.
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 32 || c === 127 || /\s/.test(name[i])) return false;
  }
  return true;
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
    {
      name: "setinfo",
      arity: 4,
      flags: ["fast", "loading", "stale"],
      summary: "Sets the client library's name or version.",
      syntax: "LIB-NAME|LIB-VER value",
    },
    { name: "info", arity: 2, flags: ["loading", "stale"], summary: "Returns this connection's CLIENT LIST line.", syntax: "" },
    { name: "list", arity: -2, flags: ["admin", "loading", "stale"], summary: "Lists the open connections.", syntax: "" },
    {
      name: "kill",
      arity: -3,
      flags: ["admin", "loading", "stale"],
      summary: "Closes the connections from an address, or those the filters match.",
      syntax: "ip:port|filter value [filter value ...]",
    },
    {
      name: "pause",
      arity: -3,
      flags: ["admin", "loading", "stale"],
      summary: "Makes clients' commands (all, or only writes) wait for a number of milliseconds.",
      syntax: "timeout [WRITE|ALL]",
    },
    { name: "unpause", arity: 2, flags: ["admin", "loading", "stale"], summary: "Ends a CLIENT PAUSE.", syntax: "" },
    { name: "no-evict", arity: 3, flags: ["admin", "loading", "stale"], summary: "Accepted: mmapd evicts no client.", syntax: "ON|OFF" },
    { name: "no-touch", arity: 3, flags: ["loading", "stale"], summary: "Accepted: mmapd keeps no access times.", syntax: "ON|OFF" },
    { name: "help", arity: 2, flags: ["loading", "stale"], summary: "Lists the subcommands.", syntax: "" },
  ],
  run(ctx, conn, a, w) {
    const sub = argString(a, 1).toLowerCase();
    const need = (n: number) => {
      if (a.argc !== n) throw new CommandError(Errors.unknownSubcommandOrArity(argString(a, 1), "CLIENT"));
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
        if (!validName(value)) throw new CommandError(ConnectionErrors.badLibInfo);
        if (argIs(a, 2, "lib-name")) conn.libName = value;
        else if (argIs(a, 2, "lib-ver")) conn.libVersion = value;
        else throw new CommandError(ConnectionErrors.unrecognizedOption(argString(a, 2)));
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
        w.lines(CLIENT_HELP);
        return;
      case "kill":
        if (a.argc < 3) throw new CommandError(Errors.wrongArity("client|kill"));
        clientKill(ctx, conn, a, w);
        return;
      case "pause":
        if (a.argc < 3) throw new CommandError(Errors.wrongArity("client|pause"));
        if (a.argc > 4) throw new CommandError(Errors.unknownSubcommandOrArity(argString(a, 1), "CLIENT"));
        clientPause(ctx, a);
        w.simple("OK");
        return;
      case "unpause":
        if (a.argc !== 2) throw new CommandError(Errors.wrongArity("client|unpause"));
        ctx.pause.unpause();
        w.simple("OK");
        return;
      case "no-evict":
      case "no-touch":
        // Nothing is evicted and no access times are kept: either setting changes nothing here.
        if (a.argc !== 3) throw new CommandError(Errors.wrongArity(`client|${sub}`));
        if (!argIs(a, 2, "on") && !argIs(a, 2, "off")) throw new CommandError(Errors.syntax);
        w.simple("OK");
        return;
      default:
        throw new CommandError(Errors.unknownSubcommand(argString(a, 1), "client"));
    }
  },
};

export const clientCommands: ServerCommand[] = [client];
