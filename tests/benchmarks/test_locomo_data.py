"""benchmarks/locomo_data.py: LoCoMo read in each published shape, and an evidence
matcher that is fooled neither way (a whole turn in one message or tool result counts;
a cut, split or merely similar one does not). Small samples made here: the real data is
never in the repository."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from locomo_data import EvidenceMatcher, load  # noqa: E402

from sessionware.core.memory.pages import MemoryPage  # noqa: E402
from sessionware.core.memory.transcript import recall_line  # noqa: E402

PARK = 'I took the kids to the "Riverside" park\nlast Sunday.'


def _sample(sample_id: str) -> dict[str, Any]:
    return {
        "sample_id": sample_id,
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Ben",
            "session_2_date_time": "9:00 am on 2 May, 2023",
            "session_2": [
                {"speaker": "Ana", "dia_id": "D2:1", "text": "Back again!"},
                {"speaker": "Ben", "dia_id": "D2:2", "text": "Welcome back."},
            ],
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [
                {"speaker": "Ana", "dia_id": "D1:1", "text": PARK},
                {"speaker": "Ben", "dia_id": "D1:2", "text": "Nice!", "blip_caption": "a photo of a swing"},
            ],
        },
        "qa": [
            {"question": "Where did Ana go?", "answer": "Riverside", "evidence": ["D1:1"], "category": 4},
            {"question": "When?", "answer": "Sunday", "evidence": ["D1:1", "D2:2"], "category": 2},
            {"question": "Trick?", "adversarial_answer": "x", "evidence": ["D1:2"], "category": 5},
            {"question": "No evidence?", "answer": "-", "evidence": [], "category": 1},
            {"question": "Malformed?", "answer": "-", "evidence": ["D1:1; D2:1"], "category": 3},
        ],
    }


def _flat(sample: dict[str, Any]) -> dict[str, Any]:
    """The zip's per-conversation shape: the conversation's fields at the top, with ``qa``."""
    return {**sample["conversation"], "qa": sample["qa"]}


def test_the_json_list_is_read_in_session_order_with_dates_captions_and_questions(tmp_path: Path) -> None:
    path = tmp_path / "locomo10.json"
    path.write_text(json.dumps([_sample("conv-1"), _sample("conv-2")]))

    convs = load(path)

    assert [c.sample_id for c in convs] == ["conv-1", "conv-2"]
    conv = convs[0]
    assert (conv.speaker_a, conv.speaker_b) == ("Ana", "Ben")
    assert [t.dia_id for t in conv.turns] == ["D1:1", "D1:2", "D2:1", "D2:2"]
    assert conv.turns[0].content == f"[1:56 pm on 8 May, 2023] Ana: {PARK}"
    assert conv.turns[1].content == "Ben: Nice! [shares a photo of a swing]"
    assert conv.turns[2].content.startswith("[9:00 am on 2 May, 2023] Ana: ")
    assert [(q.text, q.category, q.evidence) for q in conv.questions] == [
        ("Where did Ana go?", 4, ("D1:1",)),
        ("When?", 2, ("D1:1", "D2:2")),
    ]
    assert conv.skipped == 2  # no evidence, malformed id; category 5 is not counted


def test_the_zip_of_per_conversation_files_and_a_folder_read_the_same(tmp_path: Path) -> None:
    archive = tmp_path / "locomo10.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("conv-2", "conv-1"):
            z.writestr(f"multimodal_dialog/locomo10_v2/{name}.json", json.dumps(_flat(_sample(name))))
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(archive) as z:
        z.extractall(folder)

    from_zip, from_folder = load(archive), load(folder)

    assert [c.sample_id for c in from_zip] == ["conv-1", "conv-2"]
    assert [(c.sample_id, c.turns, c.questions) for c in from_zip] == [
        (c.sample_id, c.turns, c.questions) for c in from_folder
    ]


def test_data_that_is_not_locomo_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"messages": []}))
    with pytest.raises(ValueError, match="not LoCoMo data"):
        load(path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no locomo10.json"):
        load(empty)


def _matcher(tmp_path: Path) -> tuple[EvidenceMatcher, str]:
    path = tmp_path / "locomo10.json"
    path.write_text(json.dumps([_sample("conv-1")]))
    conv = load(path)[0]
    return EvidenceMatcher(conv.turns), conv.turns[0].content


def test_a_whole_turn_matches_as_sent_in_a_message_a_recall_line_or_a_tool_result(tmp_path: Path) -> None:
    matcher, turn = _matcher(tmp_path)
    page = MemoryPage(page_id="msg_1", session_id="s", text=turn)
    line = recall_line(page)  # the body as a JSON string: quotes and the newline escaped
    assert '\\"Riverside\\"' in line
    search = json.dumps({"results": [recall_line(page, quoted=False)]})

    for messages in (
        [{"role": "user", "content": turn}],
        [{"role": "user", "content": turn.replace("\n", "  \n ")}],  # whitespace differs
        [{"role": "system", "content": "<VM:RECALL>\n" + line + "\n</VM:RECALL>"}],
        [{"role": "user", "content": [{"type": "text", "text": line}, {"type": "text", "text": "Q?"}]}],
        [{"role": "tool", "tool_call_id": "c1", "content": search}],
    ):
        assert matcher.found("D1:1", matcher.haystacks(messages)), messages


def test_a_cut_split_or_similar_turn_does_not_match(tmp_path: Path) -> None:
    matcher, turn = _matcher(tmp_path)
    head, tail = turn[: len(turn) // 2], turn[len(turn) // 2 :]

    for messages in (
        [{"role": "user", "content": head + " …"}],  # a snippet
        [{"role": "user", "content": head}, {"role": "assistant", "content": tail}],  # split
        [{"role": "user", "content": turn.replace("last Sunday", "on Sunday")}],  # paraphrased
        [{"role": "user", "content": turn.replace("[1:56 pm on 8 May, 2023] ", "")}],  # without its date
        [{"role": "assistant", "content": "Ana: I took the kids to the park."}],
    ):
        assert not matcher.found("D1:1", matcher.haystacks(messages)), messages
    # A tool result's strings are read one by one: not joined across two of them.
    split = json.dumps({"results": [head, tail]})
    assert not matcher.found("D1:1", matcher.haystacks([{"role": "tool", "content": split}]))
