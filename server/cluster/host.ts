/**
 * Where cluster mode meets the server: the ClusterHost the server gives its Cluster (bindings,
 * unbinding through the shards, the barrier of a migration's final window), and the two moments
 * the server tells it about (start done, a connection closed).
 */
import { Args } from "../../core/args.ts";
import type { BindingCatalog } from "../catalog.ts";
import type { Connection } from "../connection.ts";
import type { Cluster, ClusterHost } from "./cluster.ts";
import { importConnectionClosed } from "./import.ts";
import { resolveHandOver } from "./migration.ts";
import type { ShardCalls } from "./shard_calls.ts";

/** What of the server a ClusterHost uses. */
interface ServerParts {
  readonly port: number;
  readonly catalog: BindingCatalog;
  readonly shardCalls: ShardCalls;
  flushEverything(done: (error: string | null) => void): void;
}

/** The server's side of what its Cluster needs. */
export function clusterHost(server: ServerParts): ClusterHost {
  const registry = () => server.catalog.registry;
  return {
    port: () => server.port,
    bindings: () => registry().bindings,
    forgetAtStart(key) {
      server.catalog.onCatalog({ op: "unbind", key });
      registry().syncIfNeeded();
    },
    async unbind(keys) {
      const replies = await Promise.all(keys.map((key) => server.shardCalls.run(Args.of("del", Buffer.from(key, "latin1")))));
      const failed = replies.find((r) => r.startsWith("-"));
      if (!registry().syncIfNeeded()) throw new Error(`cannot write ${registry().file}`);
      if (failed !== undefined) throw new Error(failed.slice(1).trim());
    },
    drain: () =>
      new Promise((resolve, reject) => server.flushEverything((error) => (error === null ? resolve() : reject(new Error(error))))),
  };
}

/** The server has started (its shards bind the keys): a hand-over a crash left unclear is resolved. */
export function clusterStarted(cluster: Cluster): void {
  if (cluster.journal.committing !== null) void resolveHandOver(cluster);
}

/** A client connection closed: an import it was making is undone. */
export function clusterConnectionClosed(cluster: Cluster, conn: Connection): void {
  importConnectionClosed(cluster, conn);
}
