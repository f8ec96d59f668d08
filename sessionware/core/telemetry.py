"""Settings of the OpenTelemetry export (the export itself is ``sessionware.adapters.otel``).

>>> otel_settings(True)
OtelSettings(capture_content=False, tracer_provider=None)
>>> otel_settings(False) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["OtelSettings", "otel_settings"]


@dataclass(frozen=True, slots=True)
class OtelSettings:
    """How calls are exported as OpenTelemetry spans.

    ``capture_content`` adds the messages (``gen_ai.input.messages`` and the like): off by
    default, as prompts often hold personal data. ``tracer_provider`` is an OpenTelemetry
    ``TracerProvider``; None uses the one the app set globally (``trace.set_tracer_provider``).
    """

    capture_content: bool = False
    tracer_provider: Any = None


def otel_settings(value: bool | OtelSettings | None) -> OtelSettings | None:
    """``otel=`` as given to ``wrap``/``instrument``/``configure``: True, False/None, or settings."""
    if isinstance(value, OtelSettings):
        return value
    return OtelSettings() if value else None
