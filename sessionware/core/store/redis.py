"""Redis storage: sessions shared by many processes and hosts.

Layout under a key prefix (default ``sessionware``)::

    {p}:epoch         string  a token set by the first writer; gone if the data is gone
    {p}:s:{id}        hash    header, parent_id, created_at, updated_at, last_seq,
                              totals, folded (the last seq the totals include)
    {p}:e:{id}        list    event JSON, index i holds seq i + 1
    {p}:ids:{id}      hash    event id -> seq (appends are idempotent by id)
    {p}:pg:{id}       hash    page id -> page JSON
    {p}:index         zset    session id scored by creation time
    {p}:kids:{id}     zset    child ids scored by creation time

A write batch is one server-side script (``redis_script.lua``): it checks every op, then
applies them, numbering each new event with the session's next ``seq`` and skipping
ids already stored, atomically with respect to every other client. It first compares
the server's epoch with the one this client started from: a server restarted without
its data (or flushed) has none, and the batch is refused with ``StorageError(data_lost=True)`` before
anything is written, so the ``Store`` can write its live sessions again first. A process
that holds sessions but has nothing left to write learns it too: ``check_data`` (the
``Store`` asks at a flush with nothing to write, and at close) and reads of a session
(``read_since`` in the same transaction, ``last_seq`` when the session is gone) compare
the epoch as well. Only the writes and ``check_data``, both on the ``Store``'s writer thread, take
up the server's new epoch: a read that adopted it would let the next write through
before the process wrote again what it holds.

Totals are folded from the log by readers, not writers: a header carries the totals of
its events up to ``folded``, and a read that finds more events folds them and writes
the result back (compare-and-set), so writers pay one round trip per batch and never
contend on a header. Requires the ``redis`` extra; Redis Cluster is not supported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from sessionware.core.errors import (
    InvalidSessionOperation,
    SessionAlreadyExists,
    SessionNotFound,
    StorageError,
)
from sessionware.core.session.models import Session, SessionEvent, SessionInfo, SessionTotals
from sessionware.core.session.storable import RepairedEvent, storable_event
from sessionware.core.store.base import (
    AppendEvents,
    CreateSession,
    DeleteSession,
    PutPages,
    SaveHeader,
    SessionVersion,
    WriteOp,
    WriteReceipt,
    event_body,
    header_json,
    parse_events,
)
from sessionware.core.store.locks import poll

__all__ = ["RedisBackend", "redacted_url"]

# A session lock released only by the holder whose token it still carries.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# How long a session lock outlives a holder that died (longer than any holder keeps it).
_LOCK_LEASE_MS = 15_000

# Folded totals written back only if no other reader folded meanwhile.
_SAVE_FOLD = """
if redis.call('HGET', KEYS[1], 'folded') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'totals', ARGV[2], 'folded', ARGV[3])
end
return 1
"""


@cache
def _batch_script() -> str:
    return resources.files("sessionware.core.store").joinpath("redis_script.lua").read_text("utf-8")


def redacted_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and ``location``)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split("@", 1)[-1] if "@" in url else url
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _checked_url(url: str) -> str:
    """``url`` if ``redis.Redis.from_url`` can use it; ``InvalidSessionOperation`` naming it otherwise."""
    shown = redacted_url(url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises here
    except ValueError as exc:
        raise InvalidSessionOperation("open_store", f"malformed Redis URL {shown!r}: {exc}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise InvalidSessionOperation("open_store", f"not a Redis URL: {shown!r}")
    if parts.scheme == "unix":
        if not parts.path.strip("/"):
            raise InvalidSessionOperation(
                "open_store", f"malformed Redis URL {shown!r}: a unix:// URL needs the socket's path"
            )
    else:
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise InvalidSessionOperation(
                "open_store", f"malformed Redis URL {shown!r}: the database must be a number, got {db!r}"
            )
    return url


class RedisBackend:
    """Sessions in Redis. ``url`` is any URL ``redis.Redis.from_url`` accepts."""

    def __init__(self, url: str, *, prefix: str = "sessionware", client: Any = None) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise StorageError(
                "open",
                "redis",
                redacted_url(url),
                "the redis package is missing: pip install 'sessionware[redis]'",
            ) from exc
        self._redis = redis
        self.url = url
        self.prefix = prefix
        self._location = redacted_url(url)
        if client is None:
            try:
                client = redis.Redis.from_url(_checked_url(url), decode_responses=True)
            except ValueError as exc:
                raise InvalidSessionOperation(
                    "open_store", f"malformed Redis URL {self._location!r}: {exc}"
                ) from None
        self._client: Any = client
        self._epoch: str | None = None
        self._script: Any = None
        self._save_fold: Any = None
        self._unlock: Any = None

    @property
    def kind(self) -> str:
        return "redis"

    @property
    def location(self) -> str:
        return self._location

    @property
    def blocking(self) -> bool:
        return True

    def _k(self, kind: str, session_id: str = "") -> str:
        return f"{self.prefix}:{kind}:{session_id}" if session_id else f"{self.prefix}:{kind}"

    def _error(self, operation: str, exc: Exception) -> StorageError:
        retryable = isinstance(exc, (self._redis.ConnectionError, self._redis.TimeoutError))
        return StorageError(
            operation, self.kind, self._location, f"{type(exc).__name__}: {exc}", retryable=retryable
        )

    # -- writes -----------------------------------------------------------------------

    def _start_epoch(self) -> str:
        """The epoch this client writes under: the server's, or a new one if it has none."""
        key = self._k("epoch")
        self._client.set(key, os.urandom(12).hex(), nx=True)
        epoch = self._client.get(key)
        self._epoch = str(epoch)
        return self._epoch

    def write(self, ops: Sequence[WriteOp]) -> WriteReceipt:
        receipt = WriteReceipt()
        if not ops:
            return receipt
        try:
            if self._script is None:
                self._script = self._client.register_script(_batch_script())
            epoch = self._epoch if self._epoch is not None else self._start_epoch()
            args = self._encode(ops, receipt)
            reply = self._script(args=[self.prefix, epoch, len(ops), *args])
        except self._redis.RedisError as exc:
            raise self._error("write", exc) from exc
        status = reply[0]
        if status == "reset":
            self._lost("write", reply[1] or None, adopt=True)
        if status == "exists":
            raise SessionAlreadyExists(reply[1], store=self._location)
        if status == "missing":
            raise SessionNotFound(reply[1], store=self._location)
        receipt.appended = int(reply[1])
        receipt.duplicates = int(reply[2])
        pairs = reply[3:]
        for sid, last in zip(pairs[::2], pairs[1::2], strict=True):
            receipt.last_seqs[sid] = int(last)
        return receipt

    def check_data(self) -> None:
        """``StorageError(data_lost=True)`` if the server lost the data this client wrote
        or read (its epoch changed); it then writes under the server's new epoch. For the
        ``Store``'s writer thread only (see the module docstring)."""
        if self._epoch is None:
            return
        try:
            found = self._client.get(self._k("epoch"))
        except self._redis.RedisError as exc:
            raise self._error("check", exc) from exc
        if found != self._epoch:
            self._lost("check", found, adopt=True)

    def _lost(self, operation: str, found: str | None, *, adopt: bool) -> NoReturn:
        """Raise ``StorageError(data_lost=True)``: the server's epoch is ``found``, not this
        client's. ``adopt``: write under the server's epoch from now on (starting one if
        it has none)."""
        if adopt:
            try:
                self._start_epoch()
            except self._redis.RedisError as exc:
                raise self._error(operation, exc) from exc
        raise StorageError(
            operation,
            self.kind,
            self._location,
            "the server has no sessionware data any more (restarted empty or flushed)"
            if found is None
            else "another client found the server's data gone and started over",
            retryable=True,
            data_lost=True,
        )

    def _seen_epoch(self, operation: str, found: str | None) -> None:
        """A read found the server's epoch ``found``: ``data_lost`` if this client wrote or
        read under another one (without adopting it); the first read sets it."""
        if self._epoch is None:
            if found is not None:
                self._epoch = found
        elif found != self._epoch:
            self._lost(operation, found, adopt=False)

    def _encode(self, ops: Sequence[WriteOp], receipt: WriteReceipt) -> list[Any]:
        repaired: list[RepairedEvent] = []
        args: list[Any] = []
        for op in ops:
            if type(op) is AppendEvents:
                args += (
                    "A",
                    op.session_id,
                    len(op.events),
                    op.events[-1].timestamp.isoformat() if op.events else "",
                )
                for event in op.events:
                    args += (event.id, self._body(event, repaired))
            elif isinstance(op, CreateSession):
                info = op.info
                args += (
                    "C",
                    info.id,
                    "1" if op.exclusive else "0",
                    header_json(info, receipt),
                    info.parent_id or "",
                    info.created_at.isoformat(),
                    info.updated_at.isoformat(),
                    info.created_at.timestamp(),
                    SessionTotals().model_dump_json(),
                )
            elif isinstance(op, SaveHeader):
                info = op.info
                args += (
                    "H",
                    info.id,
                    header_json(info, receipt),
                    info.parent_id or "",
                    info.updated_at.isoformat(),
                )
            elif isinstance(op, PutPages):
                args += ("P", op.session_id, len(op.pages))
                for page_id, body in op.pages.items():
                    args += (page_id, body)
            elif isinstance(op, DeleteSession):
                args += ("D", op.session_id, "1" if op.must_exist else "0")
        if repaired:
            receipt.note_repaired(repaired)
        return args

    @staticmethod
    def _body(event: SessionEvent, repaired: list[RepairedEvent]) -> str:
        try:
            return event_body(event, exclude_seq=True)
        except ValueError:  # unencodable text: stored repaired
            fixed, note = storable_event(event)
            if note is not None:
                repaired.append(note)
            return event_body(fixed, exclude_seq=True)

    # -- session locks (see ``core.store.locks``) --------------------------------------

    @contextmanager
    def lock_session(self, session_id: str, timeout: float) -> Iterator[bool]:
        """``SET NX PX`` under a token of this holder; released by a compare-and-delete."""
        key = self._k("lock", session_id)
        token = os.urandom(12).hex()
        try:
            if self._unlock is None:
                self._unlock = self._client.register_script(_UNLOCK)
            held = poll(lambda: bool(self._client.set(key, token, nx=True, px=_LOCK_LEASE_MS)), timeout)
        except (self._redis.RedisError, UnicodeError) as exc:
            raise self._error("lock", exc) from exc
        try:
            yield held
        finally:
            if held:
                with suppress(self._redis.RedisError):  # else the lease frees it
                    self._unlock(keys=[key], args=[token])

    # -- reads ----------------------------------------------------------------------

    def _read(self, operation: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._redis.RedisError as exc:
            raise self._error(operation, exc) from exc

    def _info_from(self, session_id: str, row: dict[str, str], events: list[SessionEvent]) -> SessionInfo:
        """The header of ``row``; ``events`` are the session's events from some seq on,
        used to fold what the stored totals do not include yet."""
        last_seq = int(row["last_seq"])
        folded = int(row.get("folded", last_seq))
        totals = SessionTotals.model_validate_json(row["totals"])
        if folded < last_seq:
            missing = [e for e in events if folded < e.seq <= last_seq]
            if not missing or missing[0].seq != folded + 1:
                missing = self._events_between(session_id, folded, last_seq)
            for event in missing:
                totals.fold(event)
            self._save_totals(session_id, folded, totals, last_seq)
        return SessionInfo(
            **json.loads(row["header"]),
            id=session_id,
            parent_id=row.get("parent_id") or None,
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
            last_seq=last_seq,
            totals=totals,
        )

    def _events_between(self, session_id: str, after: int, last: int) -> list[SessionEvent]:
        bodies = self._read("load", self._client.lrange, self._k("e", session_id), after, last - 1)
        return parse_events(bodies)

    def _save_totals(self, session_id: str, folded: int, totals: SessionTotals, last_seq: int) -> None:
        if self._save_fold is None:
            self._save_fold = self._client.register_script(_SAVE_FOLD)
        try:
            self._save_fold(
                keys=[self._k("s", session_id)], args=[folded, totals.model_dump_json(), last_seq]
            )
        except self._redis.RedisError:
            return  # a cache: the next reader folds again

    def load_info(self, session_id: str) -> SessionInfo:
        row = self._read("load", self._client.hgetall, self._k("s", session_id))
        if not row or "header" not in row:
            raise SessionNotFound(session_id, store=self._location)
        return self._info_from(session_id, row, [])

    def load_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        bodies = self._read("load", self._client.lrange, self._k("e", session_id), after_seq, -1)
        if not bodies:
            self._require(session_id)
        return parse_events(bodies)

    def last_seq(self, session_id: str) -> int:
        last = self._read("last_seq", self._client.hget, self._k("s", session_id), "last_seq")
        if last is None:
            if self._epoch is not None:  # gone, or never there: the server's data may be
                self._seen_epoch("last_seq", self._read("last_seq", self._client.get, self._k("epoch")))
            raise SessionNotFound(session_id, store=self._location)
        return int(last)

    def read_since(self, session_id: str, after_seq: int) -> tuple[SessionInfo, list[SessionEvent]]:
        def snapshot() -> list[Any]:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.hgetall(self._k("s", session_id))
                pipe.lrange(self._k("e", session_id), after_seq, -1)
                pipe.get(self._k("epoch"))
                return list(pipe.execute())

        row, bodies, epoch = self._read("load", snapshot)
        self._seen_epoch("load", epoch)
        if not row or "header" not in row:
            raise SessionNotFound(session_id, store=self._location)
        events = parse_events(bodies)
        return self._info_from(session_id, row, events), events

    def load(self, session_id: str) -> Session:
        info, events = self.read_since(session_id, 0)
        children = self._read("load", self._client.zrange, self._k("kids", session_id), 0, -1)
        return Session(**info.__dict__, children=list(children), events=events)

    def exists(self, session_id: str) -> bool:
        return bool(self._read("exists", self._client.exists, self._k("s", session_id)))

    def list_sessions(self, *, parent_id: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        key = self._k("kids", parent_id) if parent_id is not None else self._k("index")
        end = -1 if limit is None else limit - 1
        ids = self._read("list", self._client.zrevrange, key, 0, end)
        infos = []
        for sid in ids:
            try:
                infos.append(self.load_info(sid))
            except SessionNotFound:
                continue  # deleted between the two reads
        return infos

    def session_versions(self) -> dict[str, SessionVersion]:
        ids = self._read("list", self._client.zrange, self._k("index"), 0, -1)

        def fields() -> list[Any]:
            with self._client.pipeline(transaction=False) as pipe:
                for sid in ids:
                    pipe.hmget(self._k("s", sid), "created_at", "updated_at", "last_seq")
                return list(pipe.execute())

        parse = datetime.fromisoformat
        return {
            sid: SessionVersion(parse(created), parse(updated), int(last))
            for sid, (created, updated, last) in zip(ids, self._read("list", fields), strict=True)
            if last is not None  # deleted between the two reads
        }

    def load_pages(self, session_id: str) -> dict[str, str]:
        pages = dict(self._read("load_pages", self._client.hgetall, self._k("pg", session_id)))
        if not pages:
            self._require(session_id)
        return pages

    def _require(self, session_id: str) -> None:
        if not self.exists(session_id):
            raise SessionNotFound(session_id, store=self._location)

    def close(self) -> None:
        self._client.close()
