"""The one declared table of what ``sessionware.instrument()`` patches.

``instrument()`` walks ``PATCH_TABLE`` forwards to patch and ``uninstrument()`` walks
what was actually patched backwards to restore, so the two cannot drift apart. Each
target names a module, an attribute path inside it and what to put there:

* ``SYNC_FUNNEL`` / ``ASYNC_FUNNEL``: the client class's request funnel (the method
  every endpoint, helper and raw-response variant goes through, see ``funnel``) is
  replaced **on the class**, so clients created before ``instrument()`` are covered and
  subclasses (``AzureOpenAI``) inherit the hook;
* ``CALLBACK``: a ``SessionCallback`` is added to LiteLLM's callback lists.

Each module has a supported version range; outside it the module's targets are skipped
with a warning instead of patching code whose shape is unknown. This module imports
nothing beyond the standard library, so the zero-code bootstrap stays cheap.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import NamedTuple

__all__ = [
    "PATCH_TABLE",
    "SUPPORTED_VERSIONS",
    "PatchKind",
    "PatchTarget",
    "Provider",
    "VersionRange",
    "parse_version",
]


class Provider(StrEnum):
    """The SDKs ``instrument()`` knows; each is also the name of its top-level module."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    LITELLM = "litellm"


class PatchKind(StrEnum):
    """What a patch target puts in place."""

    SYNC_FUNNEL = "sync_funnel"
    ASYNC_FUNNEL = "async_funnel"
    CALLBACK = "callback"


# NamedTuples, not dataclasses: the zero-code bootstrap imports this module at every
# interpreter start, and ``dataclasses`` costs more to import than all of it.
class PatchTarget(NamedTuple):
    """One attribute ``instrument()`` patches: ``<module>.<owner>.<attribute>``."""

    provider: Provider
    owner: str
    """Attribute path of the patched object inside the provider's module (``OpenAI``),
    or ``""`` for the module itself."""
    attribute: str
    kind: PatchKind

    @property
    def module(self) -> str:
        return self.provider.value

    def describe(self) -> str:
        owner = f"{self.owner}." if self.owner else ""
        return f"{self.module}.{owner}{self.attribute}"


class VersionRange(NamedTuple):
    """``minimum <= version < below``."""

    minimum: tuple[int, ...]
    below: tuple[int, ...]

    def contains(self, version: tuple[int, ...]) -> bool:
        return self.minimum <= version < self.below

    def describe(self) -> str:
        return f">={'.'.join(map(str, self.minimum))},<{'.'.join(map(str, self.below))}"


# Ranges whose request funnel and callback API the adapters are built and tested on.
SUPPORTED_VERSIONS: dict[Provider, VersionRange] = {
    Provider.OPENAI: VersionRange((1, 40), (3,)),
    Provider.ANTHROPIC: VersionRange((0, 40), (3,)),
    Provider.LITELLM: VersionRange((1, 70), (2,)),
}

PATCH_TABLE: tuple[PatchTarget, ...] = (
    PatchTarget(Provider.OPENAI, "OpenAI", "request", PatchKind.SYNC_FUNNEL),
    PatchTarget(Provider.OPENAI, "AsyncOpenAI", "request", PatchKind.ASYNC_FUNNEL),
    PatchTarget(Provider.ANTHROPIC, "Anthropic", "request", PatchKind.SYNC_FUNNEL),
    PatchTarget(Provider.ANTHROPIC, "AsyncAnthropic", "request", PatchKind.ASYNC_FUNNEL),
    PatchTarget(Provider.LITELLM, "", "callbacks", PatchKind.CALLBACK),
)

_LEADING_NUMBERS = re.compile(r"^\d+(?:\.\d+)*")


def parse_version(text: str) -> tuple[int, ...] | None:
    """The leading numeric release of a version string (``"2.54.0rc1"`` -> ``(2, 54, 0)``)."""
    found = _LEADING_NUMBERS.match(text.strip())
    if found is None:
        return None
    return tuple(int(part) for part in found.group().split("."))
