"""Tokens and cost: offline token counting, provider usage, and pricing."""

from __future__ import annotations

from sessionware.core.accounting.pricing import ModelInfo, PriceBook
from sessionware.core.accounting.tokens import (
    EncodingCounter,
    EstimatingCounter,
    TokenCounter,
    counter_for_model,
)
from sessionware.core.accounting.usage import TokenSource, TokenUsage

__all__ = [
    "EncodingCounter",
    "EstimatingCounter",
    "ModelInfo",
    "PriceBook",
    "TokenCounter",
    "TokenSource",
    "TokenUsage",
    "counter_for_model",
]
