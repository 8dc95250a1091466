"""`python -m bench all` runs every scenario; `python -m bench accept` runs one.

    PYTHONPATH=src .venv/bin/python -m bench all [--quick] [--store postgresql]

Each scenario starts real servers (a fresh data folder or database each), drives them from
separate processes over loopback, measures its baseline in the same run, prints a table and
writes bench/results/<scenario>.json.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
import time

from bench.harness import console

SCENARIOS = ("accept", "e2e", "sustained", "connections", "inbound", "crypto")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("scenario", choices=(*SCENARIOS, "all"))
    parser.add_argument("--quick", action="store_true", help="short runs (minutes, not tens)")
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="sqlite: the embedded default; postgresql: PostgreSQL + Redis (the scale-out stack)",
    )
    args = parser.parse_args(argv)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    chosen = SCENARIOS if args.scenario == "all" else (args.scenario,)
    failed = []
    for name in chosen:
        module = importlib.import_module(f"bench.scenario_{name}")
        began = time.monotonic()
        console.rule(f"{name}: {module.TITLE}")
        try:
            module.run(args.store, args.quick, command).emit()
        except Exception:
            console.print_exception()
            failed.append(name)
        console.print(f"  ({time.monotonic() - began:.0f} s)")
    if failed:
        console.print(f"[red]scenarios that failed to run: {', '.join(failed)}[/red]")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
