"""
Attacks on a real node process: what each costs the node and whether it
keeps serving an honest peer.

One victim node runs as a real process (``twistd -n bitp2p`` on 127.0.0.1,
with a data directory and the control API), with small limits where the
daemon exposes them (``--max-connections 16 --max-outbound 0 --no-seeds
--ping-interval 5``; the message size limit, handshake timeout, token
buckets and so on are the daemon's defaults: it has no options for them). A
second node process, the honest peer, is connected to it (``--connect``).
Then each attack case runs against the victim, one after the other, from
plain sockets of this script, each case from its own loopback /16
(127.N.0.0/16: Linux routes all of 127/8 to ``lo``; each connection binds
its own source address), so that what one case charges against its hosts
never touches the honest peer at 127.0.0.1 or a later case.

For every case the script measures:

  - the victim's resident memory (``VmRSS``) before and after, and its peak
    during the attack (``VmHWM``, reset before each case through
    ``/proc/PID/clear_refs``, and samples taken during the attack);
  - its open file descriptors (``/proc/PID/fd``) before and after;
  - what the node did: what the attacker's sockets saw (closed or not,
    answers), the change of the node's counters (``/metrics``:
    ``bitp2p_protocol_violations_total``, ``bitp2p_handshake_failures_total``,
    the address manager's size) and what the node logged (violations and
    their reasons, refusals, timeouts, drops, discouragements, errors; a
    line summarising repeated ones, "Inbound connections refused: 1,234
    more in the last 60 s", counts for those), and the CPU time it used
    during the attack;
  - whether the honest peer was kept: the victim's ``getpeerinfo`` still
    lists the honest node id with the same API ``id`` and ``conntime`` (the
    same connection, not a reconnection), the honest node lists the victim,
    and a ping round trip between them completes (``ping`` on the control
    API, then no ``pingwait`` left);
  - the time to recover: from the end of the attack (its sockets closed)
    until a fresh client from 127.0.0.1 completes a handshake with the
    victim and gets the pong of a ping (``time.perf_counter``, in ms).

The cases (``--list``), each from fresh sockets of this script:

  - malformed input, each line sent as the first thing on a connection and
    again after a valid handshake on another connection (from another
    host): invalid JSON, invalid UTF-8, NUL bytes, non-object JSON, a
    missing or non-string type, wrong field types, out-of-range values, a
    5000-digit number, arrays nested 8000 and 500000 deep, a line of
    exactly the limit (1 MiB, tolerated) and one byte over, an unknown type
    and blank lines (tolerated), getaddr/addr/ping/pong/verack before the
    handshake (violations then only), a second version;
  - a line that never ends, in 4 KiB chunks every 10 ms, and in 256-byte
    chunks as fast as the node reads them (its CPU cost); every free slot
    holding an unfinished line just under the limit at once; five
    violations from one host (discouragement);
  - floods: pings (tens of thousands, as fast as the socket takes them),
    addr messages of fresh addresses from one connection and from many
    (the address manager's size before and after: the token buckets), a
    getaddr repeated thousands of times, thousands of connection attempts
    (2000 a second) from one address and from thousands of addresses in
    100 /16s, held silent until the end (and a newcomer tried meanwhile);
  - slow peers: one that never reads while sending pings (whose pongs the
    node must write; a daemon sends a peer nothing else in bulk), one that
    sends a version one byte per second;
  - identity: a version carrying the victim's own node id, and one
    carrying the honest peer's;
  - the control API: a JSON-RPC batch of 10,000 calls; 70 slow requests
    (the start of a POST, then a byte every few seconds, each reopened
    when closed), from many addresses and from 127.0.0.1, while an
    authenticated call is made every second (how many are answered).
  - the log as a way to fill the disk: one client connecting, doing a
    handshake and leaving, four connections at a time, for 10 s (the bytes
    of log the victim wrote meanwhile).

"After" figures are taken once the node has settled (no connection left in
its handshake, the peer count back to what it was), at most a few seconds
after the attack. The script prints one line per case, an RST table and a
summary line; it exits 1 if the victim died or lost the honest peer.

The machines this runs on are shared and small (2 cores here): timings,
recovery times and CPU seconds are noisy; memory and descriptor counts and
the outcomes are what the table is for.

The harness (node processes, plain sockets, measurements) is
``bench/attacklib/harness.py``, the cases ``bench/attacklib/cases.py`` and
the printed report ``bench/attacklib/report.py``; this script is the entry
point.

    python bench/attacks.py [--quick] [--only CASE ...] [--list]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from attacklib.cases import CASES, caseName  # noqa: E402
from attacklib.harness import Bench, runCase  # noqa: E402
from attacklib.report import (  # noqa: E402
    caseLines,
    honestKeptIn,
    rstTable,
    startLine,
    summaryLine,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of < 30 s")
    parser.add_argument("--only", nargs="+", metavar="CASE", help="run only these cases")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args()
    if args.list:
        for case in CASES:
            print(caseName(case))
        return
    cases = CASES
    if args.only:
        unknown = set(args.only) - {caseName(c) for c in CASES}
        if unknown:
            parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
        cases = [c for c in CASES if caseName(c) in args.only]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 16384) if hard != resource.RLIM_INFINITY else 16384
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))

    bench = Bench(args.quick)
    rows: list[dict] = []
    startedAt = time.monotonic()
    try:
        bench.start()
        print(startLine(bench, args.quick, len(cases)), flush=True)
        for index, case in enumerate(cases):
            row = runCase(bench, index, caseName(case), case)
            rows.append(row)
            for text in caseLines(row):
                print(text, flush=True)
            if not row["alive"]:
                break
        up = bench.victim.alive and bench.victim.ready() and bench.probe(10) is not None
    finally:
        bench.close()
    print()
    print(rstTable(rows))
    print()
    print(summaryLine(rows, up, time.monotonic() - startedAt))
    kept = honestKeptIn(rows)
    sys.exit(0 if up and kept == len(rows) and len(rows) == len(cases) else 1)


if __name__ == "__main__":
    main()
