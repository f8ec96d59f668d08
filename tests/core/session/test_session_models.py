"""The session vocabulary and data models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from sessionware import (
    Durability,
    EventSource,
    EventType,
    Role,
    RunStatus,
    Session,
    SessionEvent,
    SessionInfo,
    SessionRun,
    TokenUsage,
    ToolCall,
)

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_enums_are_string_valued_and_parse_from_their_values() -> None:
    assert [r.value for r in Role] == ["system", "user", "assistant", "tool"]
    assert {s.value for s in EventSource} == {"user", "llm", "tool", "system"}
    assert [s.value for s in RunStatus] == ["pending", "running", "completed", "failed", "cancelled"]
    assert {d.value for d in Durability} == {"write_behind", "sync"}
    assert {"message", "tool_call", "system_prompt", "summary", "branch"} <= {t.value for t in EventType}
    assert Role("assistant") is Role.ASSISTANT and EventType("tool_call") is EventType.TOOL_CALL
    assert f"{Role.USER}" == "user"  # usable directly where providers expect text
    with pytest.raises(ValueError):
        Durability("eventually")


def make_event(**fields: object) -> SessionEvent:
    base: dict[str, object] = {
        "id": "e1",
        "session_id": "s",
        "seq": 1,
        "timestamp": NOW,
        "type": EventType.MESSAGE,
        "source": EventSource.USER,
        "role": Role.USER,
        "content": "hi",
    }
    return SessionEvent(**{**base, **fields})  # type: ignore[arg-type]


def test_an_event_is_immutable_and_strict_about_its_fields() -> None:
    event = make_event()
    with pytest.raises(ValidationError):
        event.content = "changed"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        make_event(colour="red")
    with pytest.raises(ValidationError):
        make_event(seq=0)
    with pytest.raises(ValidationError):
        make_event(type="not-a-type")


def test_event_text_joins_text_parts_and_skips_others() -> None:
    parts = [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "u"}},
        {"type": "text", "text": "b"},
    ]
    assert make_event(content=parts).text == "ab"
    assert make_event(content=None).text == ""
    assert make_event(content="plain").text == "plain"


def test_an_event_round_trips_through_json_exactly() -> None:
    event = make_event(
        source=EventSource.LLM,
        role=Role.ASSISTANT,
        tool_calls=(ToolCall(id="c", name="f"),),
        usage=TokenUsage(input_tokens=3, output_tokens=1),
        cost=Decimal("0.000000375"),
        metadata={"k": [1, "x"]},
    )
    again = SessionEvent.model_validate_json(event.model_dump_json())
    assert again == event and again.cost == Decimal("0.000000375")
    assert again.tool_calls[0].arguments == "{}"


def test_a_run_has_a_duration_once_it_has_ended() -> None:
    run = SessionRun(id="r", started_at=NOW)
    assert run.status is RunStatus.PENDING and run.duration_s is None
    run.ended_at = NOW + timedelta(seconds=2.5)
    assert run.duration_s == 2.5


def test_a_session_carries_header_totals_children_and_events() -> None:
    session = Session(id="s", parent_id="p", children=["c"], events=[make_event()], system_prompt="x")
    assert isinstance(session, SessionInfo)
    assert session.totals.events == 0 and session.last_seq == 0
    assert Session.model_validate_json(session.model_dump_json()) == session
    with pytest.raises(ValidationError):
        SessionInfo(id="s", unknown=1)  # type: ignore[call-arg]
