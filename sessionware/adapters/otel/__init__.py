"""OpenTelemetry export of recorded calls, after the GenAI semantic conventions.

Opt-in: ``sessionware.wrap(client, otel=True)``, ``sessionware.instrument(otel=True)``,
``sessionware run --otel`` or ``sessionware.configure(otel=True)`` (every client that did
not choose). Spans go to the tracer provider the app configured the usual way; only
``opentelemetry-api`` is needed here (``pip install sessionware[otel]``), imported on the
first traced call. ``OtelSettings(capture_content=True)`` adds the messages.
"""

from __future__ import annotations

from sessionware.adapters.otel.spans import SCHEMA_URL, SEMCONV_VERSION
from sessionware.adapters.otel.trace import CallTrace, capture, emit_call, emit_recorded
from sessionware.core.telemetry import OtelSettings, otel_settings

__all__ = [
    "SCHEMA_URL",
    "SEMCONV_VERSION",
    "CallTrace",
    "OtelSettings",
    "capture",
    "emit_call",
    "emit_recorded",
    "otel_settings",
]
