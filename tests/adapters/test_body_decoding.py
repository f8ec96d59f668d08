"""Teed bodies are decoded as the HTTP client decodes them for the app."""

from __future__ import annotations

import gzip
import zlib

import pytest

from sessionware.adapters.engine.tee import decode_body

BODY = b'{"ok": true}'


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (BODY, None),
        (BODY, "identity"),
        (gzip.compress(BODY, mtime=0), "gzip"),
        (gzip.compress(BODY[:5], mtime=0) + gzip.compress(BODY[5:], mtime=0), "gzip"),
        (zlib.compress(BODY), "deflate"),
        (raw_deflate(BODY), "deflate"),
        (gzip.compress(zlib.compress(BODY), mtime=0), "deflate, gzip"),
    ],
)
def test_each_content_encoding_is_undone(encoded: bytes, encoding: str | None):
    assert decode_body(encoded, encoding) == BODY


def test_an_unknown_or_cut_encoding_raises():
    with pytest.raises(ValueError, match="unknown content encoding"):
        decode_body(BODY, "compress")
    with pytest.raises(ValueError, match="truncated"):
        decode_body(gzip.compress(BODY)[:-6], "gzip")
