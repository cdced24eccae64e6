"""One report for a person: run every benchmark that exists in its quick mode and write docs/benchmarks.md.

Example::

    spvla-bench report                      # writes docs/benchmarks.md and docs/benchmarks/*.png
    spvla-bench report --only closed-loop --out /tmp/bench.md

The generated part of the Markdown file sits between two marker comments; anything outside them
(sections written by hand) is kept as it is. A benchmark that is not there yet, or that needs data
that is absent (../shared is development-only), is listed with a note instead of a section.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from spvla_ros.bench.cli import discover
from spvla_ros.bench.report_io import machine_info

HELP = "run the benchmarks that exist (quick modes) and write docs/benchmarks.md with tables and plots"

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO_ROOT.parent / "shared"
BEGIN_MARK = "<!-- BEGIN spvla-bench report (generated: edit outside these markers) -->"
END_MARK = "<!-- END spvla-bench report -->"
TIMEOUT_S = 900
"""Per-benchmark wall-clock limit, s."""


@dataclass(frozen=True)
class BenchPlan:
    """How the report runs one benchmark.

    Attributes:
        name: the ``spvla-bench`` subcommand.
        title: section title.
        args: extra arguments (besides --quick/--json/--plot, which are added when the bench has them).
        needs: files that must exist (else the bench is skipped with a note), relative to the repo root.
        figure_flag: an option taking an output directory for several figures (e.g. ``--figures``).
        paper: what the SP-VLA paper reports for comparison (Markdown), or a note that it reports nothing.
    """

    name: str
    title: str
    args: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    figure_flag: str | None = None
    paper: str = "The paper reports no directly comparable figure."


BRIDGE = "../shared/data/bridge_debug_25ep.npz"
PAPER_SPEEDUP = (
    "SP-VLA paper (Li et al., arXiv 2506.12723, ICLR 2026), scheduling + pruning with CogACT: "
    "**1.5x lossless acceleration on LIBERO, 2.4x on SimplerEnv** (up to +6% average success)."
)
PLANS = (
    BenchPlan(
        "scheduler",
        "Scheduler on recorded actions (open-loop replay, oracle model)",
        args=("--data", BRIDGE, "--sweep"),
        needs=(BRIDGE,),
        paper=PAPER_SPEEDUP + " The paper gives no open-loop extrapolation error.",
    ),
    BenchPlan(
        "model-latency",
        "Command stream against a simulated model of fixed latency (stream clock)",
        paper="SP-VLA paper: CogACT takes **0.27 s per step unaccelerated, 0.13 s with SP-VLA** on an RTX 4090; "
        "Bridge actions come at 5 Hz (0.2 s), so the model is slower than, or close to, one action step.",
    ),
    BenchPlan(
        "pruning",
        "Spatio-semantic token pruning (DINOv2 ViT-S/14, real frames)",
        args=(
            "--images", "../shared/data/real_images", "--model", "../shared/models/dinov2-vits14", "--max-figures", "2"
        ),
        needs=("../shared/data/real_images", "../shared/models/dinov2-vits14"),
        figure_flag="--figures",
    ),
    BenchPlan(
        "policy",
        "CogACT runtime latency and FLOPs per keep ratio",
        args=("--preset", "tiny"),
        paper="SP-VLA paper: inference frequency / latency improved **2.2x on SimplerEnv, 1.4x on LIBERO**.",
    ),
    BenchPlan("graph", "ROS 2 node graph"),
    BenchPlan("safety", "Safety layer against franka-sim"),
    BenchPlan(
        "closed-loop",
        "Closed loop on Meta-World (scripted expert as the VLA)",
        paper=PAPER_SPEEDUP + " Those are success-preserving speedups of the whole method on a real VLA; here "
        "the 'model' is a scripted expert, so only the scheduling is under test.",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default=str(REPO_ROOT / "docs" / "benchmarks.md"), help="Markdown file to write")
    parser.add_argument("--only", nargs="+", default=None, help="run only these benchmarks")
    parser.add_argument("--full", action="store_true", help="run without --quick (much longer)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="per-benchmark limit [s]")


def _options_of(module_path: str) -> set[str]:
    module = importlib.import_module(module_path)
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return set(parser._option_string_actions)  # noqa: SLF001 - argparse has no public accessor


@dataclass
class Outcome:
    plan: BenchPlan
    status: str  # "ok", "failed", "skipped"
    note: str = ""
    command: str = ""
    stdout: str = ""
    payload: dict | None = None
    figures: list[Path] = field(default_factory=list)
    machine: dict = field(default_factory=dict)
    wall_s: float = 0.0


def _shown(path: Path) -> str:
    """``path`` relative to the repo root when it lies inside it (commands in the report stay portable)."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def run_one(plan: BenchPlan, module_path: str, fig_dir: Path, json_dir: Path, quick: bool, timeout: float) -> Outcome:
    """Run one benchmark in a subprocess (from the repo root) and collect its output files."""
    missing = [p for p in plan.needs if not (REPO_ROOT / p).exists()]
    if missing:
        return Outcome(plan, "skipped", f"needs {', '.join(missing)} (absent; development-only data)")
    options = _options_of(module_path)
    args = list(plan.args)
    if quick and "--quick" in options:
        args.append("--quick")
    json_path = json_dir / f"{plan.name}.json"
    if "--json" in options:
        args += ["--json", _shown(json_path)]
    figures: list[Path] = []
    if "--plot" in options:
        png = fig_dir / f"{plan.name}.png"
        args += ["--plot", _shown(png)]
        figures.append(png)
    if plan.figure_flag and plan.figure_flag in options:
        sub = fig_dir / plan.name
        args += [plan.figure_flag, _shown(sub)]
    command = "spvla-bench " + " ".join([plan.name, *(shlex.quote(a) for a in args)])
    machine = machine_info()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "spvla_ros.bench.cli", plan.name, *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Outcome(plan, "failed", f"timed out after {timeout:.0f} s", command, machine=machine)
    wall = time.perf_counter() - t0
    if plan.figure_flag and (fig_dir / plan.name).is_dir():
        figures += sorted((fig_dir / plan.name).glob("*.png"))
    payload = json.loads(json_path.read_text()) if json_path.exists() else None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return Outcome(plan, "failed", f"exit {proc.returncode}: " + " / ".join(tail), command, machine=machine)
    return Outcome(plan, "ok", "", command, proc.stdout, payload, [f for f in figures if f.exists()], machine, wall)


def closed_loop_markdown(payload: dict) -> str:
    """Per-method Markdown table of a closed-loop JSON, plus the frontier reading."""
    lines = [
        f"Evaluation tasks ({len(payload['eval_tasks'])}): {', '.join(payload['eval_tasks'])}; "
        f"{payload['episodes_per_task']} episodes each. Tuning tasks (disjoint): {', '.join(payload['tune_tasks'])}. "
        f"Speed range {payload['speed_range']:.3f} action units/step (p{payload['speed_range_percentile']:g} of "
        f"expert speeds on the tuning split). Tuned overrides: `{payload['tuning']['best']}`.",
        "",
        "| method | success | 95% CI (Wilson) | model-call fraction | speedup | mean episode length |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in payload["methods"].items():
        lo, hi = s["success_ci"]
        lines.append(
            f"| {name} | {100 * s['success_rate']:.1f}% | [{100 * lo:.1f}, {100 * hi:.1f}] | "
            f"{s['model_call_fraction']:.3f} | {s['speedup']:.2f}x | {s['mean_episode_length']:.1f} |"
        )
    return "\n".join(lines)


def section(outcome: Outcome, out_dir: Path) -> str:
    plan = outcome.plan
    lines = [f"## {plan.title} (`spvla-bench {plan.name}`)", ""]
    m = outcome.machine
    lines += [
        f"Produced by `{outcome.command}` on {m.get('date_utc', '?')} UTC, {m.get('processor', '?')}, "
        f"{m.get('cpu_count', '?')} CPUs, Python {m.get('python', '?')} ({outcome.wall_s:.0f} s).",
        "",
        f"**Paper:** {plan.paper}",
        "",
    ]
    if plan.name == "closed-loop" and outcome.payload:
        lines += [closed_loop_markdown(outcome.payload), ""]
    lines += ["```text", outcome.stdout.rstrip(), "```", ""]
    for fig in outcome.figures:
        rel = fig.relative_to(out_dir) if fig.is_relative_to(out_dir) else fig
        lines += [f"![{plan.name}: {fig.stem}]({rel.as_posix()})", ""]
    return "\n".join(lines)


def render(outcomes: list[Outcome], out_dir: Path, quick: bool) -> str:
    m = machine_info()
    head = [
        BEGIN_MARK,
        "# Benchmarks: where spvla stands against the SP-VLA paper",
        "",
        f"Generated by `spvla-bench report{'' if quick else ' --full'}` on {m['date_utc']} UTC "
        f"({m['processor']}, {m['cpu_count']} CPUs, Python {m['python']}). Quick modes: small samples, "
        "so read the confidence intervals. Every figure carries the command that produced it.",
        "",
        "| benchmark | status | note |",
        "|---|---|---|",
    ]
    for o in outcomes:
        head.append(f"| `{o.plan.name}` | {o.status} | {o.note.replace('|', '/') or '-'} |")
    body = [section(o, out_dir) for o in outcomes if o.status == "ok"]
    return "\n".join([*head, "", *body, END_MARK, ""])


def merge(existing: str, generated: str) -> str:
    """Replace the text between the markers; keep everything else (hand-written sections)."""
    if BEGIN_MARK in existing and END_MARK in existing:
        before = existing.split(BEGIN_MARK, 1)[0]
        after = existing.split(END_MARK, 1)[1].lstrip("\n")
        return before + generated + ("\n" + after if after else "")
    if existing.strip():
        return existing.rstrip("\n") + "\n\n" + generated
    return generated


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    out_dir = out.parent
    fig_dir = out_dir / "benchmarks"
    json_dir = fig_dir / "json"
    fig_dir.mkdir(parents=True, exist_ok=True)
    json_dir.mkdir(parents=True, exist_ok=True)
    found = discover()
    quick = not args.full
    unknown = sorted(set(args.only or ()) - {p.name for p in PLANS})
    if unknown:
        print(f"report: unknown benchmark(s) {unknown}; known: {[p.name for p in PLANS]}", file=sys.stderr)
        return 2
    outcomes = []
    for plan in PLANS:
        if args.only and plan.name not in args.only:
            continue
        if plan.name not in found:
            outcomes.append(Outcome(plan, "skipped", "benchmark not present yet"))
        else:
            print(f"report: running {plan.name} ...", flush=True)
            outcomes.append(run_one(plan, found[plan.name], fig_dir, json_dir, quick, args.timeout))
        print(f"report: {plan.name}: {outcomes[-1].status} {outcomes[-1].note}", flush=True)
    existing = out.read_text() if out.exists() else ""
    out.write_text(merge(existing, render(outcomes, out_dir, quick)))
    print(f"report: wrote {out}")
    return 0 if all(o.status != "failed" for o in outcomes) else 1
