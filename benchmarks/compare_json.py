"""Compare two ``python -m fastlr bench --json`` files (or two ``benchmarks/report.py --json`` files).

    python benchmarks/compare_json.py BEFORE.json AFTER.json

For every cell present in both (scheduler, G, lr kind) it prints fastlr's µs before and after, their
ratio, and the same for torch, so a change in fastlr can be told from a change of the machine (torch's
column moves too) . Numbers from different machines are not comparable; the machine lines say which.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _rows(doc: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, Any]]:
    rows = doc.get("results") or doc.get("steps") or []
    return {(r["scheduler"], r["groups"], r.get("lrs", "float")): r for r in rows}


def _machine(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    return (
        f"{m.get('cpu')} ({m.get('cores_available')} cores), torch {m.get('torch')}, fastlr {m.get('fastlr')} "
        f"({m.get('fastlr_commit')}), {m.get('date')}"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    docs = [json.loads(open(p, encoding="utf-8").read()) for p in argv]
    print(f"before: {_machine(docs[0])}")
    print(f"after:  {_machine(docs[1])}")
    a, b = (_rows(d) for d in docs)
    print(
        f"{'scheduler':<28}{'G':>5}{'lrs':>7}{'fastlr before':>15}{'after':>10}{'after/before':>14}"
        f"{'torch before':>14}{'after':>10}{'after/before':>14}"
    )
    for key in sorted(set(a) & set(b), key=lambda k: (k[0], k[2], k[1])):
        x, y = a[key], b[key]
        print(
            f"{key[0]:<28}{key[1]:>5}{key[2]:>7}{x['fastlr_us']:>15.2f}{y['fastlr_us']:>10.2f}"
            f"{y['fastlr_us'] / x['fastlr_us']:>13.2f}x{x['torch_us']:>14.2f}{y['torch_us']:>10.2f}"
            f"{y['torch_us'] / x['torch_us']:>13.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
