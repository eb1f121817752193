"""Command line: ``python -m fastlr <command>``.

Commands:
  demo    train a tiny model with a fastlr scheduler beside torch's, check that the learning rates are
          identical bit for bit, and print the per-step cost of each.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastlr", description="fastlr command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a tiny model with fastlr beside torch and compare")
    demo.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    demo.add_argument("--groups", type=int, default=64, help="param groups for the timing (default 64)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(steps=args.steps, groups=args.groups)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
