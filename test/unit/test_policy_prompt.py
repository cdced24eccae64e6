"""CogACT prompt token ids equal the official ones, on the real Llama-2 tokenizer.

``data/official_prompt_ids.json`` holds, per instruction, the ids the *official* ``CogACT.predict_action``
feeds the LLM (Prismatic's prompt builder + transformers 4.40's LlamaTokenizerFast on the real Llama-2
``tokenizer.model`` + CogACT's [29871, 2] suffix), recorded by running the official code in its own venv::

    .venv-cogact/bin/python tools/cogact_reference.py prompt-ids --third-party ../shared/third_party \\
        --tokenizer ../shared/models/llama2-tokenizer --work-dir build/prompt-ids \\
        --out test/unit/data/official_prompt_ids.json --instruction "pick coke can" ...  # one per key

test/parity/test_cogact_parity.py re-derives them from the official code on every run where the reference venv
exists and checks they still equal this file.

Regression pinned: spvla's template ended ``"Out: "`` and the official builder strips trailing whitespace, so
the ids ended ``29901, 29871, 29871, 2`` instead of ``29901, 29871, 2`` (cognition feature off by ~7 %).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from spvla_testing import shared_path

from spvla_ros.core.policy.prompt import BOS_ID, EOS_ID, LLAMA_SPACE_ID, LlamaPromptTokenizer

OFFICIAL_IDS = json.loads((Path(__file__).parent / "data" / "official_prompt_ids.json").read_text())
COLON_ID = 29901
"""Llama-2's ":" (the prompt ends "Out:")."""


@pytest.fixture(scope="module")
def tokenizer() -> LlamaPromptTokenizer:
    return LlamaPromptTokenizer(shared_path("models/llama2-tokenizer"))


def test_the_recorded_instructions_cover_the_hard_cases() -> None:
    keys = list(OFFICIAL_IDS)
    assert len(keys) >= 6
    assert any(k != k.strip() for k in keys) and any(k != k.lower() for k in keys)
    assert any(c.isdigit() for k in keys for c in k) and any(k.rstrip().endswith(".") for k in keys)


@pytest.mark.parametrize("instruction", list(OFFICIAL_IDS))
def test_prompt_ids_equal_the_official_ids(tokenizer: LlamaPromptTokenizer, instruction: str) -> None:
    ids = tokenizer.prompt_ids(instruction)
    assert ids == OFFICIAL_IDS[instruction]
    assert ids[0] == BOS_ID and ids[-3:] == [COLON_ID, LLAMA_SPACE_ID, EOS_ID]


def test_a_folder_with_only_tokenizer_model_still_starts_with_bos(tokenizer: LlamaPromptTokenizer) -> None:
    """shared/models/llama2-tokenizer holds only tokenizer.model (no config saying add_bos_token)."""
    folder = shared_path("models/llama2-tokenizer")
    assert not (folder / "tokenizer_config.json").exists()
    assert tokenizer.prompt_ids("pick coke can")[:2] == [BOS_ID, 512]  # BOS, "In"


def test_missing_tokenizer_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        LlamaPromptTokenizer(tmp_path)
