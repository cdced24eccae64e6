"""``spvla-bench``: benchmarks that print a table and, with ``--json``, write their figures.

Example::

    spvla-bench scheduler --data ../shared/data/bridge_debug_25ep.npz --json out.json --plot out.png
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import spvla_ros.bench as bench_pkg

SUFFIX = "_bench"


def discover() -> dict[str, str]:
    """Subcommand name -> module path, for every ``spvla_ros/bench/*_bench.py``."""
    found = {}
    for info in pkgutil.iter_modules(bench_pkg.__path__):
        if info.name.endswith(SUFFIX):
            found[info.name[: -len(SUFFIX)].replace("_", "-")] = f"{bench_pkg.__name__}.{info.name}"
    return dict(sorted(found.items()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spvla-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_path in discover().items():
        module = importlib.import_module(module_path)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
