"""The language instruction as the nodes pass it around: a digest to match chunks, a short form to log.

The policy stamps every chunk with the digest of the instruction it was predicted for; the scheduler
drops a chunk whose digest is not that of its own current instruction (an answer for the previous task
must never run after an instruction change). Logs show :func:`instruction_for_log`, never the whole text.
"""

from __future__ import annotations

import hashlib

DIGEST_CHARS = 16
"""Hex characters of the digest (64 bits: a collision between two instructions is not a practical risk)."""
LOG_CHARS = 120
"""Characters of an instruction shown in a log line."""


def instruction_digest(text: str) -> str:
    """Stable digest of an instruction (first 16 hex characters of SHA-256 of its UTF-8 bytes)."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:DIGEST_CHARS]


def instruction_for_log(text: str, limit: int = LOG_CHARS) -> str:
    """``repr`` of the instruction, cut to ``limit`` characters with the full length stated when longer."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"
