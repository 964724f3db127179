/**
 * Protected mode, as Redis has it: a server that listens beyond the loopback interface with no
 * password set refuses clients that do not come from the loopback interface, telling them why,
 * so that an instance started for local use and exposed by mistake gives nothing away.
 */

/**
 * The reply to a refused client: Redis's text (networking.c, clientAcceptHandler), with mmapd's
 * name and the settings mmapd has (flags, config file lines, CONFIG SET).
 */
export const PROTECTED_MODE_DENIED =
  "-DENIED mmapd is running in protected mode because protected " +
  "mode is enabled and no password is set for the default user. " +
  "In this mode connections are only accepted from the loopback interface. " +
  "If you want to connect from external computers to mmapd you " +
  "may adopt one of the following solutions: " +
  "1) Just disable protected mode sending the command " +
  "'CONFIG SET protected-mode no' from the loopback interface " +
  "by connecting to mmapd from the same host the server is " +
  "running, however MAKE SURE mmapd is not publicly accessible " +
  "from internet if you do so. The change lasts until mmapd restarts. " +
  "2) Alternatively restart mmapd with the '--protected-mode no' option, " +
  "or with the line 'protected-mode no' in its config file. " +
  "3) Set a password for the default user: 'CONFIG SET requirepass <password>' " +
  "from the loopback interface, or restart mmapd with '--requirepass <password>'; " +
  "clients then send AUTH <password>. " +
  "NOTE: You only need to do one of the above things in order for " +
  "the server to start accepting connections from the outside.\r\n";

/** True for 127.0.0.0/8 and ::1, also when written as IPv4-mapped IPv6 (a dual-stack listener). */
function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined || address === "") return false;
  const ip = address.toLowerCase().replace(/^::ffff:/, "");
  return ip.startsWith("127.") || ip === "::1" || ip === "0:0:0:0:0:0:0:1";
}

/** The settings protected mode depends on. */
export interface ProtectedModeSettings {
  protectedMode: boolean;
  requirepass: string;
  /** The address the server listens on. */
  bind: string;
}

/**
 * True if a client from `remoteAddress` must be refused: protected mode is on, no password is set,
 * the server listens beyond the loopback interface, and the client is not on it.
 */
export function refusedByProtectedMode(settings: ProtectedModeSettings, remoteAddress: string | undefined): boolean {
  if (!settings.protectedMode || settings.requirepass !== "") return false;
  if (isLoopbackAddress(settings.bind) || settings.bind.toLowerCase() === "localhost") return false;
  return !isLoopbackAddress(remoteAddress);
}
