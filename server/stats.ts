/**
 * The server's counters, as INFO reports them.
 */
export class Stats {
  connectionsReceived = 0;
  rejectedConnections = 0;
  commandsProcessed = 0;
  protocolErrors = 0;
  outputLimitDisconnects = 0;
  /** Keys whose binding could not be restored at start, with the reason. */
  readonly bindingsFailed = new Map<string, string>();
  shardRestarts = 0;
  lastSave = Math.floor(Date.now() / 1000);
  readonly startedAt = Date.now();
}
