/**
 * WATCH on one shard: which clients watch which of its keys, and which clients saw a watched key
 * change since. A client's EXEC runs only if none of the shards it watched keys on calls it dirty.
 * Clients are connection ids; a shard hears of WATCH, UNWATCH and EXEC in the order the main
 * thread dispatched them, so "after WATCH" means after in that one order.
 */
export class Watches {
  private readonly byKey = new Map<string, Set<number>>();
  private readonly byClient = new Map<number, Set<string>>();
  private readonly dirty = new Set<number>();

  /** True while any key is watched (writes only look for watchers then). */
  get active(): boolean {
    return this.byKey.size > 0;
  }

  watch(client: number, key: string): void {
    let clients = this.byKey.get(key);
    if (clients === undefined) this.byKey.set(key, (clients = new Set()));
    clients.add(client);
    let keys = this.byClient.get(client);
    if (keys === undefined) this.byClient.set(client, (keys = new Set()));
    keys.add(key);
  }

  /** A key changed: every client watching it will have its EXEC refused. */
  touch(key: string): void {
    const clients = this.byKey.get(key);
    if (clients !== undefined) for (const c of clients) this.dirty.add(c);
  }

  isDirty(client: number): boolean {
    return this.dirty.has(client);
  }

  /** The keys `client` watches here. */
  keysOf(client: number): Iterable<string> {
    return this.byClient.get(client) ?? [];
  }

  /** Forgets everything about `client` (EXEC, DISCARD, UNWATCH, RESET, disconnect). */
  clear(client: number): void {
    const keys = this.byClient.get(client);
    if (keys !== undefined) {
      for (const key of keys) {
        const clients = this.byKey.get(key)!;
        clients.delete(client);
        if (clients.size === 0) this.byKey.delete(key);
      }
      this.byClient.delete(client);
    }
    this.dirty.delete(client);
  }
}
