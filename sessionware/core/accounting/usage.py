"""Token usage as a provider reports it, or as we estimate it when it does not."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["TokenSource", "TokenUsage"]


class TokenSource(StrEnum):
    """Where a token count came from."""

    PROVIDER = "provider"
    """Reported by the provider in its response: the billed truth."""
    ESTIMATE = "estimate"
    """Counted locally (exact tokenizer or a heuristic) because no usage was reported."""


class TokenUsage(BaseModel):
    """Tokens of one call or a sum of calls.

    ``input_tokens`` is the whole prompt, cached parts included (OpenAI's convention;
    Anthropic's separate cache counts are folded in by its adapter), so
    ``cache_read_tokens`` and ``cache_write_tokens`` are subsets of it.
    ``reasoning_tokens`` is a subset of ``output_tokens``.

    >>> TokenUsage(input_tokens=10, output_tokens=5).total_tokens
    15
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0)
    cache_write_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    source: TokenSource = TokenSource.PROVIDER

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def uncached(self) -> TokenUsage:
        """The same usage with no cache reads or writes: every input token plain input
        (what the call would have been billed without the provider's cache)."""
        return _fast(self.__dict__ | {"cache_read_tokens": 0, "cache_write_tokens": 0})

    def __add__(self, other: TokenUsage) -> TokenUsage:
        a, b = self.__dict__, other.__dict__
        # A sum is only "provider" truth when every part of it is.
        provider = a["source"] is _PROVIDER and b["source"] is _PROVIDER
        # Sums of valid usages are valid: skip validation, it is most of the cost of a sum
        # and totals add one per recorded call.
        return _fast(
            {
                "input_tokens": a["input_tokens"] + b["input_tokens"],
                "output_tokens": a["output_tokens"] + b["output_tokens"],
                "cache_read_tokens": a["cache_read_tokens"] + b["cache_read_tokens"],
                "cache_write_tokens": a["cache_write_tokens"] + b["cache_write_tokens"],
                "reasoning_tokens": a["reasoning_tokens"] + b["reasoning_tokens"],
                "source": _PROVIDER if provider else _ESTIMATE,
            }
        )


def _fast(values: dict[str, object]) -> TokenUsage:
    """A ``TokenUsage`` of ``values`` (every field, already valid) without validation."""
    made = _new(TokenUsage)
    _set(made, "__dict__", values)
    _set(made, "__pydantic_fields_set__", _ALL_FIELDS)  # shared: a frozen model never changes it
    _set(made, "__pydantic_extra__", None)
    _set(made, "__pydantic_private__", None)
    return made


# Enum members as module constants: a class attribute lookup on an Enum costs ~50 ns.
_PROVIDER, _ESTIMATE = TokenSource.PROVIDER, TokenSource.ESTIMATE
_new = object.__new__
_set = object.__setattr__
_ALL_FIELDS = set(TokenUsage.model_fields)
