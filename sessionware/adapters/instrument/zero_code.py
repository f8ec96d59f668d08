"""Zero-code mode: ``instrument()`` configured from the environment at interpreter start.

``sessionware run -- python app.py`` puts ``sessionware/_bootstrap`` first on
``PYTHONPATH``; Python then imports its ``sitecustomize`` before the program, which
calls ``start()`` here. Settings come from environment variables (the ``run`` command
sets them from its options):

==========================  ========================================================
``SESSIONWARE_STORE``       where to record (default: ``sqlite:///./sessionware.db``;
                            a relative SQLite path is made absolute at start)
``SESSIONWARE_SESSION``     record every call into this one session
``SESSIONWARE_MODE``        ``observe`` (default) or ``managed``
``SESSIONWARE_BUDGET``      managed mode's input token budget
``SESSIONWARE_PROVIDERS``   comma-separated subset of ``openai,anthropic,litellm``
``SESSIONWARE_PROPAGATE``   ``1``: child Python processes are instrumented too
``SESSIONWARE_OTEL``        ``1``: calls are also exported as OpenTelemetry spans (the
                            program configures its tracer provider, e.g. with
                            ``opentelemetry-instrument``)
``SESSIONWARE_DISABLED``    ``1``: the kill switch, nothing is patched or recorded
==========================  ========================================================

Importing this module loads only the standard library and ``instrument``'s light
part, so a program that never calls an LLM starts almost as fast as without it.

>>> settings = ZeroCodeSettings.from_environ({"SESSIONWARE_STORE": "memory://"}, cwd="/srv")
>>> settings.store, settings.mode
('memory://', 'observe')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import NamedTuple

from sessionware.adapters.instrument.instrumentor import check_mode, instrument
from sessionware.core.errors import InvalidSessionOperation

__all__ = [
    "BUDGET_ENV",
    "DISABLED_ENV",
    "MODE_ENV",
    "PROPAGATE_ENV",
    "OTEL_ENV",
    "PROVIDERS_ENV",
    "SESSION_ENV",
    "STORE_ENV",
    "ZeroCodeSettings",
    "is_true",
    "start",
]

# The same variable and default file as the ``sessionware`` command (a test keeps them
# equal; ``sessionware.cli`` is not imported here because it costs start-up time).
STORE_ENV = "SESSIONWARE_STORE"
DEFAULT_STORE_URL = "sqlite:///./sessionware.db"
SESSION_ENV = "SESSIONWARE_SESSION"
MODE_ENV = "SESSIONWARE_MODE"
BUDGET_ENV = "SESSIONWARE_BUDGET"
PROVIDERS_ENV = "SESSIONWARE_PROVIDERS"
PROPAGATE_ENV = "SESSIONWARE_PROPAGATE"
OTEL_ENV = "SESSIONWARE_OTEL"
DISABLED_ENV = "SESSIONWARE_DISABLED"

_SQLITE = "sqlite:///"


def is_true(value: str | None) -> bool:
    """Whether an environment flag is set (``1``, ``true``, ``yes``, ``on``)."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def absolute_store(url: str, cwd: str) -> str:
    """``url`` with a relative SQLite path made absolute against ``cwd``.

    >>> absolute_store("sqlite:///./sessionware.db", "/srv/app")
    'sqlite:////srv/app/sessionware.db'
    """
    if url.startswith(_SQLITE):
        path = url[len(_SQLITE) :]
        if path and not os.path.isabs(os.path.expanduser(path)):
            return _SQLITE + os.path.normpath(os.path.join(cwd, path))
    elif url.endswith((".db", ".sqlite", ".sqlite3")) and "://" not in url and not os.path.isabs(url):
        return os.path.normpath(os.path.join(cwd, url))
    return url


class ZeroCodeSettings(NamedTuple):
    """Zero-code settings, read from environment variables and checked."""

    store: str
    session_id: str | None = None
    mode: str = "observe"
    budget: int | None = None
    providers: tuple[str, ...] | None = None
    propagate: bool = False
    otel: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, cwd: str) -> ZeroCodeSettings:
        """The settings in ``environ``; ``InvalidSessionOperation`` names a bad value."""
        budget_text = (environ.get(BUDGET_ENV) or "").strip()
        budget: int | None = None
        if budget_text:
            try:
                budget = int(budget_text)
            except ValueError:
                raise InvalidSessionOperation(
                    "zero-code", f"{BUDGET_ENV} must be a whole number of tokens, got {budget_text!r}"
                ) from None
        mode = (environ.get(MODE_ENV) or "observe").strip().lower()
        check_mode(mode, budget, operation="zero-code")
        providers_text = (environ.get(PROVIDERS_ENV) or "").strip()
        providers = tuple(p.strip() for p in providers_text.split(",") if p.strip()) or None
        return cls(
            store=absolute_store(environ.get(STORE_ENV) or DEFAULT_STORE_URL, cwd),
            session_id=(environ.get(SESSION_ENV) or "").strip() or None,
            mode=mode,
            budget=budget,
            providers=providers,
            propagate=is_true(environ.get(PROPAGATE_ENV)),
            otel=is_true(environ.get(OTEL_ENV)),
        )


def _show_start_up_problems() -> None:
    """Under ``sessionware run``, a problem met when an SDK loads (an unknown store) is the
    run's one warning line on stderr. Only instrumentation says so there: the library's
    other messages (a store outage) stay with the app's logging, as in any app."""
    import logging
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("sessionware.adapters.instrument.instrumentor").addHandler(handler)


def start(environ: MutableMapping[str, str] | None = None) -> bool:
    """Instrument this interpreter from ``environ``; False when the kill switch is on.

    Errors (a bad setting, an unknown store) are raised for the caller, the bootstrap,
    to report in one line.
    """
    env = os.environ if environ is None else environ
    if is_true(env.get(DISABLED_ENV)):
        return False
    settings = ZeroCodeSettings.from_environ(env, cwd=os.getcwd())
    if settings.propagate:
        # Children may start elsewhere: they must find the same file.
        env[STORE_ENV] = settings.store
    _show_start_up_problems()
    instrument(
        store=settings.store,
        session_id=settings.session_id,
        mode=settings.mode,
        budget=settings.budget,
        providers=settings.providers,
        otel=settings.otel or None,
    )
    return True
