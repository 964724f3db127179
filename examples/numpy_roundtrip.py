"""numpy and mmapd, both ways, with redis-py (4.x and later; RESP2).

1. numpy writes a file of doubles with `tofile` into the server's data directory (found with
   CONFIG GET dir; skipped when that directory is not on this machine), MMAP binds it read-only,
   and VRANGE ... RAW reads it back into `numpy.frombuffer`, byte for byte.
2. An int32 file is created through MMAP ... WRITABLE and filled from a numpy array with VADDRAW
   (works against a remote server too); VSETRAW overwrites a slice; VMGET and VSTATS read it.
3. Fixed-width strings: `string 16` is numpy's `S16`.
4. uint64 above 2^63-1: redis-py 4 gets bytes for those, int for the others; int() takes both.

Every reply is checked; a mismatch exits with code 1.

    npm start                              # in another terminal: mmapd on 127.0.0.1:6379
    python3 examples/numpy_roundtrip.py    # needs redis-py and numpy (Debian: python3-redis python3-numpy)

MMAPD_HOST and MMAPD_PORT choose the server (default 127.0.0.1:6379). Paths given to MMAP are
relative to the server's data directory. The file numpy wrote is removed at the end; the files
made through MMAP are left there empty.
"""

import os
import sys

import numpy as np
import redis

HOST = os.environ.get("MMAPD_HOST", "127.0.0.1")
PORT = int(os.environ.get("MMAPD_PORT", "6379"))

SERIES = "example:numpy:series"  # a file written by numpy, bound read-only
COUNTS = "example:numpy:counts"  # int32, created and filled through mmapd
NAMES = "example:numpy:names"  # string 16
BIG = "example:numpy:big"  # uint64
KEYS = [SERIES, COUNTS, NAMES, BIG]
SERIES_FILE = "example_numpy_series.f64"


class Mismatch(Exception):
    pass


def check(label, got, expected):
    """Prints `label -> got`; raises Mismatch when got differs from expected."""
    same = np.array_equal(got, expected) if isinstance(expected, np.ndarray) else got == expected
    if not same:
        raise Mismatch(f"{label}: expected {expected!r}, got {got!r}")
    shown = f"{got.dtype}[{got.size}] {np.array2string(got, threshold=6)}, equal" if isinstance(got, np.ndarray) else repr(got)
    print(f"{label} -> {shown}")


def stats(r, key):
    """VSTATS as a dict: RESP2 replies a flat list [name, value, name, value, ...]."""
    flat = r.execute_command("VSTATS", key)
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


def bind_empty(r, key, path, *type_args):
    """Binds `key` writable and makes sure its file starts empty (an earlier run may have stopped half-way)."""
    if r.execute_command("MMAP", key, path, *type_args, "WRITABLE") != 0:
        r.execute_command("VCLEAR", key)
    print(f"MMAP {key} {path} {' '.join(map(str, type_args))} WRITABLE -> bound, empty")


def numpy_file_part(r):
    """numpy writes the file, mmapd serves it."""
    data_dir = r.config_get("dir")["dir"]
    if not (os.path.isdir(data_dir) and os.access(data_dir, os.W_OK)):
        print(f"the server's data directory {data_dir} is not writable from here: skipping the tofile part")
        return
    series = np.linspace(0.0, 99.9, 1000, dtype="<f8")  # 1000 doubles, little-endian
    path = os.path.join(data_dir, SERIES_FILE)
    series.tofile(path)
    print(f"numpy wrote {series.size} doubles to {path}")
    try:
        # Read-only (no WRITABLE): mmapd never changes this file.
        check(f"MMAP {SERIES} {SERIES_FILE} double", r.execute_command("MMAP", SERIES, SERIES_FILE, "double"), 1000)
        raw = r.execute_command("VRANGE", SERIES, 0, -1, "RAW")
        check(f"VRANGE {SERIES} 0 -1 RAW -> numpy.frombuffer(reply, '<f8')", np.frombuffer(raw, dtype="<f8"), series)
        # Text replies are the shortest text that reads back to the same double.
        check(f"VMGET {SERIES} 10 999", [float(v) for v in r.execute_command("VMGET", SERIES, 10, 999)], [series[10], series[999]])
        # A gather of scattered indices as one block of bytes: numpy indexing on the server.
        picks = np.array([999, 3, 500, 3, 0])
        gathered = r.execute_command("VMGET", SERIES, "RAW", *picks.tolist())
        check(f"VMGET {SERIES} RAW 999 3 500 3 0 -> numpy.frombuffer(reply, '<f8')", np.frombuffer(gathered, dtype="<f8"), series[picks])
        s = stats(r, SERIES)
        check(f"VSTATS {SERIES} count", s["count"], 1000)
        check(f"VSTATS {SERIES} min, max", (float(s["min"]), float(s["max"])), (0.0, 99.9))
        check(f"VSTATS {SERIES} mean (numpy agrees)", abs(float(s["mean"]) - series.mean()) < 1e-9, True)
        try:
            r.execute_command("VSET", SERIES, 0, 1.0)
            raise Mismatch("VSET on a read-only binding succeeded")
        except redis.ResponseError as e:
            check(f"VSET {SERIES} 0 1.0 (read-only)", str(e), "The file is not writable")
    finally:
        r.delete(SERIES)
        os.remove(path)


def vaddraw_part(r):
    """mmapd creates the file; numpy's bytes go in with VADDRAW and come out with VRANGE RAW."""
    counts = np.arange(-5, 5, dtype="<i4") * 1000
    bind_empty(r, COUNTS, "example_numpy_counts.i32", "int32")
    check(f"VADDRAW {COUNTS} <{counts.nbytes} bytes of '<i4'>", r.execute_command("VADDRAW", COUNTS, counts.tobytes()), 10)
    check(f"VSETRAW {COUNTS} 8 <2 values>", r.execute_command("VSETRAW", COUNTS, 8, np.array([7, 9], dtype="<i4").tobytes()), 2)
    counts[8:10] = [7, 9]
    raw = r.execute_command("VRANGE", COUNTS, 0, -1, "RAW")
    check(f"VRANGE {COUNTS} 0 -1 RAW -> numpy.frombuffer(reply, '<i4')", np.frombuffer(raw, dtype="<i4"), counts)
    check(f"VMGET {COUNTS} 0 9", r.execute_command("VMGET", COUNTS, 0, 9), [-5000, 9])  # integers are int replies
    s = stats(r, COUNTS)
    check(f"VSTATS {COUNTS} count, sum (exact), min, max", (s["count"], int(s["sum"]), int(s["min"]), int(s["max"])), (10, int(counts.sum()), -5000, 2000))
    check(f"VCLEAR {COUNTS}", r.execute_command("VCLEAR", COUNTS), 10)


def strings_part(r):
    """`string 16` values are numpy's S16: NUL-padded bytes."""
    names = np.array([b"alpha", b"beta", b"gamma"], dtype="S16")
    bind_empty(r, NAMES, "example_numpy_names.s16", "string", 16)
    check(f"VADDRAW {NAMES} <{names.nbytes} bytes of 'S16'>", r.execute_command("VADDRAW", NAMES, names.tobytes()), 3)
    check(f"VADD {NAMES} delta", r.execute_command("VADD", NAMES, "delta"), 1)
    check(f"VALL {NAMES}", r.execute_command("VALL", NAMES), [b"alpha", b"beta", b"gamma", b"delta"])
    raw = r.execute_command("VRANGE", NAMES, 0, -1, "RAW")
    check(f"VRANGE {NAMES} 0 -1 RAW -> numpy.frombuffer(reply, 'S16')", np.frombuffer(raw, dtype="S16").tolist(), [b"alpha", b"beta", b"gamma", b"delta"])
    check(f"VCLEAR {NAMES}", r.execute_command("VCLEAR", NAMES), 4)


def uint64_part(r):
    """uint64 above 2^63-1 is a bulk string in RESP2 (bytes in redis-py); int() reads both kinds of reply."""
    bind_empty(r, BIG, "example_numpy_big.u64", "uint64")
    check(f"VADD {BIG} 18446744073709551615 42", r.execute_command("VADD", BIG, 2**64 - 1, 42), 2)
    values = r.execute_command("VALL", BIG)
    print(f"VALL {BIG} -> {values!r}")
    check(f"VALL {BIG} as int", [int(v) for v in values], [2**64 - 1, 42])
    raw = r.execute_command("VRANGE", BIG, 0, -1, "RAW")
    check(f"VRANGE {BIG} 0 -1 RAW -> numpy.frombuffer(reply, '<u8')", np.frombuffer(raw, dtype="<u8").tolist(), [2**64 - 1, 42])
    check(f"VCLEAR {BIG}", r.execute_command("VCLEAR", BIG), 2)


def pipeline_part(r):
    """A plain pipeline: transaction=False (redis-py's default pipeline wraps the commands in MULTI/EXEC)."""
    bind_empty(r, COUNTS, "example_numpy_counts.i32", "int32")
    pipe = r.pipeline(transaction=False)
    pipe.execute_command("VADD", COUNTS, 1, 2, 3)
    pipe.execute_command("VCOUNT", COUNTS)
    pipe.execute_command("VGET", COUNTS, 2)
    check("pipeline(transaction=False): VADD 1 2 3, VCOUNT, VGET 2", pipe.execute(), [3, 3, 3])
    check(f"VCLEAR {COUNTS}", r.execute_command("VCLEAR", COUNTS), 3)


def main():
    r = redis.Redis(host=HOST, port=PORT, socket_connect_timeout=5)
    try:
        try:
            r.ping()
        except redis.ConnectionError as e:
            print(f"numpy_roundtrip FAILED: cannot connect to mmapd at {HOST}:{PORT} ({e}); start it with npm start", file=sys.stderr)
            return 1
        print(f"connected to mmapd at {HOST}:{PORT} (redis-py {redis.__version__}, numpy {np.__version__})")
        r.delete(*KEYS)
        numpy_file_part(r)
        vaddraw_part(r)
        strings_part(r)
        uint64_part(r)
        pipeline_part(r)
        check(f"DEL {' '.join(KEYS)}", r.delete(*KEYS), 3)  # SERIES was unbound already
        print("numpy_roundtrip: all replies as expected")
        return 0
    except (Mismatch, redis.RedisError) as e:
        print(f"numpy_roundtrip FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        r.close()


if __name__ == "__main__":
    sys.exit(main())
