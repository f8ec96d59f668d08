"""The app's arguments as managed mode reads them at the SDK's resource method.

The SDKs turn an app's arguments into a JSON body before the request funnel sees them:
``openai`` transforms every message against its TypedDict annotations in the resource
method, ``anthropic`` copies the whole tree in ``request``. For an app re-sending 20,000
messages that is nearly all of a call's time, spent on a history managed mode then
replaces with a few thousand tokens. So managed mode reads the arguments first
(``read_arguments``), builds what to send, and hands the SDK only that
(``sent_arguments``).

Reading first means reading what the SDK has not read yet, so the rule is that of
issue 20: **an iterable is read exactly once, and what was read is what gets used.**

* The conversation arguments (``messages``, ``input``, ``system``, ``tools``,
  ``functions``) are read into lists here, once; those lists are what the SDK receives,
  whether the call is managed or passed through, so a generator the app passed is never
  asked for its items twice.
* Inside them, messages are read through ``engine.messages.plain`` inside a
  ``reading_once`` block: a nested one-shot iterable (a generator of content parts) is
  listed the first time and that list is used by every later read. A call passed
  through after such a read sends the plain copy of what was read.
* Everything else (``extra_headers``, ``timeout``, ``response_format``...) is passed on
  untouched, and ``extra_body`` is merged only for reading: when it carries conversation
  fields itself, the call is not taken early (the funnel then manages it, as before).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sessionware.adapters.engine.call import RAW_RESPONSE_HEADER
from sessionware.adapters.engine.messages import plain
from sessionware.adapters.engine.types import EndpointKind

__all__ = ["Arguments", "given", "passed_through", "read_arguments", "sent_arguments"]

# SDK-only keyword arguments: options of the request, never part of the body.
_SDK_ONLY = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
# Arguments read into lists once (the app may pass any iterable).
_READ_ONCE: dict[EndpointKind, tuple[str, ...]] = {
    EndpointKind.CHAT: ("messages", "tools", "functions"),
    EndpointKind.RESPONSES: ("input", "tools"),
    EndpointKind.MESSAGES: ("messages", "system", "tools"),
}
# Arguments a built context replaces.
_WRITTEN: dict[EndpointKind, tuple[str, ...]] = {
    EndpointKind.CHAT: ("messages",),
    EndpointKind.RESPONSES: ("input", "instructions"),
    EndpointKind.MESSAGES: ("messages", "system"),
}
# Fields that, in ``extra_body``, would change what managed mode reads.
_READ_FIELDS = frozenset(
    {"messages", "input", "instructions", "system", "tools", "functions", "model", "stream"}
    | {"previous_response_id", "conversation", "n"}
)
_SENTINELS = frozenset({"NotGiven", "Omit"})


def given(value: Any) -> bool:
    """False for the SDKs' ``NOT_GIVEN`` / ``omit`` sentinels (whose class names they share)."""
    return value.__class__.__name__ not in _SENTINELS


def _listed(value: Any) -> Any:
    if isinstance(value, str | bytes | dict | list) or not isinstance(value, Iterable):
        return value
    if hasattr(value, "model_dump"):  # a pydantic model is iterable, and one value
        return value
    return list(value)


@dataclass(slots=True)
class Arguments:
    """The app's arguments, read: ``params`` to pass on, ``body`` to read."""

    params: dict[str, Any]
    """The arguments as given, with the conversation arguments read into lists (what the
    SDK gets when the call is passed through)."""
    body: dict[str, Any]
    """What the request body will hold: the given arguments (and ``extra_body``'s fields),
    read as the funnel reads bodies. Messages are the app's objects: read them with
    ``plain``."""
    raw: str | None
    """``with_raw_response`` / ``with_streaming_response`` (their header's value)."""
    stream: bool
    early: bool
    """False when the call cannot be taken early (``extra_body`` sets conversation fields)."""


def read_arguments(
    kind: EndpointKind,
    params: Mapping[str, Any],
    *,
    headers: Any = None,
    extra_body: Any = None,
    stream: bool | None = None,
) -> Arguments:
    """Read ``params`` (a resource method's keyword arguments, or the raw body a resource
    hands ``_post``); ``headers``/``extra_body`` default to the SDK-only arguments in them."""
    read = dict(params)
    for name in _READ_ONCE[kind]:
        value = read.get(name)
        if value is not None and given(value):
            read[name] = _listed(value)
    if headers is None:
        headers = read.get("extra_headers")
    if extra_body is None:
        extra_body = read.get("extra_body")
    body = {k: v for k, v in read.items() if k not in _SDK_ONLY and given(v)}
    early = True
    if isinstance(extra_body, Mapping) and extra_body:
        early = not any(k in _READ_FIELDS for k in extra_body)
        body.update(extra_body)
    if stream is None:
        stream = body.get("stream") is True
    raw = headers.get(RAW_RESPONSE_HEADER) if isinstance(headers, Mapping) else None
    return Arguments(read, body, raw if isinstance(raw, str) else None, bool(stream), early)


def sent_arguments(kind: EndpointKind, params: Mapping[str, Any], wire: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the conversation arguments of ``wire`` (a built body) in place of
    the app's; the app's ``tools`` stay (the funnel adds the memory tools to the body the
    SDK prepared, past helpers such as ``parse()`` that check tools)."""
    out = dict(params)
    for name in _WRITTEN[kind]:
        if name in wire:
            out[name] = wire[name]
        else:
            out.pop(name, None)
    return out


def passed_through(params: dict[str, Any], kind: EndpointKind, memo: Mapping[int, Any]) -> dict[str, Any]:
    """``params`` to pass through after a read: when nested one-shot iterables were read
    (``memo`` holds them), the conversation arguments as read (plain), else as given."""
    if not memo:
        return params
    out = dict(params)
    for name in _READ_ONCE[kind]:
        value = out.get(name)
        if isinstance(value, list):
            out[name] = plain(value)
    return out
