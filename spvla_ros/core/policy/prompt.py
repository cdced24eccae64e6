"""CogACT prompt and its token ids.

Prompt (Prismatic ``PurePromptBuilder`` for Llama-2 "pure"):
``In: What action should the robot take to {instruction.lower()}?\\nOut: `` tokenized with BOS, then CogACT
appends token 29871 (SentencePiece's lone "▁", as seen after "Out:" in training) and the cognition token 2
(EOS). Two tokenizers are supported:

* ``LlamaPromptTokenizer``: a Llama-2 tokenizer read from a *local* directory (``tokenizer.json`` or
  ``tokenizer.model``); needed for real weights. Nothing is downloaded.
* ``WordHashTokenizer`` (ours): deterministic ids from a CRC32 of each word/punctuation piece, for random-init
  weights (tests, timing). Its token count is close to Llama's for English prompts, so sequence lengths and
  timings stay representative; its ids mean nothing to a trained model.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Protocol

PROMPT_TEMPLATE = "In: What action should the robot take to {instruction}?\nOut: "
BOS_ID = 1
EOS_ID = 2
"""Llama-2's EOS; CogACT uses it as the cognition token."""
LLAMA_SPACE_ID = 29871
"""Llama-2's lone "▁" piece that CogACT inserts before the cognition token."""
FIRST_FREE_ID = 3
"""Ids 0..2 are <unk>, <s>, </s> in Llama-2's vocabulary."""
_PIECES = re.compile(r"\w+|[^\w\s]")


def build_prompt(instruction: str) -> str:
    """The CogACT prompt for ``instruction`` (stripped, lower-cased as CogACT does). ValueError if empty."""
    if not isinstance(instruction, str):
        raise ValueError(f"instruction must be a str, got {type(instruction).__name__}")
    text = instruction.strip()
    if not text:
        raise ValueError("instruction is empty")
    return PROMPT_TEMPLATE.format(instruction=text.lower())


class PromptTokenizer(Protocol):
    def prompt_ids(self, instruction: str) -> list[int]:
        """Ids of BOS + prompt + the cognition suffix; the last id is the cognition token."""
        ...


class WordHashTokenizer:
    """Deterministic, file-free tokenizer for random-init weights (see module docstring)."""

    def __init__(self, vocab_size: int) -> None:
        if vocab_size <= FIRST_FREE_ID + 1:
            raise ValueError(f"vocab_size must be > {FIRST_FREE_ID + 1}, got {vocab_size}")
        self.vocab_size = vocab_size
        self.suffix = [LLAMA_SPACE_ID, EOS_ID] if vocab_size > LLAMA_SPACE_ID else [EOS_ID]

    def prompt_ids(self, instruction: str) -> list[int]:
        span = self.vocab_size - FIRST_FREE_ID
        pieces = _PIECES.findall(build_prompt(instruction))
        return [BOS_ID, *(FIRST_FREE_ID + zlib.crc32(p.encode()) % span for p in pieces), *self.suffix]


class LlamaPromptTokenizer:
    """A Llama-2 tokenizer from a local directory (transformers ``AutoTokenizer``, offline only)."""

    def __init__(self, directory: str | Path) -> None:
        from transformers import AutoTokenizer

        directory = Path(directory)
        if not any((directory / f).exists() for f in ("tokenizer.json", "tokenizer.model")):
            raise FileNotFoundError(
                f"no Llama-2 tokenizer in {directory} (expected tokenizer.json or tokenizer.model); copy the "
                "files of meta-llama/Llama-2-7b-hf there, nothing is downloaded"
            )
        self._tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)

    def prompt_ids(self, instruction: str) -> list[int]:
        ids = list(self._tok(build_prompt(instruction), add_special_tokens=True).input_ids)
        if not ids or ids[0] != BOS_ID:
            raise ValueError(f"tokenizer did not start the prompt with BOS ({BOS_ID}): {ids[:4]}")
        return [*ids, LLAMA_SPACE_ID, EOS_ID]
