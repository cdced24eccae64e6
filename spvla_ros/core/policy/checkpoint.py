"""Checkpoint I/O: the official CogACT release layout and our own format, both loaded strictly.

Official layout (microsoft/CogACT ``vla/load.py``, ``training/strategies/fsdp.py``)::

    <run_dir>/config.json               # training config; we read ``action_model_type`` when present
    <run_dir>/dataset_statistics.json   # {unnorm_key: {"action": {"q01", "q99", "mask", ...}}}
    <run_dir>/checkpoints/<name>.pt     # torch.save({"model": {section: state_dict}})

Sections of ``model``: ``vision_backbone``, ``projector``, ``llm_backbone``, ``action_model`` (and, when trained
with EMA, ``ema_diffusion``, which is recognized and ignored). Key mapping onto our modules:

* ``projector``: identical (``projector.{0,2,4}.{weight,bias}``).
* ``llm_backbone``: identical (``llm.model.*``, ``llm.lm_head.weight``); ``*.rotary_emb.inv_freq`` buffers that
  older transformers versions saved are recomputed from the config and ignored.
* ``action_model``: identical (``net.*``; our DiT keeps CogACT's module names).
* ``vision_backbone``: timm ``VisionTransformer`` names under ``dino_featurizer.`` / ``siglip_featurizer.`` are
  mapped onto transformers ``Dinov2WithRegistersModel`` / ``SiglipVisionModel`` (we keep transformers so the
  vision towers use its SDPA kernels and the pruning package's attention hooks). The mapping is one-to-one
  except where noted:

  ====================================  ====================================================================
  timm (official)                       ours (transformers)
  ====================================  ====================================================================
  dino: cls_token, reg_token            embeddings.cls_token, embeddings.register_tokens
  dino: pos_embed (1, 256, D)           embeddings.position_embeddings (1, 257, D): a zero row is prepended
                                        for the CLS slot (timm's reg4 DINOv2 adds no position to CLS);
                                        exporting requires that row to be zero
  dino: (none)                          embeddings.mask_token: set to zero (pre-training only, unused)
  patch_embed.proj.*                    dino: embeddings.patch_embeddings.projection.*;
                                        siglip: embeddings.patch_embedding.*
  siglip: pos_embed (1, 256, D)         embeddings.position_embedding.weight (256, D)
  blocks.i.attn.qkv.{weight,bias}       split in three along dim 0 -> q_proj / k_proj / v_proj
  blocks.i.attn.proj.*                  dino: encoder.layer.i.attention.o_proj; siglip: ...self_attn.out_proj
  blocks.i.norm1/norm2.*                dino: encoder.layer.i.norm1/norm2; siglip: encoder.layers.i.layer_norm1/2
  blocks.i.ls1.gamma, ls2.gamma         dino: encoder.layer.i.layer_scale1.lambda1, layer_scale2.lambda1
  blocks.i.mlp.fc1/fc2.*                ....mlp.fc1/fc2.*
  norm.*                                dino: layernorm.*; siglip: post_layernorm.*
  siglip: attn_pool.latent              head.probe
  siglip: attn_pool.q.* + attn_pool.kv.*  head.attention.in_proj_{weight,bias} (concatenated q, k, v)
  siglip: attn_pool.proj/norm/mlp.*     head.attention.out_proj / head.layernorm / head.mlp.*
  ====================================  ====================================================================

Our format: ``<dir>/spvla_policy.json`` (``{"format": "spvla-cogact", "version": 1, "preset": name}``),
``<dir>/model.safetensors`` (our module names) and ``<dir>/dataset_statistics.json``.

Every load is strict: a missing, unexpected or mis-shaped tensor raises :class:`CheckpointError` naming them
(in the file's own key names).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from spvla_ros.core.policy.model import SECTIONS, CogACTModel
from spvla_ros.core.policy.presets import PolicyPreset

OWN_FORMAT = "spvla-cogact"
OWN_VERSION = 1
OWN_META = "spvla_policy.json"
OWN_WEIGHTS = "model.safetensors"
STATS_FILE = "dataset_statistics.json"
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
LATEST_CHECKPOINT = "latest-checkpoint.pt"
IGNORED_SECTIONS = ("ema_diffusion",)
"""Official sections we recognize but do not load (EMA copy of the action head)."""
IGNORED_KEY = re.compile(r"\.rotary_emb\.inv_freq$")
"""Non-persistent buffers some checkpoints carry; recomputed from the config."""
MAX_NAMES_IN_ERROR = 12
BASE_VLM_ID = "prism-dinosiglip-224px+7b"
"""``vla.base_vlm`` written into exported config.json files (the VLM CogACT was trained from)."""

DINO = "dino_featurizer."
SIGLIP = "siglip_featurizer."


class CheckpointError(ValueError):
    """A checkpoint does not match the model (missing / unexpected / mis-shaped tensors, bad layout)."""


# ---------------------------------------------------------------------------------------------------------
# vision key mapping (one-to-one renames; the special cases are handled in the two converters below)
# ---------------------------------------------------------------------------------------------------------
_WB = ("weight", "bias")


def _dino_renames(num_layers: int) -> dict[str, str]:
    """ours -> official, one-to-one DINOv2 renames (without the ``dino_featurizer.`` prefix)."""
    m = {"embeddings.cls_token": "cls_token", "embeddings.register_tokens": "reg_token"}
    for p in _WB:
        m[f"embeddings.patch_embeddings.projection.{p}"] = f"patch_embed.proj.{p}"
        m[f"layernorm.{p}"] = f"norm.{p}"
    for i in range(num_layers):
        ours, off = f"encoder.layer.{i}.", f"blocks.{i}."
        for p in _WB:
            for a, b in (("norm1", "norm1"), ("norm2", "norm2"), ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2"),
                         ("attention.o_proj", "attn.proj")):
                m[f"{ours}{a}.{p}"] = f"{off}{b}.{p}"
        m[f"{ours}layer_scale1.lambda1"] = f"{off}ls1.gamma"
        m[f"{ours}layer_scale2.lambda1"] = f"{off}ls2.gamma"
    return m


def _siglip_renames(num_layers: int) -> dict[str, str]:
    """ours -> official, one-to-one SigLIP renames (without the ``siglip_featurizer.`` prefix)."""
    m = {"head.probe": "attn_pool.latent"}
    for p in _WB:
        m[f"embeddings.patch_embedding.{p}"] = f"patch_embed.proj.{p}"
        m[f"post_layernorm.{p}"] = f"norm.{p}"
        m[f"head.attention.out_proj.{p}"] = f"attn_pool.proj.{p}"
        m[f"head.layernorm.{p}"] = f"attn_pool.norm.{p}"
        m[f"head.mlp.fc1.{p}"] = f"attn_pool.mlp.fc1.{p}"
        m[f"head.mlp.fc2.{p}"] = f"attn_pool.mlp.fc2.{p}"
    for i in range(num_layers):
        ours, off = f"encoder.layers.{i}.", f"blocks.{i}."
        for p in _WB:
            for a, b in (("layer_norm1", "norm1"), ("layer_norm2", "norm2"), ("mlp.fc1", "mlp.fc1"),
                         ("mlp.fc2", "mlp.fc2"), ("self_attn.out_proj", "attn.proj")):
                m[f"{ours}{a}.{p}"] = f"{off}{b}.{p}"
    return m


def _qkv_names(tower: str, i: int) -> tuple[str, str]:
    """(ours q/k/v prefix without 'q_proj', official qkv prefix) for block ``i`` of a tower."""
    return (f"encoder.layer.{i}.attention.", f"blocks.{i}.attn.qkv") if tower == DINO else (
        f"encoder.layers.{i}.self_attn.", f"blocks.{i}.attn.qkv")


def vision_to_official(ours: Mapping[str, torch.Tensor], preset: PolicyPreset, check_constants: bool = True) -> dict:
    """Our ``vision_backbone`` state dict (keys without the section prefix) -> official timm keys.

    Raises:
        CheckpointError: with ``check_constants``, a non-zero DINOv2 CLS position row or mask token (timm has
            no place for them).
    """
    out: dict[str, torch.Tensor] = {}
    for tower, renames, layers in ((DINO, _dino_renames(preset.dino.num_layers), preset.dino.num_layers),
                                   (SIGLIP, _siglip_renames(preset.siglip.num_layers), preset.siglip.num_layers)):
        for a, b in renames.items():
            out[tower + b] = ours[tower + a]
        for i in range(layers):
            q, off = _qkv_names(tower, i)
            for p in _WB:
                out[f"{tower}{off}.{p}"] = torch.cat([ours[f"{tower}{q}{n}_proj.{p}"] for n in "qkv"], dim=0)
    pos = ours[DINO + "embeddings.position_embeddings"]
    mask = ours[DINO + "embeddings.mask_token"]
    if check_constants and (pos[:, 0].abs().max() > 0 or mask.abs().max() > 0):
        raise CheckpointError("DINOv2 CLS position row / mask token are not zero: not expressible in timm layout")
    out[DINO + "pos_embed"] = pos[:, 1:]
    out[SIGLIP + "pos_embed"] = ours[SIGLIP + "embeddings.position_embedding.weight"].unsqueeze(0)
    in_w = ours[SIGLIP + "head.attention.in_proj_weight"]
    in_b = ours[SIGLIP + "head.attention.in_proj_bias"]
    d = in_w.shape[1]
    out[SIGLIP + "attn_pool.q.weight"], out[SIGLIP + "attn_pool.kv.weight"] = in_w[:d], in_w[d:]
    out[SIGLIP + "attn_pool.q.bias"], out[SIGLIP + "attn_pool.kv.bias"] = in_b[:d], in_b[d:]
    return out


def vision_from_official(official: Mapping[str, torch.Tensor], preset: PolicyPreset) -> dict:
    """Official timm-named ``vision_backbone`` state dict -> ours (inverse of :func:`vision_to_official`).

    The keys and shapes must already have been validated (:func:`_check_section`).
    """
    out: dict[str, torch.Tensor] = {}
    for tower, renames, layers in ((DINO, _dino_renames(preset.dino.num_layers), preset.dino.num_layers),
                                   (SIGLIP, _siglip_renames(preset.siglip.num_layers), preset.siglip.num_layers)):
        for a, b in renames.items():
            out[tower + a] = official[tower + b]
        for i in range(layers):
            q, off = _qkv_names(tower, i)
            for p in _WB:
                for n, part in zip("qkv", official[f"{tower}{off}.{p}"].chunk(3, dim=0), strict=True):
                    out[f"{tower}{q}{n}_proj.{p}"] = part
    pos = official[DINO + "pos_embed"]
    out[DINO + "embeddings.position_embeddings"] = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)
    out[DINO + "embeddings.mask_token"] = torch.zeros(1, pos.shape[-1], dtype=pos.dtype)
    out[SIGLIP + "embeddings.position_embedding.weight"] = official[SIGLIP + "pos_embed"][0]
    for p in _WB:
        out[SIGLIP + f"head.attention.in_proj_{p}"] = torch.cat(
            [official[SIGLIP + f"attn_pool.q.{p}"], official[SIGLIP + f"attn_pool.kv.{p}"]], dim=0
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# whole-model conversion
# ---------------------------------------------------------------------------------------------------------
def _sections(state: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    out: dict[str, dict[str, torch.Tensor]] = {s: {} for s in SECTIONS}
    for key, value in state.items():
        section, _, rest = key.partition(".")
        out[section][rest] = value
    return out


def to_official(state: Mapping[str, torch.Tensor], preset: PolicyPreset, check_constants: bool = True) -> dict:
    """Our full state dict -> the official ``{"vision_backbone": ..., "projector": ..., ...}`` sections."""
    sec = _sections(state)
    sec["vision_backbone"] = vision_to_official(sec["vision_backbone"], preset, check_constants)
    return sec


def from_official(sections: Mapping[str, Mapping[str, torch.Tensor]], preset: PolicyPreset) -> dict:
    """Validated official sections -> our full state dict."""
    out: dict[str, torch.Tensor] = {}
    for section in SECTIONS:
        part = sections[section]
        if section == "vision_backbone":
            part = vision_from_official(part, preset)
        out.update({f"{section}.{k}": v for k, v in part.items() if not IGNORED_KEY.search(k)})
    return out


def _meta_state(model: CogACTModel) -> dict[str, torch.Tensor]:
    return {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in model.state_dict().items()}


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_NAMES_IN_ERROR])
    more = f" (+{len(keys) - MAX_NAMES_IN_ERROR} more)" if len(keys) > MAX_NAMES_IN_ERROR else ""
    return f"{len(keys)}: {shown}{more}"


def check_state(
    found: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Tensor],
    where: str,
    ignore: re.Pattern | None = None,
) -> None:
    """Raise :class:`CheckpointError` naming every missing, unexpected and mis-shaped tensor of ``found``."""
    keys = {k for k in found if not (ignore and ignore.search(k))}
    missing = sorted(set(expected) - keys)
    unexpected = sorted(keys - set(expected))
    bad_shape = sorted(
        f"{k} {tuple(found[k].shape)} != {tuple(expected[k].shape)}"
        for k in keys & set(expected)
        if tuple(found[k].shape) != tuple(expected[k].shape)
    )
    not_tensor = sorted(k for k in keys if not isinstance(found[k], torch.Tensor))
    problems = []
    if missing:
        problems.append(f"missing tensors {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_names(unexpected)}")
    if bad_shape:
        problems.append(f"mis-shaped tensors {_names(bad_shape)}")
    if not_tensor:
        problems.append(f"entries that are not tensors {_names(not_tensor)}")
    if problems:
        raise CheckpointError(f"{where}: " + "; ".join(problems))


def load_official_state(model: CogACTModel, sections: Mapping, where: str) -> None:
    """Strictly load official ``model`` sections into ``model`` (copying into its device and dtype)."""
    if not isinstance(sections, Mapping):
        raise CheckpointError(f"{where}: 'model' is not a mapping of sections")
    unknown = sorted(set(sections) - set(SECTIONS) - set(IGNORED_SECTIONS))
    missing = [s for s in SECTIONS if s not in sections]
    if missing or unknown:
        raise CheckpointError(
            f"{where}: missing sections {missing}, unexpected sections {unknown} (expected {list(SECTIONS)}; "
            "the vision backbone is required since no pretrained towers are downloaded)"
        )
    expected = to_official(_meta_state(model), model.preset, check_constants=False)
    for section in SECTIONS:
        if not isinstance(sections[section], Mapping):
            raise CheckpointError(f"{where}: section {section!r} is not a state dict")
        check_state(sections[section], expected[section], f"{where} [{section}]", IGNORED_KEY)
    _copy_into(model, from_official(sections, model.preset), where)


def _copy_into(model: CogACTModel, state: Mapping[str, torch.Tensor], where: str) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:  # cannot happen after check_state; keep the guarantee
        raise CheckpointError(f"{where}: missing {result.missing_keys}, unexpected {result.unexpected_keys}")


# ---------------------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------------------
def find_official_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(run_dir, .pt file) of an official layout given the run directory or the .pt file itself."""
    path = Path(path)
    if path.is_file():
        if path.suffix != ".pt" or path.parent.name != CHECKPOINT_DIR:
            raise CheckpointError(f"{path}: expected <run_dir>/{CHECKPOINT_DIR}/<name>.pt")
        return path.parents[1], path
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    pts = sorted((path / CHECKPOINT_DIR).glob("*.pt"))
    if not pts:
        raise CheckpointError(f"{path}: no {CHECKPOINT_DIR}/*.pt (and no {OWN_META}): not a CogACT checkpoint")
    if len(pts) == 1:
        return path, pts[0]
    latest = path / CHECKPOINT_DIR / LATEST_CHECKPOINT
    if latest.is_file():
        return path, latest
    raise CheckpointError(f"{path}: several checkpoints {[p.name for p in pts]}; pass the .pt file to use")


def is_own_format(path: str | Path) -> bool:
    return (Path(path) / OWN_META).is_file()


def read_own_meta(directory: str | Path) -> dict:
    meta = json.loads((Path(directory) / OWN_META).read_text())
    if meta.get("format") != OWN_FORMAT or meta.get("version") != OWN_VERSION:
        raise CheckpointError(
            f"{directory}/{OWN_META}: format {meta.get('format')!r} v{meta.get('version')!r} is not "
            f"{OWN_FORMAT!r} v{OWN_VERSION}"
        )
    return meta


def read_official_config(run_dir: Path) -> dict:
    cfg_path = run_dir / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{run_dir}: missing {CONFIG_FILE}")
    return json.loads(cfg_path.read_text())


def load_weights(model: CogACTModel, path: str | Path) -> Path:
    """Strictly load a checkpoint (either format) into ``model``; returns its ``dataset_statistics.json`` path."""
    path = Path(path)
    if path.is_dir() and is_own_format(path):
        meta = read_own_meta(path)
        if meta.get("preset") != model.preset.name:
            raise CheckpointError(f"{path}: saved for preset {meta.get('preset')!r}, not {model.preset.name!r}")
        from safetensors.torch import load_file

        state = load_file(str(path / OWN_WEIGHTS))
        check_state(state, _meta_state(model), str(path / OWN_WEIGHTS))
        _copy_into(model, state, str(path))
        return path / STATS_FILE
    run_dir, pt = find_official_checkpoint(path)
    config = read_official_config(run_dir)
    kind = config.get("action_model_type")
    if kind is not None and kind != model.preset.action_model_type:
        raise CheckpointError(
            f"{run_dir}/{CONFIG_FILE}: action_model_type {kind!r} does not match preset "
            f"{model.preset.name!r} ({model.preset.action_model_type})"
        )
    blob = torch.load(pt, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(blob, Mapping) or "model" not in blob:
        raise CheckpointError(f"{pt}: expected a dict with key 'model', got keys {list(blob)[:5]}")
    load_official_state(model, blob["model"], str(pt))
    return run_dir / STATS_FILE


def save_own(model: CogACTModel, directory: str | Path, dataset_statistics: Mapping) -> Path:
    """Write ``model`` in our format (safetensors + meta + statistics); returns the directory."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(directory / OWN_WEIGHTS))
    meta = {"format": OWN_FORMAT, "version": OWN_VERSION, "preset": model.preset.name}
    (directory / OWN_META).write_text(json.dumps(meta, indent=2) + "\n")
    (directory / STATS_FILE).write_text(json.dumps(dataset_statistics, indent=2) + "\n")
    return directory


def save_official(model: CogACTModel, run_dir: str | Path, dataset_statistics: Mapping) -> Path:
    """Write ``model`` in the official CogACT layout (timm vision keys); returns the .pt path."""
    run_dir = Path(run_dir)
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    sections = to_official(state, model.preset)
    pt = run_dir / CHECKPOINT_DIR / LATEST_CHECKPOINT
    torch.save({"model": {k: {n: t.contiguous() for n, t in v.items()} for k, v in sections.items()}}, pt)
    config = {
        "vla": {"vla_id": f"spvla-export-{model.preset.name}", "base_vlm": BASE_VLM_ID},
        "action_model_type": model.preset.action_model_type,
        "future_action_window_size": model.preset.future_action_window_size,
        "past_action_window_size": 0,
    }
    (run_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (run_dir / STATS_FILE).write_text(json.dumps(dataset_statistics, indent=2) + "\n")
    return pt
