"""The one provider table: every SDK the adapters know, and where its adapter is.

Each row names an SDK (its top-level module), the client classes ``wrap()`` accepts and
``instrument()`` patches, the client method every request goes through (the funnel),
the supported versions, and the adapter module in the provider's own folder, which
supplies the rest (``ProviderAdapter``: the ``ProviderSpec`` of a client, and the two
steps of a summary call). ``api.wrap`` finds a client's row by its class,
``instrument`` walks the rows' patch targets, and ``summarizer`` asks the row's adapter.

Adding a provider is a folder (its adapter module and endpoint readers) and one row:

>>> from sessionware.adapters.providers import Client, ProviderRow, VersionRange, add_provider
>>> row = ProviderRow(
...     "mistralai",
...     clients=(Client("Mistral", is_async=False),),
...     funnel="request",
...     adapter="my_package.mistral_adapter",
...     versions=VersionRange((1,), (2,)),
... )
>>> add_provider(row)  # doctest: +SKIP

This module imports the standard library only: the zero-code bootstrap reads the table
at every interpreter start. A row's adapter module is imported when a client of it is
first wrapped or instrumented.
"""

from __future__ import annotations

import importlib
import re
import sys
import threading
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

if TYPE_CHECKING:
    from sessionware.adapters.engine.types import ProviderSpec
    from sessionware.core.accounting.usage import TokenUsage

__all__ = [
    "Client",
    "PatchKind",
    "PatchTarget",
    "Provider",
    "ProviderAdapter",
    "ProviderRow",
    "VersionRange",
    "add_provider",
    "adapter_of",
    "parse_version",
    "patch_targets",
    "provider_named",
    "providers",
    "remove_provider",
    "row_of_client",
]


class Provider(StrEnum):
    """The providers built in; each is also the name of its SDK's top-level module."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    LITELLM = "litellm"


class PatchKind(StrEnum):
    """What ``instrument()`` puts in place of a patch target."""

    SYNC_FUNNEL = "sync_funnel"
    ASYNC_FUNNEL = "async_funnel"
    CALLBACK = "callback"


# NamedTuples, not dataclasses: the zero-code bootstrap imports this module at every
# interpreter start, and ``dataclasses`` costs more to import than all of it.
class VersionRange(NamedTuple):
    """``minimum <= version < below``."""

    minimum: tuple[int, ...]
    below: tuple[int, ...]

    def contains(self, version: tuple[int, ...]) -> bool:
        return self.minimum <= version < self.below

    def describe(self) -> str:
        return f">={'.'.join(map(str, self.minimum))},<{'.'.join(map(str, self.below))}"


class Client(NamedTuple):
    """A client class of an SDK: its attribute path in the SDK's module, and whether its
    funnel is a coroutine function. Subclasses (``AzureOpenAI``) are covered by their base."""

    path: str
    is_async: bool


class PatchTarget(NamedTuple):
    """One attribute ``instrument()`` patches: ``<module>.<owner>.<attribute>``."""

    provider: str
    owner: str
    """Attribute path of the patched object inside the provider's module (``OpenAI``),
    or ``""`` for the module itself."""
    attribute: str
    kind: PatchKind

    @property
    def module(self) -> str:
        return self.provider

    def describe(self) -> str:
        owner = f"{self.owner}." if self.owner else ""
        return f"{self.module}.{owner}{self.attribute}"


class ProviderAdapter(Protocol):
    """What a provider's adapter module supplies (module-level functions)."""

    def spec_for(self, client: Any) -> ProviderSpec:
        """Where to hook ``client`` and how to read its endpoints."""
        ...

    def summary_request(
        self, client: Any, *, model: str, instructions: str, text: str, max_tokens: int
    ) -> Any:
        """Ask ``client`` (unrecorded) to summarise ``text``: the SDK's result, awaitable
        for async clients."""
        ...

    def summary_of(self, response: Any) -> tuple[str, TokenUsage | None]:
        """The summary text and usage of the response to ``summary_request``."""
        ...


class ProviderRow(NamedTuple):
    """One provider: see the module docstring."""

    name: str
    """The provider's id, and the name of its SDK's top-level module."""
    clients: tuple[Client, ...]
    """The client classes ``wrap()`` accepts and ``instrument()`` patches."""
    funnel: str
    """The client method every request goes through, with the final JSON body."""
    adapter: str
    """The module (in the provider's folder) that is its ``ProviderAdapter``."""
    versions: VersionRange | None
    """The SDK releases the adapter is built and tested on (None: any)."""
    callback: bool = False
    """``instrument()`` registers a callback in the SDK's module instead (LiteLLM)."""

    def targets(self) -> tuple[PatchTarget, ...]:
        """What ``instrument()`` patches for this provider."""
        found = tuple(
            PatchTarget(
                self.name,
                client.path,
                self.funnel,
                PatchKind.ASYNC_FUNNEL if client.is_async else PatchKind.SYNC_FUNNEL,
            )
            for client in self.clients
        )
        if self.callback:
            found += (PatchTarget(self.name, "", "callbacks", PatchKind.CALLBACK),)
        return found


# The supported versions (``versions``) are the one source: pyproject.toml's extras and the
# README's "Supported versions" name the same ranges (tests/adapters/test_supported_versions.py).
_ROWS: dict[str, ProviderRow] = {
    row.name: row
    for row in (
        ProviderRow(
            Provider.OPENAI,
            clients=(Client("OpenAI", is_async=False), Client("AsyncOpenAI", is_async=True)),
            funnel="request",
            adapter="sessionware.adapters.openai.spec",
            versions=VersionRange((2, 20), (4,)),
        ),
        ProviderRow(
            Provider.ANTHROPIC,
            clients=(Client("Anthropic", is_async=False), Client("AsyncAnthropic", is_async=True)),
            funnel="_request",
            adapter="sessionware.adapters.anthropic.spec",
            versions=VersionRange((2, 0), (3,)),
        ),
        ProviderRow(
            Provider.LITELLM,
            clients=(),
            funnel="",
            adapter="sessionware.adapters.litellm.callback",
            versions=VersionRange((1, 106, 2), (1, 107)),
            callback=True,
        ),
    )
}
_lock = threading.Lock()


def providers() -> tuple[ProviderRow, ...]:
    """The rows of the table, built-in ones first."""
    return tuple(_ROWS.values())


def provider_named(name: str) -> ProviderRow | None:
    return _ROWS.get(name)


def add_provider(row: ProviderRow) -> None:
    """Add (or replace) a provider's row: ``wrap()`` then accepts its clients and
    ``instrument()`` patches them (an ``instrument()`` already active picks it up when
    it is next called)."""
    with _lock:
        _ROWS[row.name] = row


def remove_provider(name: str) -> None:
    """Take a row added with ``add_provider`` out of the table (built-in rows stay)."""
    if name in Provider.__members__.values():
        raise ValueError(f"{name!r} is a built-in provider")
    with _lock:
        _ROWS.pop(name, None)


def patch_targets() -> tuple[PatchTarget, ...]:
    """Every target ``instrument()`` patches, row by row."""
    return tuple(target for row in _ROWS.values() for target in row.targets())


def adapter_of(row: ProviderRow) -> ProviderAdapter:
    """The row's adapter module (imported on first use)."""
    return cast("ProviderAdapter", importlib.import_module(row.adapter))


def _resolve(module: Any, path: str) -> Any:
    for part in path.split("."):
        module = getattr(module, part)
    return module


def row_of_client(client: Any) -> tuple[ProviderRow, Client] | None:
    """The row and client class ``client`` is an instance of, or None.

    Only SDKs already imported are looked at (a client of an SDK not imported cannot exist).
    """
    for row in tuple(_ROWS.values()):
        module = sys.modules.get(row.name)
        if module is None:
            continue
        for known in row.clients:
            cls = getattr(module, known.path.split(".")[0], None) and _resolve(module, known.path)
            if isinstance(cls, type) and isinstance(client, cls):
                return row, known
    return None


_LEADING_NUMBERS = re.compile(r"^\d+(?:\.\d+)*")


def parse_version(text: str) -> tuple[int, ...] | None:
    """The leading numeric release of a version string (``"2.54.0rc1"`` -> ``(2, 54, 0)``)."""
    found = _LEADING_NUMBERS.match(text.strip())
    if found is None:
        return None
    return tuple(int(part) for part in found.group().split("."))
