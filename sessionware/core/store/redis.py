"""Redis storage: sessions shared by many processes and hosts.

Layout under a key prefix (default ``sessionware``)::

    {p}:s:{id}        hash  header, parent_id, created_at, updated_at, last_seq, totals
    {p}:e:{id}        list  event JSON, index i holds seq i + 1
    {p}:pg:{id}       hash  page id -> page JSON
    {p}:index         zset  session id scored by creation time
    {p}:kids:{id}     zset  child ids scored by creation time

Appends are optimistic transactions (``WATCH`` the session hash, check ``last_seq``,
fold totals, ``MULTI`` push + update), so concurrent writers never interleave a log.
Requires the ``redis`` extra.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sessionware.core.errors import SessionAlreadyExists, SessionNotFound, StorageError
from sessionware.core.session.models import Session, SessionEvent, SessionInfo, SessionTotals
from sessionware.core.store.base import (
    AppendEvents,
    CreateSession,
    DeleteSession,
    PutPages,
    SaveHeader,
    WriteOp,
    event_body,
)

__all__ = ["RedisBackend"]

_HEADER_EXCLUDE = {"totals", "last_seq", "id", "parent_id", "created_at", "updated_at"}
_MAX_WATCH_RETRIES = 50


class RedisBackend:
    """Sessions in Redis. ``url`` is any URL ``redis.Redis.from_url`` accepts."""

    def __init__(self, url: str, *, prefix: str = "sessionware", client: Any = None) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise StorageError(
                "open", "redis", url, "the redis package is missing: pip install 'sessionware[redis]'"
            ) from exc
        self._redis = redis
        self.url = url
        self.prefix = prefix
        self._client: Any = client if client is not None else redis.Redis.from_url(url, decode_responses=True)

    @property
    def kind(self) -> str:
        return "redis"

    @property
    def location(self) -> str:
        return self.url

    @property
    def blocking(self) -> bool:
        return True

    def _k(self, kind: str, session_id: str = "") -> str:
        return f"{self.prefix}:{kind}:{session_id}" if session_id else f"{self.prefix}:{kind}"

    def _error(self, operation: str, exc: Exception) -> StorageError:
        retryable = isinstance(exc, (self._redis.ConnectionError, self._redis.TimeoutError))
        return StorageError(
            operation, self.kind, self.url, f"{type(exc).__name__}: {exc}", retryable=retryable
        )

    def write(self, ops: Sequence[WriteOp]) -> None:
        # Redis has no multi-key rollback across our optimistic steps; each op is atomic.
        for op in ops:
            try:
                self._apply(op)
            except self._redis.RedisError as exc:
                raise self._error("write", exc) from exc

    def _apply(self, op: WriteOp) -> None:
        if isinstance(op, CreateSession):
            self._create(op.info)
        elif isinstance(op, SaveHeader):
            key = self._k("s", op.info.id)
            if not self._client.exists(key):
                raise SessionNotFound(op.info.id, store=self.url)
            self._client.hset(
                key,
                mapping={
                    "header": op.info.model_dump_json(exclude=_HEADER_EXCLUDE),
                    "parent_id": op.info.parent_id or "",
                    "updated_at": op.info.updated_at.isoformat(),
                },
            )
        elif isinstance(op, AppendEvents):
            self._append(op.session_id, op.events)
        elif isinstance(op, PutPages):
            if not self._client.exists(self._k("s", op.session_id)):
                raise SessionNotFound(op.session_id, store=self.url)
            if op.pages:
                self._client.hset(self._k("pg", op.session_id), mapping=dict(op.pages))
        elif isinstance(op, DeleteSession):
            self._delete(op.session_id)

    def _create(self, info: SessionInfo) -> None:
        key = self._k("s", info.id)
        created = self._client.hsetnx(key, "created_at", info.created_at.isoformat())
        if not created:
            raise SessionAlreadyExists(info.id, store=self.url)
        score = info.created_at.timestamp()
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(
            key,
            mapping={
                "header": info.model_dump_json(exclude=_HEADER_EXCLUDE),
                "parent_id": info.parent_id or "",
                "updated_at": info.updated_at.isoformat(),
                "last_seq": 0,
                "totals": SessionTotals().model_dump_json(),
            },
        )
        pipe.zadd(self._k("index"), {info.id: score})
        if info.parent_id:
            pipe.zadd(self._k("kids", info.parent_id), {info.id: score})
        pipe.execute()

    def _append(self, session_id: str, events: Sequence[SessionEvent]) -> None:
        if not events:
            return
        key = self._k("s", session_id)
        bodies = [event_body(e) for e in events]
        for _ in range(_MAX_WATCH_RETRIES):
            with self._client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    last_seq, totals_json = pipe.hmget(key, "last_seq", "totals")
                    if last_seq is None:
                        raise SessionNotFound(session_id, store=self.url)
                    if events[0].seq != int(last_seq) + 1:
                        raise StorageError(
                            "append",
                            self.kind,
                            self.url,
                            f"session {session_id!r} expects seq {int(last_seq) + 1}, got {events[0].seq}",
                        )
                    totals = SessionTotals.model_validate_json(totals_json)
                    for event in events:
                        totals.fold(event)
                    pipe.multi()
                    pipe.rpush(self._k("e", session_id), *bodies)
                    pipe.hset(
                        key,
                        mapping={
                            "last_seq": events[-1].seq,
                            "updated_at": events[-1].timestamp.isoformat(),
                            "totals": totals.model_dump_json(),
                        },
                    )
                    pipe.execute()
                    return
                except self._redis.WatchError:
                    continue
        raise StorageError(
            "append", self.kind, self.url, "too much contention on the session", retryable=True
        )

    def _delete(self, session_id: str) -> None:
        key = self._k("s", session_id)
        parent = self._client.hget(key, "parent_id")
        if parent is None:
            raise SessionNotFound(session_id, store=self.url)
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(key, self._k("e", session_id), self._k("pg", session_id), self._k("kids", session_id))
        pipe.zrem(self._k("index"), session_id)
        if parent:
            pipe.zrem(self._k("kids", parent), session_id)
        pipe.execute()

    # -- reads ----------------------------------------------------------------------

    def _info_from(self, session_id: str, row: dict[str, str]) -> SessionInfo:
        return SessionInfo(
            **json.loads(row["header"]),
            id=session_id,
            parent_id=row.get("parent_id") or None,
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
            last_seq=int(row["last_seq"]),
            totals=SessionTotals.model_validate_json(row["totals"]),
        )

    def _read(self, operation: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._redis.RedisError as exc:
            raise self._error(operation, exc) from exc

    def load_info(self, session_id: str) -> SessionInfo:
        row = self._read("load", self._client.hgetall, self._k("s", session_id))
        if not row or "header" not in row:
            raise SessionNotFound(session_id, store=self.url)
        return self._info_from(session_id, row)

    def load_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        bodies = self._read("load", self._client.lrange, self._k("e", session_id), after_seq, -1)
        if not bodies:
            self._require(session_id)
        return [SessionEvent.model_validate_json(b) for b in bodies]

    def load(self, session_id: str) -> Session:
        info = self.load_info(session_id)
        children = self._read("load", self._client.zrange, self._k("kids", session_id), 0, -1)
        return Session(**info.__dict__, children=list(children), events=self.load_events(session_id))

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

    def load_pages(self, session_id: str) -> dict[str, str]:
        pages = dict(self._read("load_pages", self._client.hgetall, self._k("pg", session_id)))
        if not pages:
            self._require(session_id)
        return pages

    def _require(self, session_id: str) -> None:
        if not self.exists(session_id):
            raise SessionNotFound(session_id, store=self.url)

    def close(self) -> None:
        self._client.close()
