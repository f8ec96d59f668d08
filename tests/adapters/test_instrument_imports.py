"""Modules imported after ``instrument()``: patched by the post-import hook. Each test runs
a fresh Python process (this one has the SDKs imported already) and reads what it
recorded from a real SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from sessionware.core.store import open_store

# Each test starts interpreters of its own.
pytestmark = pytest.mark.slow

CALL_OPENAI = """
import httpx, openai
from sessionware.adapters.fakes import FakeOpenAI
http = httpx.Client(transport=FakeOpenAI().transport())
client = openai.OpenAI(api_key="k", max_retries=0, http_client=http)
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
print(reply.choices[0].message.content)
"""


def run_child(*parts: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the code ``parts`` (each dedented on its own) in a new Python process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARE_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return subprocess.run(
        [sys.executable, "-c", "\n".join(textwrap.dedent(part) for part in parts)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def recorded_texts(db: Path) -> list[str]:
    store = open_store(f"sqlite:///{db}")
    try:
        return [e.text for info in store.list_sessions() for e in store.load(info.id).events if e.role]
    finally:
        store.close()


def test_an_sdk_imported_after_instrument_is_recorded_and_keeps_its_own_loader(tmp_path: Path):
    db = tmp_path / "calls.db"
    result = run_child(
        f"""
        import sys, sessionware
        sessionware.instrument(store={str(db)!r})
        assert "openai" not in sys.modules
        """,
        CALL_OPENAI,
        """
        import importlib.machinery
        assert type(openai.__loader__) is importlib.machinery.SourceFileLoader, openai.__loader__
        assert openai.__spec__.loader is openai.__loader__
        """,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "You said: hi"
    assert recorded_texts(db) == ["hi", "You said: hi"]


def test_uninstrument_before_the_import_leaves_the_sdk_untouched(tmp_path: Path):
    db = tmp_path / "calls.db"
    result = run_child(
        f"""
        import sys, sessionware
        meta_path = list(sys.meta_path)
        sessionware.instrument(store={str(db)!r})
        sessionware.uninstrument()
        assert sys.meta_path == meta_path
        """,
        CALL_OPENAI,
        """
        assert "request" not in vars(openai.OpenAI)
        """,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert not db.exists() or recorded_texts(db) == []


@pytest.mark.skipif(find_spec("litellm") is None, reason="LiteLLM is not installed")
def test_litellm_imported_after_instrument_gets_the_callback(tmp_path: Path):
    db = tmp_path / "calls.db"
    result = run_child(
        f"""
        import time, sessionware
        sessionware.instrument(store={str(db)!r})
        import litellm
        from sessionware.adapters.litellm import SessionCallback
        assert [type(c) for c in litellm.callbacks] == [SessionCallback]
        hey = [{{"role": "user", "content": "hey"}}]
        litellm.completion(model="gpt-4o-mini", messages=hey, mock_response="yo")
        time.sleep(0.5)  # LiteLLM records sync calls on its logging thread
        """,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert recorded_texts(db) == ["hey", "yo"]


def test_a_store_that_cannot_open_at_import_warns_once_and_the_app_goes_on(tmp_path: Path):
    # The warning goes through the app's logging (the library's logger has a NullHandler).
    result = run_child(
        """
        import logging
        logging.basicConfig(format="%(message)s")
        import sessionware
        sessionware.instrument(store="bogus://nowhere")
        """,
        CALL_OPENAI,
        """
        import anthropic
        from sessionware.adapters.instrument import is_instrumented
        assert not is_instrumented()
        assert "request" not in vars(openai.OpenAI)
        """,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "You said: hi"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "could not instrument openai" in lines[0] and "unknown store" in lines[0]


def test_the_post_import_hook_runs_once_the_module_has_run_and_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from sessionware.adapters.instrument.import_hooks import PostImportFinder

    (tmp_path / "late_module.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen: list[int] = []
    finder = PostImportFinder({"late_module": lambda module: seen.append(module.VALUE)}, on_error=pytest.fail)
    finder.install()
    try:
        import late_module  # type: ignore[import-not-found]
    finally:
        finder.remove()
        sys.modules.pop("late_module", None)

    assert seen == [42]
    assert type(late_module.__loader__).__name__ == "SourceFileLoader"
    assert late_module.__spec__.loader is late_module.__loader__
    assert finder not in sys.meta_path


def test_a_failing_post_import_hook_is_reported_and_the_import_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from sessionware.adapters.instrument.import_hooks import PostImportFinder

    (tmp_path / "late_module_2.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    errors: list[tuple[str, BaseException]] = []

    def broken(module: Any) -> None:
        raise RuntimeError("hook broke")

    finder = PostImportFinder(
        {"late_module_2": broken}, on_error=lambda name, exc: errors.append((name, exc))
    )
    finder.install()
    try:
        import late_module_2  # type: ignore[import-not-found]
    finally:
        finder.remove()
        sys.modules.pop("late_module_2", None)

    assert late_module_2.VALUE == 7
    assert [(name, str(exc)) for name, exc in errors] == [("late_module_2", "hook broke")]


def test_modules_not_watched_and_missing_ones_are_left_to_the_other_finders(monkeypatch: pytest.MonkeyPatch):
    from sessionware.adapters.instrument.import_hooks import PostImportFinder

    finder = PostImportFinder({"no_such_module_anywhere": pytest.fail}, on_error=pytest.fail)
    finder.install()
    try:
        assert finder.find_spec("json", None) is None
        with pytest.raises(ModuleNotFoundError):
            __import__("no_such_module_anywhere")
    finally:
        finder.remove()
