"""CogACT prompt and its token ids, exactly as the official ``CogACT.predict_action`` builds them.

Official path (microsoft/CogACT ``vla/cogactvla.py`` + Prismatic ``PurePromptBuilder`` for Llama-2 "pure"):

1. message ``What action should the robot take to {instruction.lower()}?``; the builder removes ``<image>``
   and strips the *message* (the instruction itself is used as given, lower-cased);
2. turn ``In: {message}\\nOut: ``; ``get_prompt()`` strips trailing whitespace, so the text ends ``Out:``;
3. the Llama-2 tokenizer adds BOS; CogACT appends token 29871 (SentencePiece's lone "▁", as seen after
   "Out:" in training) and the cognition token 2 (EOS).

Two tokenizers are supported:

* ``LlamaPromptTokenizer``: the Llama-2 tokenizer read from a *local* directory (``tokenizer.json`` or just
  ``tokenizer.model``, which needs ``sentencepiece`` and ``protobuf``); needed for real weights. Nothing is
  downloaded. Its ids equal the official ones (test/unit/test_policy_prompt.py, against ids recorded from the
  official code).
* ``WordHashTokenizer`` (ours): deterministic ids from a CRC32 of each word/punctuation piece, for random-init
  weights (tests, timing). Its token count is close to Llama's for English prompts, so sequence lengths and
  timings stay representative; its ids mean nothing to a trained model.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Protocol

TASK_QUESTION = "What action should the robot take to {instruction}?"
"""CogACT's question around the (lower-cased) instruction."""
PROMPT_TURN = "In: {message}\nOut: "
"""Prismatic ``PurePromptBuilder``'s human turn; the prompt is this with trailing whitespace stripped."""
IMAGE_PLACEHOLDER = "<image>"
"""Removed from the message by the prompt builder."""
BOS_ID = 1
EOS_ID = 2
"""Llama-2's EOS; CogACT uses it as the cognition token."""
LLAMA_SPACE_ID = 29871
"""Llama-2's lone "▁" piece that CogACT inserts before the cognition token."""
FIRST_FREE_ID = 3
"""Ids 0..2 are <unk>, <s>, </s> in Llama-2's vocabulary."""
_PIECES = re.compile(r"\w+|[^\w\s]")


def build_prompt(instruction: str) -> str:
    """The CogACT prompt text for ``instruction`` (see the module docstring); ValueError if it is blank.

    Example: ``build_prompt("Pick up the cup")`` is ``"In: What action should the robot take to pick up the
    cup?\\nOut:"``.
    """
    if not isinstance(instruction, str):
        raise ValueError(f"instruction must be a str, got {type(instruction).__name__}")
    if not instruction.strip():
        raise ValueError("instruction is empty")
    message = TASK_QUESTION.format(instruction=instruction.lower()).replace(IMAGE_PLACEHOLDER, "").strip()
    return PROMPT_TURN.format(message=message).rstrip()


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
    """The Llama-2 tokenizer from a local directory (transformers ``LlamaTokenizer``, offline only).

    BOS is prepended here rather than left to the directory's tokenizer config: a directory holding only
    ``tokenizer.model`` has no config saying ``add_bos_token``, and the official prompt always starts with BOS.
    """

    def __init__(self, directory: str | Path) -> None:
        from transformers import LlamaTokenizer

        directory = Path(directory)
        if not any((directory / f).exists() for f in ("tokenizer.json", "tokenizer.model")):
            raise FileNotFoundError(
                f"no Llama-2 tokenizer in {directory} (expected tokenizer.json or tokenizer.model); copy the "
                "files of meta-llama/Llama-2-7b-hf there, nothing is downloaded"
            )
        self._tok = LlamaTokenizer.from_pretrained(str(directory), local_files_only=True)

    def prompt_ids(self, instruction: str) -> list[int]:
        ids = list(self._tok(build_prompt(instruction), add_special_tokens=False).input_ids)
        return [BOS_ID, *ids, LLAMA_SPACE_ID, EOS_ID]
