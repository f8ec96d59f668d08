"""Process-wide instrumentation: ``instrument()`` / ``uninstrument()`` and zero-code mode.

``instrumentor`` walks the provider table's patch targets (``adapters.providers``)
forwards to patch and what it patched backwards to restore;
``import_hooks`` patches SDKs imported later; ``class_hooks`` is the request-funnel hook
put on client classes; ``zero_code`` configures it all from the environment at
interpreter start. Importing this package imports the standard library only.
"""

from __future__ import annotations

from sessionware.adapters.instrument.instrumentor import (
    Instrumentor,
    check_mode,
    default_instrumentor,
    instrument,
    is_instrumented,
    uninstrument,
)

__all__ = [
    "Instrumentor",
    "check_mode",
    "default_instrumentor",
    "instrument",
    "is_instrumented",
    "uninstrument",
]
