"""The *official* CogACT, built with random weights and run stage by stage, for spvla's parity checks.

Runs in the reference venv ``.venv-cogact`` (``make setup``; mk/cogact_ref.mk), never in the product's. The
official code (``<third-party>/cogact`` = microsoft/CogACT, ``<third-party>/prismatic`` = its prismatic fork,
unchanged, see ``../shared/third_party/README.md``) is put on ``sys.path`` here; spvla never imports this file
or the official code, it only reads what this script writes. Facts it relies on:
``../shared/notes/cogact_parity.md``.

``build-run``:

1. builds the official model exactly as ``vla.load_vla`` would for ``prism-dinosiglip-224px+7b`` (DINOv2
   ViT-L/14-reg4 + SigLIP so400m/14 via ``get_vision_backbone_and_transform``, ``LLaMa2LLMBackbone`` for
   ``llama2-7b-pure``, ``PrismaticVLM`` with the fused GELU-MLP projector, ``CogACT`` with a DiT head), with
   three size knobs: ``--vision-depth`` (timm's ``depth=``; the features still come from the second-to-last
   block), ``--llm-layers``/``--llm-mlp`` (a local ``LlamaConfig`` that keeps hidden size 4096 and 32 heads, as
   ``predict_action`` asserts a 4096-wide cognition feature) and ``--dit``;
2. randomises the parameters a fresh init leaves trivial (constant or ~0: timm layer scales, cls/register
   tokens, norm weights, zero biases, the DiT's zero final layer), so a wrong key mapping shows in the outputs;
3. saves it in the release layout (``checkpoints/<name>.pt`` = ``{"model": {section: state_dict}}``,
   ``config.json``, ``dataset_statistics.json``); with ``--reload`` frees it and reloads the folder with the
   official ``load_vla`` (``torch.load`` with ``mmap=True`` to bound memory; same tensors), which proves the
   folder is what the official loader expects (the suite skips this second build for time; the benchmark
   does it);
4. for every frame of ``--inputs`` calls the official ``predict_action`` (``unnorm_key``, CFG 1.5, DDIM 10,
   ``torch.manual_seed(--seed)`` first) and records every stage through hooks, without changing any of them,
   except that the DDIM output handed to the un-normalisation is multiplied by a recorded ``scale``
   (random weights give samples of about +-25, which clipping would flatten): 1.5 / max|sample|;
5. records the ids the official ``predict_action`` feeds the LLM for each ``--prompt-instruction`` (it stops
   that call right there).

Stages in the output .npz, per frame ``<name>``: ``<name>.input_ids``, ``.pixel_dino``, ``.pixel_siglip``,
``.vision_dino``, ``.vision_siglip`` (each tower's second-to-last block, patches only), ``.projector_in`` (fused
patches), ``.projector``, ``.llm_inputs_embeds``, ``.cognition``, ``.noise``, ``.eps_x``/``.eps_t``/``.eps`` (one
row per DDIM step: the conditional half of the CFG batch, its timestep, the guided noise prediction),
``.ddim`` (raw sampler output, 16x7), ``.scale``, ``.actions`` and ``.normalized_actions`` (``predict_action``'s
return values); plus ``prompt_ids.json`` beside it. ``meta.json`` holds sizes, timings and the seed. Progress
goes to stdout as ``PROGRESS <done>/<total> <what>`` lines (spvla's harness turns them into a progress bar).

``prompt-ids``: only step 5, on a small model (the tokenizer path is the same), writing JSON.

Example::

    .venv-cogact/bin/python tools/cogact_reference.py build-run --third-party ../shared/third_party \\
        --tokenizer ../shared/models/llama2-tokenizer --inputs build/parity/inputs.npz \\
        --run-dir build/parity/run --out build/parity/reference.npz --vision-depth 3 --llm-layers 1 --dit DiT-S
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import sys
import time
import types
from pathlib import Path

BASE_VLM = "prism-dinosiglip-224px+7b"
"""The VLM CogACT was trained from (``config.json`` ``vla.base_vlm``)."""
LLM_ID = "llama2-7b-pure"
LLM_HIDDEN = 4096
LLM_HEADS = 32
LLM_VOCAB = 32000
"""Llama-2's vocabulary before Prismatic adds <PAD> and pads to a multiple of 64 (32064)."""
LLM_MAX_POSITIONS = 4096
RMS_NORM_EPS = 1e-5
ACTION_DIM = 7
FUTURE_WINDOW = 15
SCALE_TARGET = 1.5
"""The recorded DDIM output is scaled so its largest magnitude is this (some clip, most do not)."""
TRIVIAL_SPREAD = 1e-3
"""A parameter whose values span less than this (or all below it in magnitude) is randomised."""
RANDOM_STD = 0.05
RANDOM_STD_NEAR_ONE = 0.1
CHECKPOINT_NAME = "CogACT-parity.pt"


class _StopAfterInputIdsError(Exception):
    """Raised by the prompt-id hook to end a ``predict_action`` call once the LLM inputs are known."""


def _import_official(third_party: Path, vision_depth: int | None):
    """Put the official code on sys.path (stubbing the training-only dataset module) and patch timm's
    ``create_model`` to ``pretrained=False`` (nothing is downloaded) with an optional ``depth``."""
    sys.path[:0] = [str(third_party / "cogact"), str(third_party / "prismatic")]
    stub = types.ModuleType("prismatic.vla.datasets")  # needs dlimp/TensorFlow; inference never uses it
    for name in ("DummyDataset", "EpisodicRLDSDataset", "RLDSBatchTransform", "RLDSDataset"):
        setattr(stub, name, type(name, (), {}))
    sys.modules["prismatic.vla.datasets"] = stub

    import timm

    create = timm.create_model

    @functools.wraps(create)
    def create_random(name, pretrained=False, **kwargs):
        if vision_depth is not None:
            kwargs["depth"] = vision_depth
        return create(name, pretrained=False, **kwargs)

    timm.create_model = create_random


def _hf_folder(path: Path, tokenizer: Path, layers: int, mlp: int) -> Path:
    """A local stand-in for ``meta-llama/Llama-2-7b-hf``: a small LlamaConfig + the real tokenizer."""
    path.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": LLM_HIDDEN,
        "intermediate_size": mlp, "num_hidden_layers": layers, "num_attention_heads": LLM_HEADS,
        "num_key_value_heads": LLM_HEADS, "vocab_size": LLM_VOCAB, "max_position_embeddings": LLM_MAX_POSITIONS,
        "rms_norm_eps": RMS_NORM_EPS, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
        "tie_word_embeddings": False, "torch_dtype": "float32",
    }
    (path / "config.json").write_text(json.dumps(config, indent=2))
    link = path / "tokenizer.model"
    if not link.exists():
        link.symlink_to((tokenizer / "tokenizer.model").resolve())
    return path


def _point_llm_at(folder: Path) -> None:
    from prismatic.models.backbones.llm import llama2

    llama2.LLAMA2_MODELS[LLM_ID]["hf_hub_path"] = str(folder)


def build_official(dit: str, statistics: dict):
    """The official CogACT, randomly initialised, as ``load_vla`` assembles it (before loading weights)."""
    from prismatic.conf import ModelConfig
    from prismatic.models.materialize import get_llm_backbone_and_tokenizer, get_vision_backbone_and_transform
    from prismatic.models.vlms import PrismaticVLM
    from vla import CogACT

    cfg = ModelConfig.get_choice_class(BASE_VLM)()
    vision, _ = get_vision_backbone_and_transform(cfg.vision_backbone_id, cfg.image_resize_strategy)
    llm, _ = get_llm_backbone_and_tokenizer(cfg.llm_backbone_id, llm_max_length=cfg.llm_max_length,
                                            inference_mode=True)
    vlm = PrismaticVLM(cfg.model_id, vision, llm, arch_specifier=cfg.arch_specifier)
    return CogACT(vlm, action_model_type=dit, token_size=LLM_HIDDEN, action_dim=ACTION_DIM,
                  future_action_window_size=FUTURE_WINDOW, past_action_window_size=0, norm_stats=statistics)


def randomise_trivial(model, seed: int) -> list[str]:
    """Replace near-constant parameters by ``mean + noise`` (see the module docstring); returns their names."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    changed = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            flat = p.detach().float()
            spread = float(flat.max() - flat.min())
            if spread > TRIVIAL_SPREAD and float(flat.abs().max()) > TRIVIAL_SPREAD:
                continue
            mean = float(flat.mean())
            std = RANDOM_STD_NEAR_ONE if abs(mean) > 0.5 else RANDOM_STD
            p.copy_(mean + std * torch.randn(p.shape, generator=gen))
            changed.append(name)
    return changed


def save_release(model, run_dir: Path, dit: str, statistics: dict) -> Path:
    """The release layout (see the module docstring); returns the .pt path."""
    import torch

    sections = {
        "vision_backbone": model.vlm.vision_backbone.state_dict(),
        "projector": model.vlm.projector.state_dict(),
        "llm_backbone": model.vlm.llm_backbone.state_dict(),
        "action_model": model.action_model.state_dict(),
    }
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    pt = run_dir / "checkpoints" / CHECKPOINT_NAME
    torch.save({"model": sections}, pt)
    config = {"vla": {"vla_id": "cogact-parity-random", "base_vlm": BASE_VLM}, "action_model_type": dit,
              "future_action_window_size": FUTURE_WINDOW, "past_action_window_size": 0}
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    (run_dir / "dataset_statistics.json").write_text(json.dumps(statistics, indent=2))
    return pt


def load_release(pt: Path, dit: str):
    """The official ``load_vla`` on the saved .pt (with an mmap'ed ``torch.load``: same tensors, less RAM)."""
    import torch
    from vla import load_vla

    original = torch.load
    torch.load = functools.partial(original, mmap=True)
    try:
        return load_vla(str(pt), load_for_training=False, action_model_type=dit,
                        future_action_window_size=FUTURE_WINDOW).eval()
    finally:
        torch.load = original


class StageRecorder:
    """Hooks on the official modules that copy each stage's tensors; they never change a value, except the
    DDIM output multiplied by its recorded scale (see the module docstring)."""

    def __init__(self, vla, ddim_steps: int) -> None:
        self.vla = vla
        self.stages: dict = {}
        self.stop_after_ids = False
        vlm = vla.vlm
        vb = vlm.vision_backbone
        vlm.register_forward_pre_hook(self._on_vlm, with_kwargs=True)
        vb.dino_featurizer.register_forward_hook(lambda m, a, out: self._put("vision_dino", out))
        vb.siglip_featurizer.register_forward_hook(lambda m, a, out: self._put("vision_siglip", out))
        vlm.projector.register_forward_hook(self._on_projector)
        vlm.llm_backbone.llm.register_forward_hook(self._on_llm, with_kwargs=True)
        vla.action_model.create_ddim(ddim_step=ddim_steps)
        ddim = vla.action_model.ddim_diffusion
        ddim.ddim_sample_loop = self._wrap_sampler(ddim.ddim_sample_loop)
        net = vla.action_model.net
        net.forward_with_cfg = self._wrap_eps(net.forward_with_cfg)

    def _put(self, key: str, value) -> None:
        self.stages[key] = value.detach().float().cpu().numpy().copy()

    def _on_vlm(self, module, args, kwargs):
        self._put("input_ids", kwargs["input_ids"])
        if self.stop_after_ids:
            raise _StopAfterInputIdsError
        self._put("pixel_dino", kwargs["pixel_values"]["dino"])
        self._put("pixel_siglip", kwargs["pixel_values"]["siglip"])

    def _on_projector(self, module, args, out):
        self._put("projector_in", args[0])
        self._put("projector", out)

    def _on_llm(self, module, args, kwargs, out):
        self._put("llm_inputs_embeds", kwargs["inputs_embeds"])
        self._put("cognition", out.hidden_states[-1][:, -1])

    def _wrap_sampler(self, sample_loop):
        def recorded(model, shape, noise=None, **kwargs):
            self._put("noise", noise[: shape[0] // 2])
            self.stages.update(eps_x=[], eps_t=[], eps=[])
            out = sample_loop(model, shape, noise, **kwargs)
            raw = out[: shape[0] // 2]
            self._put("ddim", raw[0])
            scale = SCALE_TARGET / float(raw.abs().max())
            self.stages["scale"] = scale
            return out * scale

        return recorded

    def _wrap_eps(self, forward_with_cfg):
        def recorded(x, t, z, cfg_scale):
            eps = forward_with_cfg(x, t, z, cfg_scale)
            half = x.shape[0] // 2
            for key, value in (("eps_x", x[:half]), ("eps_t", t[:half]), ("eps", eps[:half])):
                self.stages[key].append(value.detach().float().cpu().numpy()[0].copy())
            return eps

        return recorded

    def prompt_ids(self, image, instruction: str) -> list[int]:
        """The ids the official predict_action feeds the LLM for ``instruction`` (stopped right there)."""
        self.stop_after_ids = True
        try:
            self.vla.predict_action(image, instruction, unnorm_key=None, cfg_scale=1.5, use_ddim=True)
        except _StopAfterInputIdsError:
            pass
        finally:
            self.stop_after_ids = False
        return [int(i) for i in self.stages["input_ids"][0]]


def _run_frames(recorder: StageRecorder, frames: dict, args) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    out = {}
    for name, frame in frames.items():
        recorder.stages = {}
        torch.manual_seed(args.seed)
        actions, normalized = recorder.vla.predict_action(
            Image.fromarray(frame), args.instruction, unnorm_key=args.unnorm_key, cfg_scale=args.cfg_scale,
            use_ddim=True, num_ddim_steps=args.ddim_steps)
        stages = dict(recorder.stages, actions=np.asarray(actions), normalized_actions=np.asarray(normalized))
        for key, value in stages.items():
            out[f"{name}.{key}"] = np.asarray(value)
    return out


def _read_inputs(path: Path) -> tuple[dict, dict]:
    import numpy as np

    data = np.load(path, allow_pickle=False)
    frames = {k.removeprefix("frame."): data[k] for k in data.files if k.startswith("frame.")}
    statistics = json.loads(str(data["dataset_statistics"]))
    return frames, statistics


class Progress:
    """``PROGRESS <done>/<total> <what>`` lines on stdout, and the seconds each step took."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps
        self.done = 0
        self.times_s: dict[str, float] = {}
        self._t = time.perf_counter()
        self._say()

    def _say(self) -> None:
        what = self.steps[self.done] if self.done < len(self.steps) else "done"
        print(f"PROGRESS {self.done}/{len(self.steps)} {what}", flush=True)

    def step(self) -> None:
        now = time.perf_counter()
        self.times_s[self.steps[self.done]] = round(now - self._t, 3)
        self._t = now
        self.done += 1
        self._say()


def cmd_build_run(args) -> int:
    import numpy as np
    import torch
    from PIL import Image

    frames, statistics = _read_inputs(args.inputs)
    steps = ["import official code", "build official model", "save release layout"]
    steps += ["reload with load_vla"] if args.reload else []
    steps += [f"predict_action {name}" for name in frames] + ["prompt ids"]
    progress = Progress(steps)
    _import_official(args.third_party, args.vision_depth)
    import vla  # noqa: F401  (the import cost is its own step)

    progress.step()
    _point_llm_at(_hf_folder(args.run_dir / "hf-llama", args.tokenizer, args.llm_layers, args.llm_mlp))
    torch.manual_seed(args.seed)
    model = build_official(args.dit, statistics)
    randomised = randomise_trivial(model, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    progress.step()
    pt = save_release(model, args.run_dir, args.dit, statistics)
    progress.step()
    if args.reload:
        del model
        gc.collect()
        model = load_release(pt, args.dit)
        progress.step()
    recorder = StageRecorder(model.eval(), args.ddim_steps)
    arrays = {}
    for name, frame in frames.items():
        arrays.update(_run_frames(recorder, {name: frame}, args))
        progress.step()
    first = Image.fromarray(next(iter(frames.values())))
    prompt_ids = {text: recorder.prompt_ids(first, text) for text in args.prompt_instruction}
    progress.step()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)
    (args.out.parent / "prompt_ids.json").write_text(json.dumps(prompt_ids, indent=2))
    meta = {"checkpoint": str(pt), "parameters": n_params, "randomised": randomised, "seed": args.seed,
            "vision_depth": args.vision_depth, "llm_layers": args.llm_layers, "llm_mlp": args.llm_mlp,
            "dit": args.dit, "reloaded_with_load_vla": args.reload, "times_s": progress.times_s,
            "torch": torch.__version__}
    (args.out.parent / "meta.json").write_text(json.dumps(meta, indent=2))
    return 0


def cmd_prompt_ids(args) -> int:
    import numpy as np
    import torch
    from PIL import Image

    _import_official(args.third_party, vision_depth=2)
    folder = _hf_folder(args.work_dir / "hf-llama", args.tokenizer, layers=1, mlp=64)
    _point_llm_at(folder)
    torch.manual_seed(0)
    statistics = {"parity": {"action": {"q01": [-1.0] * ACTION_DIM, "q99": [1.0] * ACTION_DIM}}}
    recorder = StageRecorder(build_official("DiT-S", statistics).eval(), ddim_steps=10)
    image = Image.fromarray(np.zeros((224, 224, 3), np.uint8))
    ids = {text: recorder.prompt_ids(image, text) for text in args.instruction}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(ids, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("build-run", "prompt-ids"):
        p = sub.add_parser(name)
        p.add_argument("--third-party", type=Path, required=True, help="folder holding cogact/ and prismatic/")
        p.add_argument("--tokenizer", type=Path, required=True, help="folder holding Llama-2's tokenizer.model")
        p.add_argument("--out", type=Path, required=True)
    br = sub.choices["build-run"]
    br.add_argument("--inputs", type=Path, required=True, help=".npz: frame.<name> uint8 RGB, dataset_statistics")
    br.add_argument("--run-dir", type=Path, required=True, help="where the release layout is written")
    br.add_argument("--vision-depth", type=int, default=None, help="blocks per vision tower (default: full)")
    br.add_argument("--llm-layers", type=int, default=2)
    br.add_argument("--llm-mlp", type=int, default=11008)
    br.add_argument("--dit", default="DiT-B", choices=("DiT-S", "DiT-B", "DiT-L"))
    br.add_argument("--instruction", default="put the red cube on the green cube")
    br.add_argument("--unnorm-key", default="bridge_orig")
    br.add_argument("--cfg-scale", type=float, default=1.5)
    br.add_argument("--ddim-steps", type=int, default=10)
    br.add_argument("--seed", type=int, default=0)
    br.add_argument("--prompt-instruction", action="append", default=[])
    br.add_argument("--reload", action="store_true", help="reload the saved folder with the official load_vla")
    br.set_defaults(run=cmd_build_run)
    pi = sub.choices["prompt-ids"]
    pi.add_argument("--work-dir", type=Path, required=True)
    pi.add_argument("--instruction", action="append", required=True)
    pi.set_defaults(run=cmd_prompt_ids)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
