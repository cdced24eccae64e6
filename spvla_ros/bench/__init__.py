"""Benchmarks behind ``spvla-bench <name>``; each ``<name>_bench.py`` module is one subcommand.

A module provides ``HELP: str``, ``add_arguments(parser)`` and ``run(args) -> int``; :mod:`cli` finds it
by its file name, so adding a benchmark touches no shared file.
"""
