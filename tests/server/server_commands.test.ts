/**
 * Connection and server commands over a real socket, byte-exact where the reply is fixed:
 * errors for unknown commands, wrong arity and DEBUG while it is off, AUTH / HELLO AUTH with
 * --requirepass, SELECT, CLIENT, COMMAND, CONFIG, INFO, TIME, QUIT and RESET.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "bun";
import { resp, RespClient } from "../../bench/resp_client.ts";
import { parseArgs } from "../../server/config_flags.ts";
import { hasTool, startServer, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(30_000);

let server: TestServer;

beforeAll(async () => {
  server = await startServer({ args: ["--workers", "2"] });
});

afterAll(async () => {
  await server.stop();
  server.cleanup();
});

/** Sends one command and returns its reply as text. */
async function ask(c: RespClient, ...args: string[]): Promise<string> {
  c.write(resp(...args));
  return (await c.readReplies(1)).toString();
}

/** Runs `body` with a fresh connection to `port`, closed afterwards. */
async function withClient<T>(port: number, body: (c: RespClient) => Promise<T>): Promise<T> {
  const c = await RespClient.connect(port);
  try {
    return await body(c);
  } finally {
    c.close();
  }
}

/** The text of a RESP2 bulk string reply, or of each bulk string in an array of them. */
function bulks(reply: string): string[] {
  const b = Buffer.from(reply);
  const out: string[] = [];
  let at = b[0] === 42 /* * */ ? b.indexOf("\r\n") + 2 : 0;
  while (at < b.length) {
    const lineEnd = b.indexOf("\r\n", at);
    const length = Number(b.subarray(at + 1, lineEnd).toString());
    out.push(b.subarray(lineEnd + 2, lineEnd + 2 + length).toString());
    at = lineEnd + 2 + length + 2;
  }
  return out;
}

describe("errors", () => {
  test("unknown command: Redis's exact text", async () => {
    await withClient(server.port, async (c) => {
      expect(await ask(c, "FOO", "a", "b")).toBe("-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n");
      expect(await ask(c, "foo")).toBe("-ERR unknown command 'foo', with args beginning with: \r\n");
      // An unknown command is an error reply, not a dropped connection.
      expect(await ask(c, "PING")).toBe("+PONG\r\n");
    });
  });

  test("wrong arity names the command in lowercase", async () => {
    await withClient(server.port, async (c) => {
      expect(await ask(c, "VGET", "k")).toBe("-ERR wrong number of arguments for 'vget' command\r\n");
      expect(await ask(c, "ECHO")).toBe("-ERR wrong number of arguments for 'echo' command\r\n");
      expect(await ask(c, "echo", "a", "b")).toBe("-ERR wrong number of arguments for 'echo' command\r\n");
      expect(await ask(c, "PING", "a", "b")).toBe("-ERR wrong number of arguments for 'ping' command\r\n");
      expect(await ask(c, "MMAP", "k")).toBe("-ERR wrong number of arguments for 'mmap' command\r\n");
      expect(await ask(c, "Time", "now")).toBe("-ERR wrong number of arguments for 'time' command\r\n");
    });
  });

  test.skipIf(!hasTool("redis-cli"))("DEBUG without --enable-debug-command: refused, naming that flag (redis-cli)", () => {
    const r = spawnSync(["redis-cli", "-p", String(server.port), "DEBUG", "CRASH-SHARD", "0"]);
    expect(r.stdout.toString()).toBe(
      "ERR DEBUG command not allowed. Start mmapd with --enable-debug-command (or the line 'enable-debug-command yes' in its config file) to allow it.\n\n",
    );
    // A flag mmapd takes.
    expect(parseArgs(["--enable-debug-command"]).kind).toBe("run");
  });

  test("AUTH without a configured password", async () => {
    await withClient(server.port, async (c) => {
      expect(await ask(c, "AUTH", "x")).toBe(
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
      );
    });
  });
});

describe("--requirepass", () => {
  let guarded: TestServer;
  beforeAll(async () => {
    guarded = await startServer({ args: ["--workers", "1", "--requirepass", "s3cret"] });
  });
  afterAll(async () => {
    await guarded.stop();
    guarded.cleanup();
  });

  test("commands need AUTH first; a wrong password is WRONGPASS; the right one unlocks", async () => {
    await withClient(guarded.port, async (c) => {
      expect(await ask(c, "PING")).toBe("-NOAUTH Authentication required.\r\n");
      expect(await ask(c, "VGET", "k", "0")).toBe("-NOAUTH Authentication required.\r\n");
      expect(await ask(c, "AUTH", "wrong")).toBe("-WRONGPASS invalid username-password pair or user is disabled.\r\n");
      expect(await ask(c, "AUTH", "other", "s3cret")).toBe("-WRONGPASS invalid username-password pair or user is disabled.\r\n");
      expect(await ask(c, "PING")).toBe("-NOAUTH Authentication required.\r\n");
      expect(await ask(c, "AUTH", "s3cret")).toBe("+OK\r\n");
      expect(await ask(c, "PING")).toBe("+PONG\r\n");
    });
    await withClient(guarded.port, async (c) => {
      expect(await ask(c, "AUTH", "default", "s3cret")).toBe("+OK\r\n");
      expect(await ask(c, "ECHO", "in")).toBe("$2\r\nin\r\n");
    });
  });

  test("HELLO 3 AUTH default pass authenticates and switches to RESP3", async () => {
    await withClient(guarded.port, async (c) => {
      const refused = await ask(c, "HELLO", "3");
      expect(refused.startsWith("-NOAUTH HELLO must be called with the client already authenticated")).toBe(true);
      expect(await ask(c, "HELLO", "3", "AUTH", "default", "nope")).toBe(
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
      );
      const hello = await ask(c, "HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "viahello");
      expect(hello.startsWith("%7\r\n$6\r\nserver\r\n$5\r\nmmapd\r\n")).toBe(true);
      expect(await ask(c, "CLIENT", "GETNAME")).toBe("$8\r\nviahello\r\n");
      expect(await ask(c, "CLIENT", "INFO")).toMatch(/^=\d+\r\ntxt:id=\d+ .* resp=3 /);
    });
  });

  test("RESET drops the authentication", async () => {
    await withClient(guarded.port, async (c) => {
      expect(await ask(c, "AUTH", "s3cret")).toBe("+OK\r\n");
      expect(await ask(c, "RESET")).toBe("+RESET\r\n");
      expect(await ask(c, "PING")).toBe("-NOAUTH Authentication required.\r\n");
    });
  });

  test("CONFIG SET requirepass applies to new connections; existing ones stay in", async () => {
    await withClient(guarded.port, async (admin) => {
      expect(await ask(admin, "AUTH", "s3cret")).toBe("+OK\r\n");
      expect(await ask(admin, "CONFIG", "SET", "requirepass", "n3w")).toBe("+OK\r\n");
      try {
        expect(await ask(admin, "PING")).toBe("+PONG\r\n");
        expect(await ask(admin, "CONFIG", "GET", "requirepass")).toBe("*2\r\n$11\r\nrequirepass\r\n$3\r\nn3w\r\n");
        await withClient(guarded.port, async (c) => {
          expect(await ask(c, "PING")).toBe("-NOAUTH Authentication required.\r\n");
          expect(await ask(c, "AUTH", "s3cret")).toBe("-WRONGPASS invalid username-password pair or user is disabled.\r\n");
          expect(await ask(c, "AUTH", "n3w")).toBe("+OK\r\n");
        });
        expect(await ask(admin, "CONFIG", "SET", "requirepass", "")).toBe("+OK\r\n");
        await withClient(guarded.port, async (c) => {
          expect(await ask(c, "PING")).toBe("+PONG\r\n");
        });
      } finally {
        await ask(admin, "CONFIG", "SET", "requirepass", "s3cret");
      }
    });
  });
});

describe("connection commands", () => {
  test("SELECT 0 is the only database", async () => {
    await withClient(server.port, async (c) => {
      expect(await ask(c, "SELECT", "0")).toBe("+OK\r\n");
      expect(await ask(c, "SELECT", "1")).toBe("-ERR DB index is out of range\r\n");
      expect(await ask(c, "SELECT", "x")).toBe("-ERR value is not an integer or out of range\r\n");
    });
  });

  test("CLIENT ID, SETNAME, GETNAME, SETINFO, INFO, LIST", async () => {
    const first = await RespClient.connect(server.port);
    const second = await RespClient.connect(server.port);
    try {
      const id1 = Number(/^:(\d+)\r\n$/.exec(await ask(first, "CLIENT", "ID"))![1]);
      const id2 = Number(/^:(\d+)\r\n$/.exec(await ask(second, "CLIENT", "ID"))![1]);
      expect(id2).toBeGreaterThan(id1);
      expect(await ask(first, "CLIENT", "ID")).toBe(`:${id1}\r\n`);

      expect(await ask(first, "CLIENT", "GETNAME")).toBe("$-1\r\n");
      expect(await ask(first, "CLIENT", "SETNAME", "first-conn")).toBe("+OK\r\n");
      expect(await ask(first, "CLIENT", "GETNAME")).toBe("$10\r\nfirst-conn\r\n");
      expect(await ask(first, "CLIENT", "SETNAME", "has space")).toBe(
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n",
      );
      expect(await ask(first, "CLIENT", "GETNAME")).toBe("$10\r\nfirst-conn\r\n");

      expect(await ask(first, "CLIENT", "SETINFO", "lib-name", "mmapd-tests")).toBe("+OK\r\n");
      expect(await ask(first, "CLIENT", "SETINFO", "LIB-VER", "1.2.3")).toBe("+OK\r\n");
      expect(await ask(first, "CLIENT", "SETINFO", "lib-color", "red")).toBe("-ERR Unrecognized option 'lib-color'\r\n");

      const info = await ask(first, "CLIENT", "INFO");
      const [, length, body] = /^\$(\d+)\r\n([\s\S]*)\r\n$/.exec(info)!;
      expect(Buffer.byteLength(body!)).toBe(Number(length));
      expect(body).toMatch(
        new RegExp(
          `^id=${id1} addr=127\\.0\\.0\\.1:\\d+ .*name=first-conn .*cmd=client .*resp=2 lib-name=mmapd-tests lib-ver=1\\.2\\.3\\n$`,
        ),
      );

      const list = bulks(await ask(second, "CLIENT", "LIST"))[0]!
        .split("\n")
        .filter((l) => l !== "");
      const ids = list.map((l) => Number(/^id=(\d+) /.exec(l)![1]));
      expect(ids).toContain(id1);
      expect(ids).toContain(id2);
      expect(list.find((l) => l.startsWith(`id=${id1} `))).toContain(" name=first-conn ");
      expect(await ask(second, "CLIENT", "NOSUCH")).toBe("-ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP.\r\n");
    } finally {
      first.close();
      second.close();
    }
  });

  test("HELLO refuses bad versions and options", async () => {
    await withClient(server.port, async (c) => {
      expect(await ask(c, "HELLO", "three")).toBe("-ERR Protocol version is not an integer or out of range\r\n");
      expect(await ask(c, "HELLO", "1")).toBe("-NOPROTO unsupported protocol version\r\n");
      expect(await ask(c, "HELLO", "3", "FAST")).toBe("-ERR Syntax error in HELLO option 'FAST'\r\n");
      // None of these switched the protocol.
      expect(await ask(c, "CLIENT", "GETNAME")).toBe("$-1\r\n");
      expect((await ask(c, "HELLO", "2", "SETNAME", "hello-name")).startsWith("*14\r\n")).toBe(true);
      expect(await ask(c, "CLIENT", "GETNAME")).toBe("$10\r\nhello-name\r\n");
    });
  });

  test("QUIT answers +OK and closes; nothing after it runs", async () => {
    await withClient(server.port, async (c) => {
      c.write(Buffer.concat([resp("PING"), resp("QUIT"), resp("ECHO", "never")]));
      const got = await c.readUntil(() => false, 5000);
      expect(got.toString()).toBe("+PONG\r\n+OK\r\n");
      expect(c.closed).toBe(true);
    });
  });

  test("QUIT after a command a shard answers still gets that reply first", async () => {
    await withClient(server.port, async (c) => {
      c.write(Buffer.concat([resp("VGET", "nosuchkey", "0"), resp("QUIT")]));
      const got = await c.readUntil(() => false, 5000);
      expect(got.toString()).toBe("-ERR You must do MMAP first\r\n+OK\r\n");
      expect(c.closed).toBe(true);
    });
  });

  test("RESET goes back to RESP2 and clears the name", async () => {
    await withClient(server.port, async (c) => {
      expect((await ask(c, "HELLO", "3")).startsWith("%7\r\n")).toBe(true);
      expect(await ask(c, "CLIENT", "SETNAME", "before-reset")).toBe("+OK\r\n");
      expect(await ask(c, "RESET")).toBe("+RESET\r\n");
      expect(await ask(c, "CLIENT", "GETNAME")).toBe("$-1\r\n");
      expect(await ask(c, "PING")).toBe("+PONG\r\n");
    });
  });
});

describe("COMMAND", () => {
  test("COMMAND lists every command, as many as COMMAND COUNT says", async () => {
    await withClient(server.port, async (c) => {
      const count = Number(/^:(\d+)\r\n$/.exec(await ask(c, "COMMAND", "COUNT"))![1]);
      const all = await ask(c, "COMMAND");
      expect(all.startsWith(`*${count}\r\n`)).toBe(true);
      for (const name of ["vget", "vset", "mmap", "ping", "hello", "config", "info", "client"]) {
        expect(all).toContain(`*10\r\n$${name.length}\r\n${name}\r\n`);
      }
      // The names must not repeat.
      const names = [...all.matchAll(/\*10\r\n\$\d+\r\n([a-z_]+)\r\n/g)].map((m) => m[1]);
      expect(names.length).toBe(count);
      expect(new Set(names).size).toBe(count);
    });
  });

  test("COMMAND INFO vget: name, arity, flags, keys, ACL categories, key spec", async () => {
    const keySpec = (access: string, lastkey: number) =>
      `*1\r\n*6\r\n$5\r\nflags\r\n${access}$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n` +
      `$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:${lastkey}\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n`;
    await withClient(server.port, async (c) => {
      expect(await ask(c, "COMMAND", "INFO", "vget")).toBe(
        `*1\r\n*10\r\n$4\r\nvget\r\n:3\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*2\r\n+@read\r\n+@fast\r\n*0\r\n${keySpec("*2\r\n+RO\r\n+access\r\n", 0)}*0\r\n`,
      );
      expect(await ask(c, "COMMAND", "INFO", "VSET")).toBe(
        `*1\r\n*10\r\n$4\r\nvset\r\n:-4\r\n*1\r\n+write\r\n:1\r\n:1\r\n:1\r\n*2\r\n+@write\r\n+@slow\r\n*0\r\n${keySpec("*2\r\n+RW\r\n+update\r\n", 0)}*0\r\n`,
      );
      expect(await ask(c, "COMMAND", "INFO", "del")).toContain(keySpec("*2\r\n+RM\r\n+delete\r\n", -1));
    });
  });
});

describe("CONFIG", () => {
  test("CONFIG GET * lists the parameters the contract names", async () => {
    await withClient(server.port, async (c) => {
      const reply = await ask(c, "CONFIG", "GET", "*");
      const values = bulks(reply);
      const map = new Map<string, string>();
      for (let i = 0; i < values.length; i += 2) map.set(values[i]!, values[i + 1]!);
      expect(reply.startsWith(`*${values.length}\r\n`)).toBe(true);
      for (const name of ["save", "appendonly", "port", "dir", "requirepass", "maxclients", "fsync"]) expect(map.has(name)).toBe(true);
      expect(map.get("port")).toBe(String(server.port));
      expect(map.get("appendonly")).toBe("no");
      expect(map.get("requirepass")).toBe("");
      expect(map.get("workers")).toBe("2");
    });
  });

  test("CONFIG GET with a glob pattern, and several patterns", async () => {
    await withClient(server.port, async (c) => {
      expect(await ask(c, "CONFIG", "GET", "max*")).toBe("*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n");
      expect(await ask(c, "CONFIG", "GET", "MAXCLIENTS")).toBe("*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n");
      expect(await ask(c, "CONFIG", "GET", "?syn?", "appendonl[xy]")).toBe(
        "*4\r\n$5\r\nfsync\r\n$8\r\neverysec\r\n$10\r\nappendonly\r\n$2\r\nno\r\n",
      );
      expect(await ask(c, "CONFIG", "GET", "nomatch*")).toBe("*0\r\n");
    });
  });

  test("CONFIG SET round trips maxclients, fsync and timeout", async () => {
    await withClient(server.port, async (c) => {
      try {
        expect(await ask(c, "CONFIG", "SET", "maxclients", "500")).toBe("+OK\r\n");
        expect(await ask(c, "CONFIG", "GET", "maxclients")).toBe("*2\r\n$10\r\nmaxclients\r\n$3\r\n500\r\n");
        expect(await ask(c, "CONFIG", "SET", "fsync", "always")).toBe("+OK\r\n");
        expect(await ask(c, "CONFIG", "GET", "fsync")).toBe("*2\r\n$5\r\nfsync\r\n$6\r\nalways\r\n");
        expect(await ask(c, "CONFIG", "SET", "timeout", "300", "fsync", "no")).toBe("+OK\r\n");
        expect(await ask(c, "CONFIG", "GET", "timeout", "fsync")).toBe("*4\r\n$7\r\ntimeout\r\n$3\r\n300\r\n$5\r\nfsync\r\n$2\r\nno\r\n");
        // Tools that only know Redis's names still work.
        expect(await ask(c, "CONFIG", "SET", "save", "")).toBe("+OK\r\n");
        expect(await ask(c, "CONFIG", "SET", "appendonly", "no")).toBe("+OK\r\n");
      } finally {
        await ask(c, "CONFIG", "SET", "maxclients", "10000", "fsync", "everysec", "timeout", "0");
      }
      expect(await ask(c, "CONFIG", "GET", "timeout")).toBe("*2\r\n$7\r\ntimeout\r\n$1\r\n0\r\n");
    });
  });

  test("CONFIG SET timeout closes idle clients, not busy ones", async () => {
    const idle = await RespClient.connect(server.port);
    const busy = await RespClient.connect(server.port);
    try {
      await withClient(server.port, async (c) => {
        expect(await ask(c, "CONFIG", "SET", "timeout", "1")).toBe("+OK\r\n");
        try {
          const deadline = Date.now() + 5000;
          while (!idle.closed && Date.now() < deadline) {
            expect(await ask(busy, "PING")).toBe("+PONG\r\n");
            expect(await ask(c, "PING")).toBe("+PONG\r\n");
            await Bun.sleep(100);
          }
          expect(idle.closed).toBe(true);
          expect(busy.closed).toBe(false);
        } finally {
          expect(await ask(c, "CONFIG", "SET", "timeout", "0")).toBe("+OK\r\n");
        }
      });
    } finally {
      idle.close();
      busy.close();
    }
  });

  test("CONFIG SET refuses immutable, unknown and bad values, and applies nothing on error", async () => {
    await withClient(server.port, async (c) => {
      expect(await ask(c, "CONFIG", "SET", "port", "1234")).toBe(
        "-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config\r\n",
      );
      expect(await ask(c, "CONFIG", "SET", "dir", "/tmp")).toBe(
        "-ERR CONFIG SET failed (possibly related to argument 'dir') - can't set immutable config\r\n",
      );
      expect(await ask(c, "CONFIG", "SET", "nosuch", "1")).toBe("-ERR Unknown option or number of arguments for CONFIG SET - 'nosuch'\r\n");
      const bad = await ask(c, "CONFIG", "SET", "maxclients", "7", "fsync", "sometimes");
      expect(bad.startsWith("-ERR CONFIG SET failed (possibly related to argument 'fsync') - ")).toBe(true);
      expect(await ask(c, "CONFIG", "GET", "maxclients")).toBe("*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n");
      expect(
        (await ask(c, "CONFIG", "SET", "maxclients", "many")).startsWith(
          "-ERR CONFIG SET failed (possibly related to argument 'maxclients') - ",
        ),
      ).toBe(true);
      expect(await ask(c, "CONFIG", "SET", "maxclients")).toBe("-ERR wrong number of arguments for 'config|set' command\r\n");
    });
  });
});

describe("INFO and TIME", () => {
  const sectionsOf = (text: string) => [...text.matchAll(/^# (\w[\w ]*)\r$/gm)].map((m) => m[1]);

  test("INFO lists the sections; INFO server only that one", async () => {
    await withClient(server.port, async (c) => {
      const all = bulks(await ask(c, "INFO"))[0]!;
      const sections = sectionsOf(all);
      for (const name of ["Server", "Clients", "Memory", "Stats", "Keyspace", "Shards"]) expect(sections).toContain(name);
      const only = bulks(await ask(c, "INFO", "server"))[0]!;
      expect(sectionsOf(only)).toEqual(["Server"]);
      expect(only).toContain(`\r\ntcp_port:${server.port}\r\n`);
      expect(only).toContain("\r\nworkers:2\r\n");
      expect(only).toMatch(/\r\nprocess_id:\d+\r\n/);
      const two = bulks(await ask(c, "INFO", "CLIENTS", "stats"))[0]!;
      expect(sectionsOf(two)).toEqual(["Clients", "Stats"]);
      expect(two).toMatch(/\r\nconnected_clients:[1-9]\d*\r\n/);
      expect(two).toMatch(/\r\ntotal_commands_processed:[1-9]\d*\r\n/);
      const shards = bulks(await ask(c, "INFO", "shards"))[0]!;
      expect(shards).toMatch(/^# Shards\r\nshard0:alive=1,[^\r]*\r\nshard1:alive=1,[^\r]*\r\n$/);
    });
  });

  test("INFO keyspace counts bound keys", async () => {
    await withClient(server.port, async (c) => {
      expect(await ask(c, "MMAP", "infokey", "infokey.f64")).toBe(":0\r\n");
      try {
        const keyspace = bulks(await ask(c, "INFO", "keyspace"))[0]!;
        expect(keyspace).toMatch(/^# Keyspace\r\ndb0:keys=\d+,expires=0,avg_ttl=0\r\n$/);
      } finally {
        expect(await ask(c, "DEL", "infokey")).toBe(":1\r\n");
      }
    });
  });

  test("TIME is [seconds, microseconds] of now", async () => {
    await withClient(server.port, async (c) => {
      const before = Date.now();
      const reply = await ask(c, "TIME");
      const after = Date.now();
      const m = /^\*2\r\n\$\d+\r\n(\d+)\r\n\$\d+\r\n(\d+)\r\n$/.exec(reply)!;
      expect(m).not.toBeNull();
      const micros = Number(m[2]);
      expect(micros).toBeLessThan(1_000_000);
      const ms = Number(m[1]) * 1000 + micros / 1000;
      expect(ms).toBeGreaterThanOrEqual(before - 50);
      expect(ms).toBeLessThanOrEqual(after + 50);
    });
  });
});
