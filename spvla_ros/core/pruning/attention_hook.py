"""Attention probabilities of ONE vision-encoder layer while every layer keeps its fast kernel (SDPA).

``output_attentions=True`` makes transformers run every layer in eager math, which costs the speed that
pruning is meant to save. Instead, forward hooks on the chosen layer's query and key projections keep
their outputs, and ``softmax(Q K^T * scale (+ mask))`` is recomputed for that layer only: one (heads, T, T)
matmul and softmax on top of the unchanged SDPA forward. The model's outputs are not touched.

Works with transformers attention modules that expose ``q_proj``/``k_proj`` (transformers 5.x
``Dinov2Attention``, ``SiglipAttention``) or ``query``/``key`` (4.x ``*SelfAttention``). Pooling heads built
on ``nn.MultiheadAttention`` (SigLIP's MAP head) are not encoder layers and are never picked.

Example::

    model = Dinov2Model.from_pretrained(path, attn_implementation="sdpa").eval()
    with LastLayerAttention(model) as capture, torch.no_grad():
        out = model(pixel_values=x)               # x: (B, 3, 224, 224)
    probs = capture.attention                     # (B, heads, T, T), T = 1 + 256
    scores = accumulated_attention(probs, capture.num_prefix_tokens)   # (256,)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

PROJECTION_NAMES = (("q_proj", "k_proj"), ("query", "key"))
"""(query, key) attribute names of the attention modules this capture understands."""


@dataclass(frozen=True)
class AttentionSite:
    """Where one layer's attention is recomputed: its module, projections, head count and logit scale."""

    module: nn.Module
    query: nn.Linear
    key: nn.Linear
    num_heads: int
    scale: float


def attention_sites(model: nn.Module) -> list[AttentionSite]:
    """Every self-attention module of ``model`` with separate Linear q/k projections, in module order."""
    config = getattr(model, "config", None)
    vision_config = getattr(config, "vision_config", None)
    config = vision_config if vision_config is not None else config
    sites = []
    for module in model.modules():
        for q_name, k_name in PROJECTION_NAMES:
            query, key = getattr(module, q_name, None), getattr(module, k_name, None)
            if isinstance(query, nn.Linear) and isinstance(key, nn.Linear):
                heads = _num_heads(module, config)
                head_dim = query.out_features // heads
                if heads * head_dim != query.out_features or key.out_features != query.out_features:
                    raise ValueError(
                        f"{type(module).__name__}: q/k widths {query.out_features}/{key.out_features} "
                        f"do not split into {heads} heads"
                    )
                scale = getattr(module, "scaling", getattr(module, "scale", head_dim**-0.5))
                sites.append(AttentionSite(module, query, key, heads, float(scale)))
                break
    return sites


def num_prefix_tokens(model: nn.Module) -> int:
    """Leading non-patch tokens of a transformers vision encoder's sequence: CLS + registers.

    DINOv2: 1 CLS (+ ``num_register_tokens`` for DINOv2-with-registers); SigLIP: 0 (no CLS token).

    Raises:
        ValueError: a model type this function does not know (pass the count yourself).
    """
    config = getattr(model, "config", None)
    config = getattr(config, "vision_config", None) or config
    model_type = getattr(config, "model_type", "")
    if model_type.startswith("dinov2"):
        return 1 + int(getattr(config, "num_register_tokens", 0) or 0)
    if model_type.startswith("siglip"):
        return 0
    raise ValueError(f"unknown vision model type {model_type!r}: give num_prefix_tokens explicitly")


class LastLayerAttention:
    """Context manager that captures one layer's attention probabilities (default: the last layer).

    Inside the ``with`` block, every forward pass of ``model`` records that layer's query/key projections
    (the latest pass wins); :attr:`attention` turns them into softmax probabilities on demand. Leaving the
    block removes the hooks; the captured tensors stay readable.

    Args:
        model: a transformers vision encoder (``Dinov2Model``, ``SiglipVisionModel``, ...), any attention
            implementation; the capture does not change it.
        layer_index: which attention layer, Python indexing over :func:`attention_sites` (-1 = last).
    """

    def __init__(self, model: nn.Module, layer_index: int = -1) -> None:
        sites = attention_sites(model)
        if not sites:
            raise ValueError(f"{type(model).__name__} has no attention module with Linear q/k projections")
        try:
            self._site = sites[layer_index]
        except IndexError:
            raise ValueError(f"layer_index {layer_index} out of range for {len(sites)} attention layers") from None
        self._model = model
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._query: torch.Tensor | None = None
        self._key: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None

    @property
    def num_prefix_tokens(self) -> int:
        """CLS/register tokens in front of the patches (see :func:`num_prefix_tokens`)."""
        return num_prefix_tokens(self._model)

    def __enter__(self) -> LastLayerAttention:
        if self._handles:
            raise RuntimeError("LastLayerAttention is already active")
        self.clear()
        self._handles = [
            self._site.query.register_forward_hook(self._keep_query),
            self._site.key.register_forward_hook(self._keep_key),
            self._site.module.register_forward_pre_hook(self._keep_mask, with_kwargs=True),
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def clear(self) -> None:
        """Forget the last capture."""
        self._query = self._key = self._mask = None

    @property
    def attention(self) -> torch.Tensor:
        """Softmax probabilities of the captured layer, (B, heads, T, T) float32, rows = queries.

        Raises:
            RuntimeError: no forward pass ran inside the ``with`` block.
        """
        if self._query is None or self._key is None:
            raise RuntimeError("no attention captured: run the model inside `with LastLayerAttention(model):`")
        heads = self._site.num_heads
        batch, tokens, width = self._query.shape
        q = self._query.view(batch, tokens, heads, width // heads).transpose(1, 2)
        k = self._key.view(batch, tokens, heads, width // heads).transpose(1, 2)
        logits = torch.matmul(q, k.transpose(2, 3)) * self._site.scale
        if self._mask is not None and self._mask.dtype == torch.bool:  # SDPA-style mask: True = attend
            logits = logits.masked_fill(~self._mask, float("-inf"))
        elif self._mask is not None:  # additive mask (0 or a large negative number)
            logits = logits + self._mask
        return torch.softmax(logits.float(), dim=-1)

    # --- hooks: keep references only; the math runs when .attention is read ---
    def _keep_query(self, _module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        self._query = output.detach()

    def _keep_key(self, _module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        self._key = output.detach()

    def _keep_mask(self, _module: nn.Module, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        self._mask = mask.detach() if isinstance(mask, torch.Tensor) else None


def capture_last_layer_attention(model: nn.Module) -> LastLayerAttention:
    """``LastLayerAttention(model)``: a context manager capturing the last layer's attention."""
    return LastLayerAttention(model)


def _num_heads(module: nn.Module, config: object) -> int:
    for name in ("num_heads", "num_attention_heads"):
        value = getattr(module, name, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(config, "num_attention_heads", None)
    if isinstance(value, int) and value > 0:
        return value
    raise ValueError(f"cannot tell the head count of {type(module).__name__}")
