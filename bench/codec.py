"""
JSON library on evidence: orjson against the standard library.

For four representative messages (a ~100-byte application message like
C{_common.MESSAGE}, a C{ping}, a full C{version}, and an C{addr} with 1000
entries as a C{getaddr} answer carries), times in nanoseconds per operation:

 1. raw decoding: C{orjson.loads(line)} against C{json.loads(line)} (on
    bytes, C{json.loads} first guesses the encoding, ~0.3 us that bitp2p's
    codec saves by decoding UTF-8 itself: its standard-library decode can
    come out cheaper than the raw C{json.loads});
 2. raw encoding: C{orjson.dumps(message)} against the standard library's
    compact encoder (a prebuilt C{json.JSONEncoder(separators=(",", ":"),
    ensure_ascii=False)}, then C{.encode("utf-8")}, as bitp2p's codec does);
 3. bitp2p's own C{codec.decode(line)}, C{codec.decode_many(lines)} per
    line of a 64 KiB chunk (the receiving hot path: the check for integers
    orjson cannot read exactly is made once per chunk there, once per line
    in C{decode}) and C{codec.encode(message)}, which add validation and
    normalisation, once with orjson and once with the standard library only. Each variant runs in a subprocess: the standard
    library one with C{BITP2P_BENCH_STDLIB_JSON=1}, which makes C{_common}
    hide orjson before bitp2p is imported.

Each figure is the best of C{--repeat} timeit repetitions of C{--number}
operations (C{--number} / 100 for the 1000-entry C{addr}): the machines here
are shared, and noise only ever adds time.

    python bench/codec.py [--number 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import timeit

sys.path.insert(0, os.path.dirname(__file__))

import _common  # noqa: E402  (first: it may hide orjson from bitp2p)

ADDR_NUMBER_DIVISOR = 100
CHUNK_BYTES = 65536  # what one read from a TCP socket gives at most


def messages() -> dict[str, dict]:
    """
    The benchmarked messages, by name, in wire form.
    """
    rng = random.Random(0)
    peers: list = []
    for i in range(1000):
        if i % 10 == 9:
            host = f"[2001:db8:{rng.randrange(1 << 16):x}::{rng.randrange(1 << 16):x}]"
        else:
            host = ".".join(str(rng.randrange(1, 224) if j == 0 else rng.randrange(256))
                            for j in range(4))
        peers.append({"addr": f"{host}:{rng.randrange(1024, 65536)}",
                      "time": 1_795_000_000 - rng.randrange(86_400 * 7)})
    return {
        "message": {**_common.MESSAGE, "seq": 12345},
        "ping": {"type": "ping", "nonce": 8453319046713418},
        "version": {
            "type": "version",
            "node_id": "3f9c0a12d41e7b08c5a1f0e2b7d94c36",
            "port": 5000,
            "protocol": 1,
            "user_agent": "/bitp2p:0.1.0/",
            "timestamp": 1_795_000_000,
            "addr_recv": "127.0.0.1:53422",
        },
        "addr": {"type": "addr", "peers": peers},
    }


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def line_of(message: dict) -> bytes:
    return _ENCODER.encode(message).encode("utf-8")


def ns_per_op(function, argument, number: int, repeat: int) -> float:
    timer = timeit.Timer(lambda: function(argument))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def number_for(name: str, number: int) -> int:
    return max(1, number // ADDR_NUMBER_DIVISOR) if name == "addr" else number


def time_raw(number: int, repeat: int) -> dict[str, dict[str, float]]:
    import orjson

    def stdlib_dumps(obj):
        return _ENCODER.encode(obj).encode("utf-8")

    results = {}
    for name, message in messages().items():
        line, n = line_of(message), number_for(name, number)
        assert orjson.loads(line) == json.loads(line) == message
        results[name] = {
            "bytes": len(line),
            "json.loads": ns_per_op(json.loads, line, n, repeat),
            "orjson.loads": ns_per_op(orjson.loads, line, n, repeat),
            "json dumps": ns_per_op(stdlib_dumps, message, n, repeat),
            "orjson.dumps": ns_per_op(orjson.dumps, message, n, repeat),
        }
    return results


def time_codec(number: int, repeat: int) -> dict:
    """
    Time bitp2p's codec in this process, with whatever JSON library it can
    import here.
    """
    from bitp2p import codec

    results: dict = {"library": _common.JSON_LIBRARY}
    for name, message in messages().items():
        line, n = line_of(message), number_for(name, number)
        decoded = codec.decode(line)
        assert isinstance(decoded, dict) and decoded["type"] == message["type"]
        assert json.loads(codec.encode(message)) == message
        # The receiving hot path: a chunk of lines decoded in one call, the
        # exactness check made once on the chunk, as the wire does.
        k = max(1, CHUNK_BYTES // (len(line) + 1))
        lines = [line] * k
        data = b"\n".join(lines) + b"\n"

        def many(lines):
            return codec.decode_many(lines, codec.needs_exact(data))

        results[name] = {
            "decode": ns_per_op(codec.decode, line, n, repeat),
            "decode_many": ns_per_op(many, lines, max(1, n // k), repeat) / k,
            "encode": ns_per_op(codec.encode, message, n, repeat),
        }
    return results


def time_codec_in_subprocess(stdlib: bool, number: int, repeat: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "BITP2P_BENCH_STDLIB_JSON"}
    if stdlib:
        env["BITP2P_BENCH_STDLIB_JSON"] = "1"
    out = subprocess.run(
        [sys.executable, __file__, "--codec-only", "--number", str(number),
         "--repeat", str(repeat)],
        env=env, check=True, capture_output=True, text=True, timeout=600,
    ).stdout
    results = json.loads(out.strip().splitlines()[-1])
    expected = "json (standard library)" if stdlib else "orjson"
    if results["library"] != expected:
        raise RuntimeError(f"codec ran with {results['library']}, not {expected}")
    return results


def table(title: str, rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(title)
    for row in rows:
        print("  " + "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths))
        ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--number", type=int, default=20_000,
                        help="operations per repetition (the addr message: / 100)")
    parser.add_argument("--repeat", type=int, default=7, help="repetitions (best is kept)")
    parser.add_argument("--codec-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.codec_only:
        print(json.dumps(time_codec(args.number, args.repeat)))
        return
    if _common.JSON_LIBRARY != "orjson":
        sys.exit("orjson is not importable here: nothing to compare")

    raw = time_raw(args.number, args.repeat)
    ours = time_codec_in_subprocess(False, args.number, args.repeat)
    stdlib = time_codec_in_subprocess(True, args.number, args.repeat)

    def ns(value: float) -> str:
        return f"{value:,.0f}"

    def x(slow: float, fast: float) -> str:
        return f"x{slow / fast:.1f}"

    print(f"ns per operation, best of {args.repeat} x {args.number:,} "
          f"(addr: {number_for('addr', args.number):,}); x = stdlib / orjson")
    rows = [["message", "bytes", "json.loads", "orjson.loads", "x",
             "json compact", "orjson.dumps", "x"]]
    for name, r in raw.items():
        rows.append([name, str(r["bytes"]), ns(r["json.loads"]), ns(r["orjson.loads"]),
                     x(r["json.loads"], r["orjson.loads"]), ns(r["json dumps"]),
                     ns(r["orjson.dumps"]), x(r["json dumps"], r["orjson.dumps"])])
    table("raw libraries", rows)
    rows = [["message", "bytes", "decode stdlib", "decode orjson", "x",
             "per line in a chunk: stdlib", "orjson", "x",
             "encode stdlib", "encode orjson", "x"]]
    for name, r in raw.items():
        s, o = stdlib[name], ours[name]
        rows.append([name, str(r["bytes"]), ns(s["decode"]), ns(o["decode"]),
                     x(s["decode"], o["decode"]), ns(s["decode_many"]), ns(o["decode_many"]),
                     x(s["decode_many"], o["decode_many"]), ns(s["encode"]), ns(o["encode"]),
                     x(s["encode"], o["encode"])])
    table("bitp2p codec.decode (one line), codec.decode_many (64 KiB chunk), codec.encode",
          rows)
    s, o, r = stdlib["message"], ours["message"], raw["message"]
    print(
        f"conclusion: on the {r['bytes']}-byte message the standard library makes "
        f"codec.decode {s['decode'] / o['decode']:.1f}x (in a chunk "
        f"{s['decode_many'] / o['decode_many']:.1f}x) and codec.encode "
        f"{s['encode'] / o['encode']:.1f}x slower than orjson "
        f"(raw loads {r['json.loads'] / r['orjson.loads']:.1f}x, "
        f"raw dumps {r['json dumps'] / r['orjson.dumps']:.1f}x)"
    )


if __name__ == "__main__":
    main()
