"""Command line: ``python -m fastlr <command>``.

Commands:
  bench   time fastlr's schedulers against torch's (``--quick``: a smaller subset; ``--json PATH``).
  demo    train a tiny model with a fastlr scheduler beside torch's, check that the learning rates are
          identical bit for bit, and print the per-step cost of each.
  plot    draw schedules (``name:key=value,...`` specs or JSON files) to a PNG or to the terminal.
  diagnose  read a training-loss curve (CSV with step and loss columns, or a JSON list) and print the
          verdict (lr too high, too low, ...), the advice and a terminal plot.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastlr", description="fastlr command line")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="time fastlr's schedulers against torch's and print one table")
    bench.add_argument("--quick", action="store_true", help="a smaller subset (under 15 s)")
    bench.add_argument("--json", metavar="PATH", help="also write the results and the machine to PATH")
    demo = sub.add_parser("demo", help="train a tiny model with fastlr beside torch and compare")
    demo.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    demo.add_argument("--groups", type=int, default=64, help="param groups for the timing (default 64)")
    plot = sub.add_parser(
        "plot",
        help="draw schedules to a PNG (-o) or to the terminal",
        description="Draw schedules. Each SPEC is name:key=value,... (a fastlr.schedules constructor, e.g. "
        "wsd:warmup=100,decay=200,total=1000, or a Hugging Face / fastlr name, e.g. "
        "cosine:num_warmup_steps=100,num_training_steps=1000) or a JSON file with to_dict() output.",
    )
    plot.add_argument("specs", nargs="+", metavar="SPEC", help="schedule spec or JSON file")
    plot.add_argument("-o", "--output", help="write a PNG here (needs matplotlib) instead of a terminal plot")
    plot.add_argument("--steps", type=int, default=None, help="steps to draw (default: 1.05 x the longest horizon)")
    plot.add_argument("--ascii", action="store_true", help="terminal plot in plain ASCII")
    plot.add_argument("--width", type=int, default=None, help="terminal plot width in columns")
    plot.add_argument("--height", type=int, default=16, help="terminal plot height in rows (default 16)")
    plot.add_argument("--title", default=None, help="image title")
    diag = sub.add_parser(
        "diagnose",
        help="diagnose a training-loss curve (CSV or JSON): is the lr too high, too low, or fine?",
        description="Diagnose a training-loss curve. FILE is a CSV with a step column and a loss or train/loss "
        "column (as TensorBoard and W&B export them; an lr or learning_rate column is used when present), or "
        "a JSON list of losses.",
    )
    diag.add_argument("file", metavar="FILE", help="CSV or JSON file")
    diag.add_argument("--ascii", action="store_true", help="terminal plot in plain ASCII")
    diag.add_argument("--width", type=int, default=None, help="terminal plot width in columns")
    diag.add_argument("--height", type=int, default=14, help="terminal plot height in rows (default 14)")
    args = parser.parse_args(argv)
    if args.command == "diagnose":
        from ._diagnose import run_diagnose

        try:
            return run_diagnose(args.file, args.ascii, args.width, args.height)
        except (ValueError, TypeError, OSError) as e:
            print(f"python -m fastlr diagnose: error: {e}", file=sys.stderr)
            return 2
    if args.command == "plot":
        from ._plot import run_plot

        try:
            return run_plot(args.specs, args.output, args.steps, args.ascii, args.width, args.height, args.title)
        except (ValueError, TypeError, OSError) as e:
            print(f"python -m fastlr plot: error: {e}", file=sys.stderr)
            return 2
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(steps=args.steps, groups=args.groups)
    if args.command == "bench":
        from ._bench import run_bench

        return run_bench(quick=args.quick, json_path=args.json)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
