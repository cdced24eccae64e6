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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every benchmark, or of ``only`` (imports just that module: some import torch, seconds)."""
    parser = argparse.ArgumentParser(prog="spvla-bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_path in discover().items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_path)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    only = argv[0] if argv and argv[0] in discover() else None
    args = build_parser(only).parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
