"""Train (or re-create) the closed loop's learned chunking policy: behaviour cloning from Meta-World's experts.

Example::

    spvla-bench train-policy                     # trains once, then reports the cached weights
    spvla-bench train-policy --retrain --json build/train.json

The weights land in ``build/closed_loop_policy/policy-<digest>.pt`` (git-ignored), named by a digest of the
``policy:`` section of ``config/closed_loop.yaml``, the task list and the torch version; ``spvla-bench
closed-loop`` reads them (and trains them itself when they are missing). Deterministic per seed on one machine.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from spvla_ros.bench.report_io import machine_info, write_json
from spvla_ros.eval.bc_training import DEFAULT_CACHE_DIR, load_or_train, policy_file
from spvla_ros.eval.closed_loop import DEFAULT_CONFIG, load_closed_loop_config

HELP = "train the closed loop's chunking policy (DiT/DDIM head, behaviour cloning from Meta-World experts)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="closed-loop YAML (its policy: section)")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR), help="where the weights are cached")
    parser.add_argument("--retrain", action="store_true", help="train even when cached weights exist")
    parser.add_argument("--json", default=None, help="write the training figures to this JSON file")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_closed_loop_config(args.config)
    except ValueError as exc:
        print(f"train-policy: {exc}", file=sys.stderr)
        return 2
    path = policy_file(config.policy, config.policy_tasks, args.cache_dir)
    t0 = time.perf_counter()
    policy, trained = load_or_train(config.policy_tasks, config.policy, args.cache_dir, retrain=args.retrain)
    info = policy.train_info
    print(f"{'trained' if trained else 'cached'}: {path} ({time.perf_counter() - t0:.0f} s)")
    print(f"{len(policy.tasks)} tasks, {info['demonstrations']} demonstrations ({info['discarded_demonstrations']} "
          f"discarded), {info['samples']} samples, {info['parameters']} parameters; final loss "
          f"{info['final_loss']:.4f}; demonstrations {info['demo_wall_s']:.0f} s, training "
          f"{info['train_wall_s']:.0f} s; speed range {info['speed_range']:.3f} action units/step")
    if args.json:
        write_json(args.json, {
            "file": str(path),
            "trained_now": trained,
            "digest": policy.digest,
            "tasks": list(policy.tasks),
            "train_info": info,
            "machine": machine_info(),
            "command": "spvla-bench train-policy " + " ".join(shlex.quote(a) for a in sys.argv[2:]),
        })
    return 0
