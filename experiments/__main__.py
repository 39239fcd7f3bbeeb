"""``python -m experiments {list, run, check}``: see ``experiments/__init__.py``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments import registry, runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="name every experiment, its runs and whether its stored results are current")
    run = sub.add_parser("run", help="run experiments, resuming where an earlier run stopped")
    run.add_argument("names", nargs="*", help="experiments to run (default: all)")
    run.add_argument("--seeds", type=int, nargs="+", help="seeds (default: each experiment's own)")
    run.add_argument("--smoke", action="store_true", help="the tiny configurations, written to --out")
    run.add_argument("--out", type=Path, help="directory for the results (default: book/results)")
    run.add_argument("--jobs", type=int, default=1, help="runs side by side, one process each")
    run.add_argument("--threads", type=int, default=1, help="torch threads per run")
    sub.add_parser("check", help="exit 1 if any stored result does not match its code")
    args = parser.parse_args(argv)
    experiments = registry()
    if args.command == "list":
        for name, exp in experiments.items():
            stale = runner.problems(exp, runner.load(runner.RESULTS / f"{name}.json"))
            print(f"{name}: {len(exp.configs)} configurations x {len(exp.seeds)} seeds, "
                  f"{'current' if not stale else 'STALE: ' + '; '.join(stale)}")
        return 0
    if args.command == "check":
        found = [p for name, exp in experiments.items()
                 for p in runner.problems(exp, runner.load(runner.RESULTS / f"{name}.json"))]
        print("\n".join(found) or "every stored result matches its code")
        return 1 if found else 0
    unknown = [n for n in args.names if n not in experiments]
    if unknown:
        parser.error(f"unknown experiments {unknown}; known: {sorted(experiments)}")
    if args.smoke and args.out is None:
        parser.error("--smoke needs --out (smoke results never go into the book)")
    for name in args.names or list(experiments):
        stored = runner.run(experiments[name], seeds=tuple(args.seeds) if args.seeds else None, smoke=args.smoke,
                            out=args.out, jobs=args.jobs, threads=args.threads)
        prov = stored["provenance"]
        print(f"{name}: {sum(len(v) for v in stored['runs'].values())} runs stored, "
              f"{prov['run_seconds']:.0f} s of runs, {prov['wall_seconds']:.0f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
