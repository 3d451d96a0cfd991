"""Side-by-side benchmark harness shared by every package's benchmarks/.

Each case runs our function and the peer's on the same inputs, in the same
process, alternating after a warm-up, and reports median times and the ratio
peer / ours (> 1 means vt is faster). Run a benchmark script directly or
through `nox -s bench`.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    """One benchmark case: ``ours`` and (optionally) ``peer`` take no arguments."""

    name: str
    ours: Callable[[], Any]
    peer: Callable[[], Any] | None = None
    peer_name: str = "peer"
    sync: Callable[[], None] = field(default=lambda: None)  # e.g. torch.cuda.synchronize


def _time_once(fn: Callable[[], Any], sync: Callable[[], None], number: int) -> float:
    sync()
    start = time.perf_counter()
    for _ in range(number):
        fn()
    sync()
    return (time.perf_counter() - start) / number


def measure(case: Case, *, rounds: int = 7, min_round_s: float = 0.05) -> dict[str, Any]:
    """Median seconds per call for ours and the peer, measured alternately."""
    fns = {"ours": case.ours}
    if case.peer is not None:
        fns["peer"] = case.peer
    number = {}
    for key, fn in fns.items():  # warm-up, and calibrate calls per round
        fn()
        t = max(_time_once(fn, case.sync, 1), 1e-7)
        number[key] = max(1, int(min_round_s / t))
    samples: dict[str, list[float]] = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            samples[key].append(_time_once(fn, case.sync, number[key]))
    ours = statistics.median(samples["ours"])
    peer = statistics.median(samples["peer"]) if "peer" in samples else None
    return {
        "case": case.name,
        "peer_name": case.peer_name if peer is not None else None,
        "ours_s": ours,
        "peer_s": peer,
        "ratio": (peer / ours) if peer is not None else None,
    }


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def format_table(title: str, rows: Iterable[dict[str, Any]]) -> str:
    rows = list(rows)
    header = ("case", "ours", "peer", "ratio (peer/ours)")
    body = [
        (
            r["case"] + (f"  [{r['peer_name']}]" if r["peer_name"] else ""),
            _fmt(r["ours_s"]),
            _fmt(r["peer_s"]),
            "-" if r["ratio"] is None else f"{r['ratio']:.2f}x",
        )
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([f"## {title}", "", line(header), sep, *map(line, body)])


def main(
    title: str, make_cases: Callable[[argparse.Namespace], Iterable[Case]]
) -> list[dict[str, Any]]:
    """Parse ``--json PATH`` and ``--quick``, run the cases, print the table, write JSON."""
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--json", help="write results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (smoke run)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    rows = []
    for case in make_cases(args):
        rows.append(
            measure(case, rounds=3 if args.quick else 7, min_round_s=0.01 if args.quick else 0.05)
        )
        print(f"  {rows[-1]['case']}: done", flush=True)
    print(format_table(title, rows), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "title": title,
                    "machine": platform.machine(),
                    "device": args.device,
                    "results": rows,
                },
                f,
                indent=2,
            )
    return rows
