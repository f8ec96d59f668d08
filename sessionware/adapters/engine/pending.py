"""Observe-mode calls recorded without working out their session on the app's path.

A plain (not streamed) call of a client without hooks needs nothing from its session
before it is sent, so the funnel only captures it: the body the SDK built, the scope it
was made in, its timings, and what came back (``PendingCall``). The store queues it
(``DeferralBarrier.defer_unresolved``) and the recorder thread resolves it in order: it reads the
request, finds or opens the session (``InterceptedCall.open``), and defers the record
there as a fully intercepted call would.

Nothing reads a session before the calls made earlier are in it: every read of the
store or of one of its live sessions resolves the queue first, and so does every call
that opens its session on the app's path (streams, managed mode). ``current_session()``
after such a call resolves it too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sessionware.adapters.engine import background, guard
from sessionware.adapters.engine.config import WrapConfig
from sessionware.adapters.engine.observed import ObservedCall
from sessionware.adapters.engine.types import Endpoint
from sessionware.adapters.otel.trace import CallTrace, capture
from sessionware.adapters.scope import SessionHandle, SessionScope, handle_of, note_pending
from sessionware.core.session.state import SessionState
from sessionware.core.store.store import Store

__all__ = ["PendingCall", "SessionLater"]


class SessionLater:
    """The session of a captured call, once its store's queue has worked it out (what
    ``current_session()`` returns for such a call)."""

    __slots__ = ("state", "store")

    def __init__(self, store: Store) -> None:
        self.store = store
        self.state: SessionState | None = None

    def queue(self, work: Callable[[], None], scope: SessionScope | None) -> None:
        """Queue ``work`` (which sets ``state``) on the store's resolution queue, and note
        this as the context's last call (``current_session()``)."""
        if scope is not None:
            scope.handle.bind(self.store)
        if self.store.barrier.defer_unresolved(work):
            background.schedule_resolution(self.store)
        note_pending(self)

    def handle(self) -> SessionHandle | None:
        if self.state is None:
            self.store.barrier.resolve()
        state = self.state
        return handle_of(state) if state is not None else None


class PendingCall(SessionLater):
    """One captured call: what recording it needs, nothing worked out yet."""

    __slots__ = ("config", "ended", "endpoint", "error", "options", "result", "scope", "started", "trace")

    def __init__(
        self, config: WrapConfig, endpoint: Endpoint, options: Any, scope: SessionScope | None, store: Store
    ) -> None:
        super().__init__(store)
        self.config = config
        self.endpoint = endpoint
        self.options = options
        self.scope = scope
        self.result: Any = None
        self.error: BaseException | None = None
        self.ended = 0.0
        self.started = time.perf_counter()
        otel = config.otel_settings()
        # The OpenTelemetry context is the app's, read here on its path.
        self.trace: CallTrace | None = capture(otel, inside=config.otel_inside) if otel is not None else None

    def finish(self, result: Any, error: BaseException | None) -> None:
        """The call returned ``result`` or raised ``error``: queue its recording."""
        self.ended = time.perf_counter()
        self.result = result
        self.error = error
        try:
            self.queue(self.resolve, self.scope)
        except Exception as exc:
            guard.report("a call", exc)

    def resolve(self) -> None:
        """Read the request, open the session, defer the record there (in the store's
        ``resolve``, in call order)."""
        result, error = self.result, self.error
        self.result = self.error = None
        try:
            request = self.endpoint.read_request(self.options.json_data)
            call = ObservedCall(
                self.config,
                self.endpoint,
                self.options,
                request,
                stream=False,
                is_async=False,
                caller_scope=self.scope,
            )
            call.started = call.round_started = self.started
            call.trace = self.trace
            if not call.open():
                return
            self.state = call.state
            call.defer_outcome(result, error, self.ended)
        except Exception as exc:
            guard.report("a call", exc)
