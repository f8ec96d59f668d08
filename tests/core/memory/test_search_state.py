"""The search index written into a memory checkpoint and read back lazily ranks exactly
as the index it was written from, before and after pages are added, and a checkpoint
written from a partly read index is the one the original would write."""

from __future__ import annotations

import json
import random

import pytest

from sessionware.core.memory.search import SearchIndex
from sessionware.core.memory.search_state import decode, encode

WORDS = ["ledger", "postgres", "parking", "spot", "owner", "budget", "retry", "cache", "lunch", "review"]
QUERIES = [
    "which parking spot does Lucia use",
    "postgres ledger owner KX-4711-Q",
    "retry_budget_7 cache review",
    "lunch",
    "nothing matches this",
]


def _text(rng: random.Random, i: int) -> str:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
    code = f" KX-{4700 + i % 23}-Q" if i % 7 == 0 else ""
    ident = f" retry_budget_{i % 11}" if i % 5 == 0 else ""
    return f"Turn {i}: {words}{code}{ident}."


def _filled(n: int, seed: int = 3) -> SearchIndex:
    rng = random.Random(seed)
    index = SearchIndex()
    for i in range(n):
        label = "Lucia" if i % 4 == 0 else ""
        index.add(f"msg_{i + 1}", _text(rng, i), weight=0.5 if i % 9 == 0 else 1.0, label=label)
    return index


def _restored(index: SearchIndex, n: int) -> SearchIndex:
    state = json.loads(json.dumps(encode(index.columns())))  # as a checkpoint body carries it
    return SearchIndex.from_columns([f"msg_{i + 1}" for i in range(n)], decode(state, n))


def _ranks(index: SearchIndex) -> list[list[tuple[str, float, str | None]]]:
    return [
        [(h.page_id, h.score, h.via) for h in index.search(q, limit=6, follow=2, neighbours=0.3)]
        for q in QUERIES
    ]


def test_a_restored_index_ranks_as_the_one_it_was_written_from() -> None:
    original = _filled(400)
    restored = _restored(original, 400)
    assert _ranks(restored) == _ranks(original)
    assert len(restored) == 400


def test_pages_added_after_a_restore_rank_as_in_the_original() -> None:
    original = _filled(300)
    restored = _restored(original, 300)
    rng = random.Random(9)
    for i in range(300, 340):
        text = _text(rng, i)
        original.add(f"msg_{i + 1}", text)
        restored.add(f"msg_{i + 1}", text)
    assert _ranks(restored) == _ranks(original)


def test_a_partly_read_index_writes_what_the_original_writes() -> None:
    original = _filled(200)
    restored = _restored(original, 200)
    restored.search("parking owner", limit=3)  # some postings and rows parsed, most not
    rng = random.Random(5)
    for i in range(200, 210):
        text = _text(rng, i)
        original.add(f"msg_{i + 1}", text)
        restored.add(f"msg_{i + 1}", text)
    again = _restored(restored, 210)
    assert _ranks(again) == _ranks(original)
    written, rewritten = encode(original.columns()), encode(restored.columns())
    for key in ("doc_tf", "doc_idents", "lengths", "weights", "total_length"):
        assert rewritten[key] == written[key]
    assert sorted(rewritten["terms"].split(" ")) == sorted(written["terms"].split(" "))


def test_text_that_does_not_describe_the_pages_is_refused() -> None:
    state = encode(_filled(50).columns())
    with pytest.raises(ValueError):
        decode(state, 49)
    with pytest.raises(ValueError):
        decode({**state, "postings": state["postings"].rsplit("\n", 1)[0]}, 50)


def test_an_empty_index_round_trips() -> None:
    restored = _restored(SearchIndex(), 0)
    assert len(restored) == 0 and restored.search("anything") == []
    restored.add("msg_1", "the ledger moved to postgres")
    assert [h.page_id for h in restored.search("postgres")] == ["msg_1"]
