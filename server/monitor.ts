/**
 * MONITOR: clients that see every command the server runs, as Redis prints them:
 * `+1701234567.123456 [0 127.0.0.1:50000] "VGET" "k" "0"`. Every command passes through the
 * main thread's dispatch, which feeds them here: commands of every connection and every shard.
 */
import type { ArgList } from "../core/args.ts";
import { argString } from "../core/args.ts";
import type { CommandFlag, CommandSpec } from "../core/command_spec.ts";
import type { Connection } from "./connection.ts";

export class Monitors {
  /** Connections in monitor mode. */
  readonly conns = new Set<Connection>();

  constructor(
    /** Writes a line to a monitoring connection (out of turn: it answers no command). */
    private readonly push: (conn: Connection, line: Uint8Array) => void,
  ) {}

  /** Shows `a`, a command of `from`, to every monitor (`command` given: a main-thread command, whose passwords are hidden). */
  feed(from: Connection, a: ArgList, command?: CommandSpec): void {
    const micros = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    let args: Uint8Array[] = Array.from({ length: a.argc }, (_, i) => a.buf.subarray(a.argStart[i], a.argEnd[i]));
    if (command !== undefined) args = redacted(command, args);
    let line = `+${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, "0")} [0 ${from.address}]`;
    for (const arg of args) line += ` ${quoted(arg)}`;
    const bytes = Buffer.from(`${line}\r\n`, "latin1");
    for (const conn of this.conns) {
      if (conn.closed) this.conns.delete(conn);
      else this.push(conn, bytes);
    }
  }
}

/** An argument as Redis's sdscatrepr writes it: in double quotes, escapes for \ " \n \r \t \a \b, \xHH for other unprintable bytes. */
function quoted(arg: Uint8Array): string {
  let out = '"';
  for (const b of arg) {
    if (b === 0x5c || b === 0x22) out += `\\${String.fromCharCode(b)}`;
    else if (b === 0x0a) out += "\\n";
    else if (b === 0x0d) out += "\\r";
    else if (b === 0x09) out += "\\t";
    else if (b === 0x07) out += "\\a";
    else if (b === 0x08) out += "\\b";
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return `${out}"`;
}

/** A command's flags, or its subcommand's (CLIENT KILL is admin, CLIENT ID is not). */
export function flagsOf(command: CommandSpec, a: ArgList): readonly CommandFlag[] {
  if (command.subcommands !== undefined && a.argc > 1) {
    const name = argString(a, 1).toLowerCase();
    const sub = command.subcommands.find((s) => s.name === name);
    if (sub !== undefined) return sub.flags;
  }
  return command.flags;
}

const REDACTED = Buffer.from("(redacted)");

/** Arguments with passwords replaced, as Redis shows AUTH and HELLO ... AUTH in MONITOR and the slow log. */
export function redacted(command: CommandSpec, args: Uint8Array[]): Uint8Array[] {
  if (command.name === "auth") return args.map((x, i) => (i === 0 ? x : REDACTED));
  if (command.name !== "hello") return args;
  const out = [...args];
  for (let i = 2; i < out.length; i++) {
    if (Buffer.from(out[i]).toString("latin1").toLowerCase() !== "auth") continue;
    for (let k = i + 1; k <= i + 2 && k < out.length; k++) out[k] = REDACTED;
    i += 2;
  }
  return out;
}
