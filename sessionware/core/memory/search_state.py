"""The search index as text for a memory checkpoint, read back lazily.

A process that restores a long session from a checkpoint searches on its first build
(the recall region), so the index must come with the checkpoint: made again from 22,000
pages it cost seconds. Written whole it still cost hundreds of milliseconds to parse,
while a build reads the postings of a handful of query terms and the rows of the few
pages they score. So the index is kept as lines of text: one per term (its postings),
one per page (its term frequencies, its identifiers), split once when restored and
parsed line by line when first read (``LazyMap``, ``LazyRows``). Pages added later
append to them as to the plain containers they stand in for.

Terms and identifiers never hold spaces, newlines, ``,``, ``;`` or ``:`` (``text``'s
patterns), so those separate them. Numbers are written with ``repr``: read back, every
score is computed from the very floats the writing process had.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, overload

__all__ = ["IndexColumns", "IndexSnapshot", "LazyMap", "LazyRows", "decode", "encode", "snapshot"]

V = TypeVar("V")
T = TypeVar("T")


class LazyMap(dict[str, V]):
    """A dict whose missing keys may still be read from text (``load``) on first use."""

    __slots__ = ("_load", "_pending")

    def __init__(self, pending: dict[str, int], load: Callable[[str, int], None]) -> None:
        super().__init__()
        self._pending = pending
        """Keys not parsed yet, with their line number (shared with sibling maps)."""
        self._load = load

    def _fill(self, key: str) -> bool:
        line = self._pending.pop(key, None)
        if line is None:
            return False
        self._load(key, line)
        return True

    def __missing__(self, key: str) -> V:
        if self._fill(key):
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or key in self._pending

    @overload
    def get(self, key: str, default: None = None, /) -> V | None: ...
    @overload
    def get(self, key: str, default: V | T, /) -> V | T: ...
    def get(self, key: str, default: Any = None, /) -> Any:
        if dict.__contains__(self, key) or self._fill(key):
            return dict.__getitem__(self, key)
        return default

    def setdefault(self, key: str, default: V, /) -> V:
        if dict.__contains__(self, key) or self._fill(key):
            return dict.__getitem__(self, key)
        dict.__setitem__(self, key, default)
        return default

    def raw(self) -> Mapping[str, int]:
        """Keys not parsed yet and their line numbers."""
        return self._pending


class LazyRows(list[T]):
    """A list whose first ``len(raw)`` items are parsed from ``raw`` when first read."""

    __slots__ = ("_parse", "_raw")

    def __init__(self, raw: list[str], parse: Callable[[str], T]) -> None:
        super().__init__([None] * len(raw))  # type: ignore[list-item]
        self._raw: list[str | None] = list(raw)
        self._parse = parse

    @overload  # type: ignore[override]
    def __getitem__(self, i: int, /) -> T: ...
    @overload
    def __getitem__(self, i: slice, /) -> list[T]: ...
    def __getitem__(self, i: int | slice, /) -> T | list[T]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        value = list.__getitem__(self, i)
        if value is None:
            raw = self._raw[i]
            if raw is not None:
                value = self._parse(raw)
                list.__setitem__(self, i, value)
                self._raw[i] = None
        return value

    def raw(self, i: int) -> str | None:
        """Row ``i``'s text while it is not parsed yet."""
        return self._raw[i] if i < len(self._raw) else None

    def items(self) -> list[T | str]:
        """Each row, or its text while it is not parsed yet (a copy)."""
        parsed: list[T] = list.copy(self)
        out: list[T | str] = [
            value if text is None else text for text, value in zip(self._raw, parsed, strict=False)
        ]
        return out + parsed[len(out) :]


class IndexColumns:
    """The containers of a ``SearchIndex`` (the index hands them over and takes them back)."""

    __slots__ = (
        "doc_identifiers",
        "doc_tf",
        "docs",
        "identifiers",
        "lengths",
        "tfs",
        "total_length",
        "weights",
    )

    def __init__(
        self,
        *,
        docs: dict[str, list[int]],
        tfs: dict[str, list[float]],
        doc_tf: list[dict[str, float]],
        lengths: list[float],
        total_length: float,
        identifiers: dict[str, list[int]],
        doc_identifiers: list[list[str]],
        weights: list[float],
    ) -> None:
        self.docs = docs
        self.tfs = tfs
        self.doc_tf = doc_tf
        self.lengths = lengths
        self.total_length = total_length
        self.identifiers = identifiers
        self.doc_identifiers = doc_identifiers
        self.weights = weights


# -- writing ---------------------------------------------------------------------------


class IndexSnapshot:
    """The index's rows as of one moment, for a checkpoint written later (``encode``).

    Made under the memory's lock (``snapshot``), read without it while the index goes on
    growing: it holds copies of the containers that change (which terms exist, which are
    still text, the per-page rows) and the posting lists themselves, which pages added
    later only extend past ``n`` (their document numbers grow), so they are cut at ``n``.
    """

    __slots__ = ("doc_idents", "doc_tf", "idents", "lengths", "n", "terms", "total_length", "weights")

    def __init__(self, columns: IndexColumns) -> None:
        self.n = len(columns.lengths)
        self.lengths = list(columns.lengths)
        self.weights = list(columns.weights)
        self.total_length = columns.total_length
        self.terms = _Postings.of(columns.docs, columns.tfs)
        self.idents = _Postings.of(columns.identifiers, None)
        self.doc_tf = _row_items(columns.doc_tf)
        self.doc_idents = _row_items(columns.doc_identifiers)


class _Postings:
    """A postings map's keys still as text (key, line) and parsed ones (key, docs, tfs)."""

    __slots__ = ("lines", "parsed", "pending")

    def __init__(
        self,
        pending: list[tuple[str, int]],
        lines: Sequence[str],
        parsed: list[tuple[str, list[int], list[float] | None]],
    ) -> None:
        self.pending = pending
        self.lines = lines
        self.parsed = parsed

    @classmethod
    def of(cls, docs: dict[str, list[int]], tfs: dict[str, list[float]] | None) -> _Postings:
        pending = list(docs.raw().items()) if isinstance(docs, LazyMap) else []
        parsed: list[tuple[str, list[int], list[float] | None]]
        if tfs is None:
            parsed = [(key, value, None) for key, value in dict.items(docs)]
        else:
            parsed = [(key, value, dict.__getitem__(tfs, key)) for key, value in dict.items(docs)]
        return cls(pending, _source_lines(docs), parsed)

    def lines_below(self, n: int) -> tuple[list[str], list[str]]:
        """Keys and their postings lines, the documents below ``n`` only."""
        keys = [key for key, _ in self.pending]
        lines = [self.lines[line] for _, line in self.pending]
        for key, docs, tfs in self.parsed:
            cut = bisect_left(docs, n)
            keys.append(key)
            if tfs is None:
                lines.append(_ints(docs[:cut]))
            else:
                lines.append(_posting_line(docs[:cut], tfs[:cut]))
        return keys, lines


def _row_items(rows: Sequence[T]) -> list[T | str]:
    """Each row, or its text while not parsed (``LazyRows``)."""
    if isinstance(rows, LazyRows):
        return rows.items()
    return list(rows)


def snapshot(columns: IndexColumns) -> IndexSnapshot:
    """``columns`` as of now, to ``encode`` later without the index's owner's lock."""
    return IndexSnapshot(columns)


def encode(columns: IndexColumns | IndexSnapshot) -> dict[str, Any]:
    """``columns`` as JSON-ready text (rows never parsed are copied as read)."""
    taken = columns if isinstance(columns, IndexSnapshot) else IndexSnapshot(columns)
    terms, postings = taken.terms.lines_below(taken.n)
    idents, ident_lines = taken.idents.lines_below(taken.n)
    return {
        "terms": " ".join(terms),
        "postings": "\n".join(postings),
        "idents": " ".join(idents),
        "ident_postings": "\n".join(ident_lines),
        "doc_tf": "\n".join([row if isinstance(row, str) else _tf_row(row) for row in taken.doc_tf]),
        "doc_idents": "\n".join([row if isinstance(row, str) else " ".join(row) for row in taken.doc_idents]),
        "lengths": taken.lengths,
        "total_length": taken.total_length,
        "weights": taken.weights,
    }


def _source_lines(mapping: dict[str, list[int]]) -> Sequence[str]:
    return getattr(mapping, "lines", ())


def _posting_line(docs: Sequence[int], tfs: Sequence[float]) -> str:
    if all(tf == 1.0 for tf in tfs):
        return _ints(docs)
    return _ints(docs) + ";" + ",".join(map(repr, tfs))


def _ints(values: Sequence[int]) -> str:
    return ",".join(map(str, values))


def _tf_row(tf: Mapping[str, float]) -> str:
    return " ".join(term if n == 1.0 else f"{term}:{n!r}" for term, n in tf.items())


# -- reading ---------------------------------------------------------------------------


class _Lines(LazyMap[V]):
    """A ``LazyMap`` that keeps its source lines (a later checkpoint copies unread ones)."""

    __slots__ = ("lines",)

    def __init__(self, pending: dict[str, int], load: Callable[[str, int], None], lines: list[str]) -> None:
        super().__init__(pending, load)
        self.lines = lines


def decode(state: Mapping[str, Any], n: int) -> IndexColumns:
    """The columns ``encode`` wrote, for an index of ``n`` pages (``ValueError`` when the
    text does not describe one)."""
    terms = _words(state["terms"])
    postings = _split(state["postings"], len(terms))
    pending = dict(zip(terms, range(len(terms)), strict=True))

    def load_term(term: str, line: int) -> None:
        docs_text, _, tfs_text = postings[line].partition(";")
        docs = [int(d) for d in docs_text.split(",")]
        tfs = [float(t) for t in tfs_text.split(",")] if tfs_text else [1.0] * len(docs)
        if len(tfs) != len(docs):
            raise ValueError(f"term {term!r}: {len(docs)} postings, {len(tfs)} frequencies")
        dict.__setitem__(docs_map, term, docs)
        dict.__setitem__(tfs_map, term, tfs)

    docs_map: _Lines[list[int]] = _Lines(pending, load_term, postings)
    tfs_map: _Lines[list[float]] = _Lines(pending, load_term, postings)

    idents = _words(state["idents"])
    ident_lines = _split(state["ident_postings"], len(idents))

    def load_ident(ident: str, line: int) -> None:
        dict.__setitem__(ident_map, ident, [int(d) for d in ident_lines[line].split(",")])

    ident_pending = dict(zip(idents, range(len(idents)), strict=True))
    ident_map: _Lines[list[int]] = _Lines(ident_pending, load_ident, ident_lines)
    lengths = [float(x) for x in state["lengths"]]
    weights = [float(x) for x in state["weights"]]
    if not len(lengths) == len(weights) == n:
        raise ValueError(f"an index of {len(lengths)} pages for {n} pages")
    return IndexColumns(
        docs=docs_map,
        tfs=tfs_map,
        doc_tf=LazyRows(_split(state["doc_tf"], n), _parse_tf),
        lengths=lengths,
        total_length=float(state["total_length"]),
        identifiers=ident_map,
        doc_identifiers=LazyRows(_split(state["doc_idents"], n), _words),
        weights=weights,
    )


def _words(text: str) -> list[str]:
    return text.split(" ") if text else []


def _split(text: str, n: int) -> list[str]:
    lines = text.split("\n") if n else []
    if len(lines) != n:
        raise ValueError(f"{len(lines)} lines for {n} rows")
    return lines


def _parse_tf(row: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in _words(row):
        term, _, n = item.partition(":")
        out[term] = float(n) if n else 1.0
    return out
