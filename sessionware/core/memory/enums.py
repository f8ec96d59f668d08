"""The virtual memory's vocabulary (the seed's words, each one actually used)."""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "CompressionLevel",
    "ContextPrefix",
    "Modality",
    "MutationType",
    "PageType",
    "Provider",
    "StorageTier",
    "VMMode",
    "VMTool",
]


class VMMode(StrEnum):
    """How strictly the model is told to ground answers in memory.

    ``STRICT`` and ``RELAXED`` add the rules, the manifest and the VM tools;
    ``PASSIVE`` sends the packed memory as plain context, with no tools.
    """

    STRICT = "strict"
    RELAXED = "relaxed"
    PASSIVE = "passive"


class PageType(StrEnum):
    TRANSCRIPT = "transcript"
    """One message or tool result of the conversation."""
    SUMMARY = "summary"
    """A summary of evicted turns (its ``provenance`` names the pages it covers)."""
    CLAIM = "claim"
    """A fact the app asked the memory to keep (``VirtualMemory.add_claim``)."""
    ARTIFACT = "artifact"
    """A tool output."""
    INDEX = "index"
    """An evicted chunk of turns, addressable as a whole."""


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    STRUCTURED = "structured"


class StorageTier(StrEnum):
    L0 = "L0"
    """In the context sent to the model."""
    L1 = "L1"
    """Out of the context, recallable by search and page faults."""


class CompressionLevel(IntEnum):
    FULL = 0
    ABSTRACT = 2
    REFERENCE = 3


class MutationType(StrEnum):
    CREATE = "create"
    FAULT_IN = "fault_in"
    EVICT = "evict"
    COMPRESS = "compress"
    PIN = "pin"
    UNPIN = "unpin"


class ContextPrefix(StrEnum):
    """Speaker prefixes of ``VM:CONTEXT`` lines."""

    USER = "U"
    ASSISTANT = "A"
    TOOL = "T"
    SUMMARY = "S"
    CLAIM = "C"
    PINNED = "P"


class Provider(StrEnum):
    """Message shape the builder renders."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class VMTool(StrEnum):
    PAGE_FAULT = "page_fault"
    SEARCH_PAGES = "search_pages"
