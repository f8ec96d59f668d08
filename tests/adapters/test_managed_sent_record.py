"""A managed call records what it sent by reference to the log (``managed.sent``): the
recorded part boundaries and page numbers, applied to the session's log, give back the
wire request's messages exactly; the memory block's text is stored once per change."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from adapter_support import make_openai, session_events
from managed_support import FACT, SYSTEM, RecallModel, create

import sessionware
from sessionware.adapters.fakes import FakeOpenAI
from sessionware.adapters.managed.sent import SENT_KEY, SentContext
from sessionware.core.memory import ContextPolicy
from sessionware.core.session.enums import EventType, Role
from sessionware.core.session.messages import conversation_events
from sessionware.core.session.models import SessionEvent
from sessionware.core.store import Store


def _transcript(events: list[SessionEvent]) -> list[SessionEvent]:
    """The pages ``msg_1``, ``msg_2``... of the conversation as of the end of ``events``."""
    return [e for e in conversation_events(events) if not e.hidden and e.role is not Role.SYSTEM]


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


def _converse(store: Store, turns: int) -> tuple[list[dict[str, Any]], list[SessionEvent]]:
    model = RecallModel(steps=("search", "fault"))
    client = sessionware.wrap(
        make_openai("OpenAI", FakeOpenAI(model)),
        store=store,
        session_id="s",
        mode="managed",
        context=ContextPolicy(budget=1200),
    )
    history: list[dict[str, Any]] = []
    for i in range(turns):
        text = f"Turn {i}: {FACT}" if i == 2 else f"Turn {i}: the garden beds, compost and water, week {i}."
        if i in (14, 20):
            text = "Do you remember the locker code for Maya?"
        history.append({"role": "user", "content": text})
        answer = create(client, "chat", history).choices[0].message.content
        history.append({"role": "assistant", "content": answer})
    return model.seen, session_events(store, "s")


def test_the_recorded_parts_rebuild_every_wire_request(store: Store) -> None:
    sent_bodies, events = _converse(store, 26)
    finals = [e for e in events if e.type is EventType.MESSAGE and e.role is Role.ASSISTANT]
    first_bodies = _first_round_bodies(sent_bodies)
    assert len(finals) == len(first_bodies) == 26
    blocks: dict[str, str] = {}
    recalled_seen = 0
    for final, body in zip(finals, first_bodies, strict=True):
        sent = SentContext.model_validate(final.metadata["managed"][SENT_KEY])
        if sent.block is not None:
            blocks[sent.block_hash] = sent.block
        before = events[: events.index(final)]
        transcript = _transcript(before)
        wire = body["messages"]
        expected = [SYSTEM]
        if sent.block_hash:
            expected.append(blocks[sent.block_hash])
        window = [transcript[int(p[4:]) - 1] for p in sent.pages()]
        latest = transcript[len(transcript) - sent.latest :]
        assert latest and all(e.role is Role.USER for e in latest)
        # The recall region goes where the builder recorded it: here, with every call opening
        # a turn, after the whole window, right before the incoming message.
        assert "recall_before" in sent.model_fields_set or not sent.recalled
        assert sent.recall_before is None
        last_turn = len(window)
        expected += [str(e.content) for e in window[:last_turn]]
        if sent.recalled:
            recalled_seen += 1
            region = "".join(f" {page_id}: " for page_id in sent.recalled)
            expected.append(region)
        expected += [str(e.content) for e in window[last_turn:]]
        got = [_content(m) for m in wire]
        if sent.recalled:
            at = len(expected) - len(window) + last_turn - 1
            assert all(f" {page_id}: " in got[at] for page_id in sent.recalled)
            assert got[at].startswith("<VM:RECALL>")
            got[at] = region
        assert got == [*expected, *(str(e.content) for e in latest)]
        assert sum(sent.parts.model_dump().values()) == final.metadata["managed"]["built_tokens"]
    assert recalled_seen, "a page recalled on an earlier turn stays in the recall region"
    assert 1 < len(blocks) <= 1 + sum(e.type is EventType.COMPACTION for e in events)
    texts = [e.metadata["managed"][SENT_KEY].get("block") for e in finals]
    assert sum(t is not None for t in texts) == len(blocks), "the block's text is stored once per change"


def _first_round_bodies(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The body each call was built as (not its hidden rounds' follow-ups)."""
    return [b for b in bodies if b["messages"][-1].get("role") == "user"]


@pytest.mark.parametrize("turns", [1])
def test_a_first_call_has_no_window_and_its_turn_as_latest(store: Store, turns: int) -> None:
    _, events = _converse(store, turns)
    final = next(e for e in events if e.role is Role.ASSISTANT)
    sent = SentContext.model_validate(final.metadata["managed"][SENT_KEY])
    assert sent.window == [] and sent.latest == 1 and sent.block_hash
    assert sent.block is not None and "<VM:" in sent.block
