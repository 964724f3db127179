/**
 * CLIENT PAUSE: while a pause lasts, clients' commands wait (all of them, or with WRITE only
 * those that write). A waiting command is held as MMAP holds one: its connection stops parsing
 * until the pause ends, and then runs it and the input behind it.
 */
import type { CommandSpec } from "../core/command_spec.ts";
import type { Connection } from "./connection.ts";

export type PauseMode = "all" | "write";

export class ClientPause {
  private mode: PauseMode | null = null;
  private endsAt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly waiting = new Set<Connection>();

  constructor(
    /** Runs a connection's held command and the input behind it. */
    private readonly resume: (conn: Connection) => void,
  ) {}

  /** Pauses clients for `ms` milliseconds; a pause already on lasts to the later end, in the stricter mode. */
  pause(ms: number, mode: PauseMode): void {
    if (this.mode !== "all") this.mode = mode;
    const end = Date.now() + ms;
    if (end <= this.endsAt) return;
    this.endsAt = end;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.unpause(), ms);
    // A pause must not keep a server that is exiting alive.
    this.timer.unref();
  }

  /** Ends the pause: the held commands run, in the order their clients were held. */
  unpause(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.mode = null;
    this.endsAt = 0;
    const held = [...this.waiting];
    this.waiting.clear();
    for (const conn of held) if (!conn.closed) this.resume(conn);
  }

  /** True when `command` of `conn` must wait for the pause to end (the caller holds it). */
  holds(conn: Connection, command: CommandSpec): boolean {
    if (this.mode === null) return false;
    if (this.mode === "write" && !command.flags.includes("write")) return false;
    this.waiting.add(conn);
    return true;
  }

  /** Clients whose commands wait for the pause to end (INFO blocked_clients). */
  get waitingClients(): number {
    return this.waiting.size;
  }
}
