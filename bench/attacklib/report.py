"""
The report of C{bench/attacks.py}: the lines it prints.

Owns the wording and layout of the run's first line, of one line per case
(with up to five error lines of the victim's log), of the RST table of
every case, and of the summary line the docs and C{tests/test_bench.py}
read. It takes the rows L{attacklib.harness.runCase} returns and prints
nothing itself: the entry point prints what it returns.
"""

from __future__ import annotations

import re
import textwrap

from attacklib.harness import LOOPBACK, Bench


def startLine(bench: Bench, quick: bool, count: int) -> str:
    """
    The first line: the two node processes, and how many cases will run.
    """
    return (
        f"attacks: victim pid {bench.victim.pid} on {LOOPBACK}:{bench.victim.port} "
        f"(node {bench.victim.node_id[:12]}), honest pid {bench.honest.pid} "
        f"(node {bench.honest.node_id[:12]}) connected; "
        f"{'quick' if quick else 'full'} run of {count} cases"
    )


def caseLines(row: dict) -> list[str]:
    """
    The lines printed as soon as a case is done: its row on one line, then
    up to five error lines from the victim's log.
    """
    recover = "never" if row["recover"] is None else f"{row['recover']:.0f} ms"
    lines = [
        f"{row['case']}: {row['sent']} | {row['did']} | RSS {row['rss']} MiB | "
        f"fds {row['fds']} | honest kept: {'yes' if row['kept'] else 'NO'} | "
        f"recovered in {recover}"
    ]
    lines += [f"    log: {error}" for error in row.get("errors", [])[:5]]
    return lines


def rstTable(rows: list[dict]) -> str:
    headers = [
        "case", "what was sent", "what the node did", "RSS before -> after (peak) MiB",
        "fds before -> after", "honest peer kept", "time to recover ms",
    ]
    widths = [max([22] + [len(row["case"]) for row in rows]), 44, 60, 16, 9, 7, 9]
    cells = []
    for row in rows:
        recover = "" if row.get("recover") is None else f"{row['recover']:.0f}"
        if row.get("recover") is None and row.get("alive", True):
            recover = "never"
        cells.append([
            row["case"], row["sent"], row["did"], row.get("rss", ""), row.get("fds", ""),
            "yes" if row.get("kept") else "NO", recover,
        ])

    def wrap(text: str, width: int) -> list[str]:
        # Escaped for RST: inline markup characters, and an underscore that
        # would end a reference name ("0-9_-" in a logged reason).
        text = re.sub(r"([\\*`|])", r"\\\1", text)
        text = re.sub(r"(?<=\w)_(?!\w)", r"\\_", text)
        return textwrap.wrap(text, width, break_on_hyphens=False) or [""]

    wrappedHeaders = [wrap(h, w) for h, w in zip(headers, widths)]
    wrappedRows = [[wrap(c, w) for c, w in zip(cells_, widths)] for cells_ in cells]
    widths = [
        max([w] + [len(x) for r in [wrappedHeaders] + wrappedRows for x in r[i]])
        for i, w in enumerate(widths)
    ]

    def border(char: str) -> str:
        return "+" + "+".join(char * (w + 2) for w in widths) + "+"

    def render(wrapped: list[list[str]]) -> list[str]:
        height = max(len(c) for c in wrapped)
        out = []
        for i in range(height):
            out.append(
                "|" + "|".join(
                    f" {(c[i] if i < len(c) else ''):<{w}} " for c, w in zip(wrapped, widths)
                ) + "|"
            )
        return out

    lines = [border("-"), *render(wrappedHeaders), border("=")]
    for wrapped in wrappedRows:
        lines += render(wrapped)
        lines.append(border("-"))
    return "\n".join(lines)


def honestKeptIn(rows: list[dict]) -> int:
    """
    In how many cases the honest peer was kept.
    """
    return sum(bool(r.get("kept")) for r in rows)


def summaryLine(rows: list[dict], up: bool, seconds: float) -> str:
    """
    The last line: how many cases ran, whether the node was up after all of
    them, in how many the honest peer was kept, and which outcomes were
    unexpected.
    """
    kept = honestKeptIn(rows)
    unexpected = [r["case"] for r in rows if not r.get("expected")]
    return (
        f"attacks: {len(rows)} cases, node up after all: {'yes' if up else 'NO'}, "
        f"honest peer kept in {kept} of {len(rows)}"
        + (f"; unexpected outcomes: {', '.join(unexpected)}" if unexpected else "")
        + f"; {seconds:.0f} s"
    )
