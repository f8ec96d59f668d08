"""The storage contract: ``SessionStore``, and the write operations it applies.

A session is an append-only log of events plus a header (metadata, system prompt, runs,
parent) and totals folded from the log. Any number of processes and hosts may write one
session at once: the **store** decides the order of its log, not the writers.

The contract every backend keeps (a new backend joins the contract test suite,
``tests/core/store/test_store_contract.py``, by adding one fixture):

* **The store numbers events at commit.** ``AppendEvents`` carries events in the order
  their writer made them; the ``seq`` they carry is the writer's provisional guess and is
  ignored. Inside the commit, atomically with respect to every other writer, each new
  event gets the session's next ``seq`` (1, 2, 3... without gaps) and is stored with it.
  The events of one append keep their relative order and stay contiguous; appends of
  other writers land before or after them, never inside. Writers never coordinate.
* **Appends are idempotent by event id.** An event whose ``id`` the session already holds
  is skipped (it keeps its ``seq``), so a batch replayed after a fault (a connection
  lost after the server applied it) neither duplicates an event nor fails. Ids are unique
  per session; ``sessionware.core.session.ids`` makes them unique everywhere.
* **Writes are batches.** ``write(ops)`` applies ops in order and returns a
  ``WriteReceipt``. A batch is atomic where the backend can make it so (SQLite: one
  transaction; Redis: one server-side script); where it cannot, every op is atomic and
  replaying the batch is safe (appends skip known ids, creates and deletes are made
  non-exclusive on replay by the ``Store``, headers and pages are upserts).
* **Every event is storable.** A backend that serialises events repairs text it cannot
  encode (lone surrogates) as JSON encoders do, with U+FFFD, lists the fields it repaired
  on the stored event (``SessionEvent.repaired``) and in the receipt, and stores it: an
  event is never refused for its content, so it never blocks the ones after it.
* **Outages are retryable.** A failure that may pass (server unreachable, file locked)
  raises ``StorageError(retryable=True)``; the ``Store`` keeps the batch and retries it
  in order. A backend whose data vanished under it (a Redis restarted empty) raises
  ``StorageError(data_lost=True)`` without writing, so the ``Store`` can write again
  what its process still holds before retrying. Anything else raises ``SessionNotFound``,
  ``SessionAlreadyExists`` or a non-retryable ``StorageError``: never a backend's own
  exception type.
* **Reads see committed data only**, each read consistent in itself: ``read_since``
  returns a header and the events after a ``seq`` from one snapshot.

Checkpoints (derived state such as the virtual memory's pages index, written off the
app's path and keyed by the last ``seq`` they cover) will be a further op and read here;
pages (``PutPages`` / ``load_pages``) are the nearest thing today.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from itertools import chain, groupby
from typing import TYPE_CHECKING, NamedTuple, Protocol, cast, runtime_checkable

from sessionware.core.gc_pause import paused
from sessionware.core.session.models import Session, SessionEvent, SessionInfo
from sessionware.core.session.storable import RepairedEvent, storable_event, storable_model

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = [
    "AppendEvents",
    "CreateSession",
    "DataLossCheck",
    "DeleteSession",
    "PutPages",
    "RepairedEvent",
    "SaveHeader",
    "SessionStore",
    "SessionVersion",
    "StoreBackend",
    "WriteOp",
    "WriteReceipt",
    "coalesce_appends",
    "event_bodies",
    "event_body",
    "header_json",
    "parse_events",
    "storable_bodies",
]

_HEADER_EXCLUDE = {"totals", "last_seq", "id", "parent_id", "created_at", "updated_at"}


@dataclass(frozen=True, slots=True)
class CreateSession:
    """Create a session.

    ``exclusive``: fail with ``SessionAlreadyExists`` if the id exists. Otherwise an
    existing session is left as it is (its header kept): "open or create", which is what
    several writers that each start the same session need.
    """

    info: SessionInfo
    exclusive: bool = True


@dataclass(frozen=True, slots=True)
class SaveHeader:
    """Replace a session's header fields (metadata, system prompt, runs, parent).

    Totals and ``last_seq`` are ignored: the backend derives them from appended events.
    """

    info: SessionInfo


class AppendEvents(NamedTuple):
    """Append events to a session's log; the store numbers them (see the module's contract).

    A named tuple rather than a frozen dataclass like the other operations: one is built
    per recorded event, and a tuple is built in half the time.
    """

    session_id: str
    events: tuple[SessionEvent, ...]


@dataclass(frozen=True, slots=True)
class PutPages:
    """Upsert memory pages of a session, each a JSON document keyed by page id."""

    session_id: str
    pages: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class DeleteSession:
    """Delete a session with its events and pages; ``must_exist=False``: a no-op if absent."""

    session_id: str
    must_exist: bool = True


WriteOp = CreateSession | SaveHeader | AppendEvents | PutPages | DeleteSession


class WriteReceipt:
    """What a committed batch did. (A plain class allocating only what it must: one is
    built per write, often per recorded event.)"""

    __slots__ = ("appended", "duplicates", "last_seqs", "repaired")

    def __init__(self) -> None:
        self.last_seqs: dict[str, int] = {}
        """For each session appended to: its last ``seq`` after the batch."""
        self.appended = 0
        """Events stored by this batch."""
        self.duplicates = 0
        """Events skipped because the session already held their id (a replay)."""
        self.repaired: Sequence[RepairedEvent] = ()
        """Events (or headers) stored with text repaired (see ``storable_event``)."""

    def note_repaired(self, notes: Iterable[RepairedEvent]) -> None:
        self.repaired = [*self.repaired, *notes]

    def __repr__(self) -> str:
        return (
            f"WriteReceipt(last_seqs={self.last_seqs}, appended={self.appended},"
            f" duplicates={self.duplicates}, repaired={self.repaired})"
        )


def event_body(event: SessionEvent, *, exclude_seq: bool = False) -> str:
    """An event as a backend stores it: JSON without the fields left at their defaults.

    A recorded message leaves most fields at their defaults (no tool call, no error, no
    usage), so this is about half the bytes of a full dump, and serialises in about half
    the time on the writer thread. ``SessionEvent.model_validate_json`` restores the
    defaults, and reads full dumps written before just the same. ``exclude_seq`` leaves
    the writer's provisional ``seq`` out, for a backend that adds the one it assigns.
    Raises ``ValueError`` for an event that cannot be encoded (see ``storable_bodies``).
    """
    exclude = {"seq"} if exclude_seq else None
    return event.model_dump_json(exclude_defaults=True, exclude=exclude)


def parse_events(bodies: Iterable[str | bytes]) -> list[SessionEvent]:
    """Stored event bodies (``event_body``) as events, in order. A long session's events
    are read with the garbage collector paused (``gc_pause``): about half the time."""
    with paused():
        return [SessionEvent.model_validate_json(body) for body in bodies]


def event_bodies(events: Sequence[SessionEvent], *, exclude_seq: bool = False) -> str:
    """``event_body`` of each event, as one JSON array serialised in one call."""
    adapter = _event_list()
    if exclude_seq:
        return adapter.dump_json(list(events), exclude_defaults=True, exclude={"__all__": {"seq"}}).decode()
    return adapter.dump_json(list(events), exclude_defaults=True).decode()


def storable_bodies(
    events: Sequence[SessionEvent], *, exclude_seq: bool = False
) -> tuple[Sequence[SessionEvent], str, list[RepairedEvent]]:
    """``events`` as one JSON array, every event made storable first.

    The fast path serialises the batch in one call; only a batch that fails (text that
    UTF-8 cannot encode) is taken event by event, each bad one repaired. Returns the
    events as stored (repaired ones replaced), their JSON array, and what was repaired.
    """
    try:
        return events, event_bodies(events, exclude_seq=exclude_seq), []
    except ValueError:  # pydantic-core's serialisation error is a ValueError
        pass
    stored: list[SessionEvent] = []
    repaired: list[RepairedEvent] = []
    for event in events:
        fixed, note = storable_event(event)
        stored.append(fixed)
        if note is not None:
            repaired.append(note)
    return stored, event_bodies(stored, exclude_seq=exclude_seq), repaired


def header_json(info: SessionInfo, receipt: WriteReceipt) -> str:
    """The header fields a backend stores as JSON (metadata, system prompt, runs), with
    unencodable text repaired and noted in ``receipt``."""
    try:
        return info.model_dump_json(exclude=_HEADER_EXCLUDE)
    except ValueError:
        fixed, notes = storable_model(info, "header")
        receipt.note_repaired([RepairedEvent(info.id, None, tuple(notes))])
        return fixed.model_dump_json(exclude=_HEADER_EXCLUDE)


@cache
def _event_list() -> TypeAdapter[list[SessionEvent]]:
    from pydantic import TypeAdapter  # built on the first write: import time

    return TypeAdapter(list[SessionEvent])


def coalesce_appends(ops: Sequence[WriteOp]) -> list[WriteOp]:
    """``ops`` with each run of consecutive appends to one session merged into one append.

    Recording submits one append per event; a backend that pays per append (a header
    read and rewrite) writes a batch of them as one.
    """
    merged: list[WriteOp] = []
    for _, group in groupby(ops, key=_append_run_key):
        run = list(group)
        if len(run) == 1:
            merged.append(run[0])
        else:  # only appends to one session share a key
            appends = cast(list[AppendEvents], run)
            events = tuple(chain.from_iterable(a.events for a in appends))
            merged.append(AppendEvents(appends[0].session_id, events))
    return merged


def _append_run_key(op: WriteOp) -> object:
    """Consecutive ops with equal keys merge: appends by session, anything else never."""
    return op.session_id if type(op) is AppendEvents else object()


class SessionVersion(NamedTuple):
    """What changes whenever a session does, as its header holds it: an append moves
    ``last_seq`` (and ``updated_at``), a header save sets ``updated_at`` to the time of
    the save, and a session deleted and made again has a new ``created_at``. A reader that
    keeps headers (``sessionware ui``) reads again only those whose version moved."""

    created_at: datetime
    updated_at: datetime
    last_seq: int

    @classmethod
    def of(cls, info: SessionInfo) -> SessionVersion:
        return cls(info.created_at, info.updated_at, info.last_seq)


@runtime_checkable
class DataLossCheck(Protocol):
    """A backend whose data can vanish under it (a Redis restarted empty or flushed) and
    that can tell without a write: the ``Store`` asks at a flush that had nothing to write
    and at close, so a process that holds sessions but writes no more still writes them
    again (see ``Writer``)."""

    def check_data(self) -> None:
        """``StorageError(data_lost=True)`` if the data this client wrote or read is gone
        (the backend then writes as into a new store); other ``StorageError``s as ``write``."""
        ...


@runtime_checkable
class SessionStore(Protocol):
    """A place sessions live, shared by every process and host that opens it.

    See the module docstring for the contract. Methods are plain blocking calls: the
    ``Store`` facade runs them on its writer thread when ``blocking`` is True and inline
    otherwise. Implementations raise ``sessionware`` errors only.
    """

    @property
    def kind(self) -> str:
        """Short backend name for messages: ``memory``, ``sqlite``, ``redis``."""
        ...

    @property
    def location(self) -> str:
        """Where the data lives (path, or URL without its password), for messages."""
        ...

    @property
    def blocking(self) -> bool:
        """True when calls do I/O and must run on the store's writer thread."""
        ...

    def write(self, ops: Sequence[WriteOp]) -> WriteReceipt:
        """Apply ``ops`` in order (see the contract); ``SessionNotFound`` for an op on a
        session that does not exist, ``SessionAlreadyExists`` for an exclusive create of
        one that does, ``StorageError`` (``retryable`` when it may pass; ``data_lost`` when
        the store's data vanished)."""
        ...

    def last_seq(self, session_id: str) -> int:
        """The session's committed log length; cheap, callable from any thread at any
        time (a live session asks it to learn whether other writers appended)."""
        ...

    def read_since(self, session_id: str, after_seq: int) -> tuple[SessionInfo, list[SessionEvent]]:
        """The header and totals, and the events after ``after_seq``, from one snapshot:
        the header's ``last_seq`` is the last returned event's (or ``after_seq``)."""
        ...

    def load(self, session_id: str) -> Session:
        """The session with its events and children."""
        ...

    def load_info(self, session_id: str) -> SessionInfo:
        """The header and totals without the events."""
        ...

    def load_events(self, session_id: str, after_seq: int = 0) -> list[SessionEvent]:
        """The events with ``seq > after_seq``, in order."""
        ...

    def exists(self, session_id: str) -> bool: ...

    def list_sessions(self, *, parent_id: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        """Sessions newest first, optionally only the children of ``parent_id``."""
        ...

    def session_versions(self) -> dict[str, SessionVersion]:
        """Every session's ``SessionVersion`` (equal to ``SessionVersion.of`` its header
        read at the same moment), without reading headers or totals: a few columns or
        fields per session, so that what changed can be told apart from 10,000 sessions."""
        ...

    def load_pages(self, session_id: str) -> dict[str, str]: ...

    def close(self) -> None: ...


StoreBackend = SessionStore
"""The contract's former name, kept for one release."""
