"""`python -m bench all` runs every scenario; `python -m bench accept` runs one.

    PYTHONPATH=src .venv/bin/python -m bench all [--quick | --size tiny] [--store postgresql]

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

from bench.harness import PROFILE, console

SCENARIOS = ("accept", "e2e", "sustained", "connections", "inbound", "crypto")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenario",
        choices=(*SCENARIOS, "all", "docs"),
        help="a scenario, all of them, or docs: put the latest results into docs/performance.md",
    )
    parser.add_argument(
        "--size",
        choices=("tiny", "quick", "full"),
        default="full",
        help="full: the issue's figures; quick: a few minutes; tiny: proves the harness works",
    )
    parser.add_argument(
        "--quick", action="store_const", const="quick", dest="size", help="the same as --size quick"
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="sqlite: the embedded default; postgresql: PostgreSQL + Redis (the scale-out stack)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the Tidings server with py-spy (bench/results/profile-<scenario>.txt)",
    )
    args = parser.parse_args(argv)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    if args.scenario == "docs":
        from bench.docs import update

        update(SCENARIOS, args.store, args.size)
        return 0
    chosen = SCENARIOS if args.scenario == "all" else (args.scenario,)
    failed = []
    for name in chosen:
        module = importlib.import_module(f"bench.scenario_{name}")
        if args.profile:
            PROFILE["scenario"] = name
        began = time.monotonic()
        console.rule(f"{name}: {module.TITLE}")
        try:
            module.run(args.store, args.size, command).emit()
        except Exception:
            console.print_exception()
            failed.append(name)
        console.print(f"  ({time.monotonic() - began:.0f} s)")
    if failed:
        console.print(f"[red]scenarios that failed to run: {', '.join(failed)}[/red]")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
