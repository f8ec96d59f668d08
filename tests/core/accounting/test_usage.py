"""``TokenUsage``: the provider's figures, summed, and labelled by where they came from."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sessionware import TokenSource, TokenUsage


def test_usage_keeps_every_kind_of_token() -> None:
    usage = TokenUsage(
        input_tokens=1000,
        output_tokens=200,
        cache_read_tokens=600,
        cache_write_tokens=100,
        reasoning_tokens=50,
    )
    assert usage.total_tokens == 1200  # cached and reasoning tokens are parts of input and output
    assert usage.source is TokenSource.PROVIDER


def test_sums_add_every_field_and_stay_provider_only_when_all_parts_are() -> None:
    a = TokenUsage(
        input_tokens=1, output_tokens=2, cache_read_tokens=3, cache_write_tokens=4, reasoning_tokens=5
    )
    b = TokenUsage(
        input_tokens=10, output_tokens=20, cache_read_tokens=30, cache_write_tokens=40, reasoning_tokens=50
    )
    total = a + b
    assert total == TokenUsage(
        input_tokens=11, output_tokens=22, cache_read_tokens=33, cache_write_tokens=44, reasoning_tokens=55
    )
    estimate = TokenUsage(input_tokens=1, source=TokenSource.ESTIMATE)
    assert (a + estimate).source is TokenSource.ESTIMATE
    assert (estimate + a).source is TokenSource.ESTIMATE


@pytest.mark.parametrize("fields", [{"input_tokens": -1}, {"prompt_tokens": 3}, {"source": "guess"}])
def test_invalid_usage_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TokenUsage(**fields)  # type: ignore[arg-type]


def test_usage_is_immutable_and_round_trips() -> None:
    usage = TokenUsage(input_tokens=3, output_tokens=4, source=TokenSource.ESTIMATE)
    with pytest.raises(ValidationError):
        usage.input_tokens = 5  # type: ignore[misc]
    assert TokenUsage.model_validate_json(usage.model_dump_json()) == usage
