"""``sessionware run``: real programs run in child processes under the real entry point;
what they recorded is read back from the SQLite file they wrote."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import pytest

from sessionware.cli import main
from sessionware.core.session.enums import EventType
from sessionware.core.session.models import SessionEvent
from sessionware.core.store import open_store

# Each test starts interpreters of its own.
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# An "unmodified" app: plain openai, its HTTP answered by the fake API in-process.
CHAT_APP = """
import sys
import httpx, openai
from sessionware.adapters.fakes import FakeOpenAI

http = httpx.Client(transport=FakeOpenAI().transport())
client = openai.OpenAI(api_key="k", max_retries=0, http_client=http)
history = [{"role": "system", "content": "Be brief."}]
for question in sys.argv[1:] or ["hello"]:
    history.append({"role": "user", "content": question})
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=history).choices[0].message.content
    history.append({"role": "assistant", "content": answer})
    print(answer)
"""


def write(path: Path, code: str) -> Path:
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


def sessionware_run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m sessionware run ARGS`` with a clean ``SESSIONWARE_*`` environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARE_") and k != "PYTHONPATH"}
    base["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return subprocess.run(
        [sys.executable, "-m", "sessionware", "run", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=180,
        check=False,
    )


def recorded(db: Path) -> dict[str, list[SessionEvent]]:
    store = open_store(f"sqlite:///{db}")
    try:
        return {info.id: store.load(info.id).events for info in store.list_sessions()}
    finally:
        store.close()


def messages(events: list[SessionEvent]) -> list[tuple[str, str]]:
    return [(e.role.value, e.text) for e in events if e.type is EventType.MESSAGE and e.role]


def test_the_legacy_example_is_tracked_without_edits(tmp_path: Path):
    result = sessionware_run("--", sys.executable, str(EXAMPLES / "legacy_app.py"), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    [(session_id, events)] = recorded(tmp_path / "sessionware.db").items()
    assert session_id.startswith("auto-")
    said = messages(events)
    assert [role for role, _ in said] == ["user", "assistant"] * 3
    assert said[0][1] == "I have two days in Lisbon. Where should I start?"
    answers = [e for e in events if e.usage is not None]
    assert len(answers) == 3 and all(e.cost is not None for e in answers)
    assert answers[-1].metadata.get("stream") is True

    listing = subprocess.run(
        [sys.executable, "-m", "sessionware", "sessions", "--format", "plain", "--no-header"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert listing.stdout.split("\t")[0] == session_id
    shown = subprocess.run(
        [sys.executable, "-m", "sessionware", "show", session_id],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Summarise the plan in one line." in shown.stdout


@pytest.mark.skipif(find_spec("litellm") is None, reason="LiteLLM is not installed")
def test_a_litellm_program_is_tracked_to_its_last_call(tmp_path: Path):
    app = write(
        tmp_path / "app.py",
        """
        import asyncio, litellm

        hi = [{"role": "user", "content": "sync hello"}]
        reply = litellm.completion(model="gpt-4o-mini", messages=hi, mock_response="hi")
        print(reply.choices[0].message.content)

        async def main():
            bye = [{"role": "user", "content": "last words"}]
            reply = await litellm.acompletion(model="gpt-4o-mini", messages=bye, mock_response="bye")
            print(reply.choices[0].message.content)

        asyncio.run(main())  # the program ends right after its last call
        """,
    )
    result = sessionware_run("--", sys.executable, str(app), cwd=tmp_path)

    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\nbye\n", "")
    said = sorted(
        text for events in recorded(tmp_path / "sessionware.db").values() for _, text in messages(events)
    )
    assert said == ["bye", "hi", "last words", "sync hello"]


def test_options_choose_the_store_and_the_session(tmp_path: Path):
    app = write(tmp_path / "app.py", CHAT_APP)
    result = sessionware_run(
        "--store",
        "sqlite:///elsewhere.db",
        "--session",
        "nightly",
        "--",
        sys.executable,
        str(app),
        "a",
        "b",
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "sessionware.db").exists()
    [(session_id, events)] = recorded(tmp_path / "elsewhere.db").items()
    assert session_id == "nightly"
    assert [text for _, text in messages(events)] == ["a", "You said: a", "b", "You said: b"]


def test_the_store_comes_from_the_environment_and_stays_put_when_the_program_changes_directory(
    tmp_path: Path,
):
    (tmp_path / "work").mkdir()
    app = write(tmp_path / "app.py", "import os\nos.chdir('work')\n" + textwrap.dedent(CHAT_APP))
    result = sessionware_run(
        "--", sys.executable, str(app), cwd=tmp_path, env={"SESSIONWARE_STORE": "sqlite:///from-env.db"}
    )

    assert result.returncode == 0, result.stderr
    assert list(recorded(tmp_path / "from-env.db"))
    assert not (tmp_path / "work" / "from-env.db").exists()


def test_managed_mode_runs_the_legacy_example_within_its_budget(tmp_path: Path):
    result = sessionware_run(
        "--mode",
        "managed",
        "--budget",
        "3000",
        "--",
        sys.executable,
        str(EXAMPLES / "legacy_app.py"),
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    [events] = recorded(tmp_path / "sessionware.db").values()
    answers = [e for e in events if e.role is not None and e.role.value == "assistant"]
    assert len(answers) == 3
    assert all(e.metadata["managed"]["budget"] == 3000 for e in answers)


def test_a_program_under_test_is_never_made_strict(tmp_path: Path):
    # Outside zero-code mode, importing pytest makes bookkeeping failures raise (for our tests).
    app = write(
        tmp_path / "app.py",
        "import pytest\nfrom sessionware.adapters.engine.guard import is_strict\nprint(is_strict())\n",
    )
    result = sessionware_run("--", sys.executable, str(app), cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "False\n"), result.stderr


def test_the_exit_code_is_the_programs(tmp_path: Path):
    app = write(tmp_path / "app.py", "import sys\nprint('bye')\nsys.exit(3)\n")
    result = sessionware_run("--", sys.executable, str(app), cwd=tmp_path)

    assert (result.returncode, result.stdout) == (3, "bye\n")


def test_a_program_that_does_not_exist_exits_127(tmp_path: Path):
    result = sessionware_run("--", "no-such-program-here", cwd=tmp_path)

    assert result.returncode == 127
    assert "no-such-program-here: command not found" in result.stderr


def test_the_kill_switch_runs_the_program_untouched(tmp_path: Path):
    app = write(
        tmp_path / "app.py",
        CHAT_APP + "\nprint('patched' if 'request' in vars(openai.OpenAI) else 'untouched')\n",
    )
    result = sessionware_run("--", sys.executable, str(app), cwd=tmp_path, env={"SESSIONWARE_DISABLED": "1"})

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["You said: hello", "untouched"]
    assert not (tmp_path / "sessionware.db").exists()


def test_child_processes_are_not_instrumented_unless_asked(tmp_path: Path):
    child = write(tmp_path / "child.py", CHAT_APP)
    parent = write(
        tmp_path / "parent.py",
        f"""
        import os, subprocess, sys
        print(repr(os.environ.get("PYTHONPATH")))
        subprocess.run([sys.executable, {str(child)!r}, "from the child"], check=True)
        """,
    )

    alone = sessionware_run("--", sys.executable, str(parent), cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.splitlines()[0] == "None"  # the bootstrap is off the child's path
    assert not (tmp_path / "sessionware.db").exists()  # the parent made no call, the child is untracked

    along = sessionware_run("--propagate", "--", sys.executable, str(parent), cwd=tmp_path)
    assert along.returncode == 0, along.stderr
    [events] = recorded(tmp_path / "sessionware.db").values()
    assert messages(events)[0] == ("user", "from the child")


@pytest.mark.parametrize(
    "env",
    [
        {"SESSIONWARE_BUDGET": "lots"},
        {"SESSIONWARE_PROVIDERS": "openai,cohere"},
    ],
)
def test_a_bad_setting_in_the_environment_warns_once_and_the_program_runs(
    tmp_path: Path, env: dict[str, str]
):
    app = write(tmp_path / "app.py", CHAT_APP + "\nraise SystemExit(4)\n")
    result = sessionware_run("--", sys.executable, str(app), cwd=tmp_path, env=env)

    assert (result.returncode, result.stdout) == (4, "You said: hello\n")
    [line] = result.stderr.splitlines()
    assert line.startswith("sessionware: not recording this run (") and line.endswith(
        "the program runs as usual"
    )
    assert not (tmp_path / "sessionware.db").exists()


def test_a_broken_sessionware_installation_warns_once_and_the_program_runs(tmp_path: Path):
    # A package named sessionware that cannot be imported, found before the real one.
    broken = tmp_path / "broken" / "sessionware"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('half-installed wheel')\n")
    app = write(tmp_path / "app.py", "print('still running')\n")

    # Only the program sees it (after the bootstrap directory): sessionware run itself works.
    launch = f'PYTHONPATH="$PYTHONPATH:{tmp_path / "broken"}" exec "{sys.executable}" "{app}"'

    result = sessionware_run("--", "sh", "-c", launch, cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "still running\n")
    [line] = result.stderr.splitlines()
    assert "half-installed wheel" in line and line.startswith("sessionware: not recording this run")


def test_a_store_that_cannot_be_opened_warns_once_when_the_sdk_loads(tmp_path: Path):
    app = write(tmp_path / "app.py", CHAT_APP)
    result = sessionware_run("--store", "bogus://nowhere", "--", sys.executable, str(app), cwd=tmp_path)

    assert (result.returncode, result.stdout) == (0, "You said: hello\n")
    [line] = result.stderr.splitlines()
    assert "could not instrument openai" in line and "unknown store" in line


def test_an_existing_sitecustomize_still_runs(tmp_path: Path):
    site = tmp_path / "site"
    site.mkdir()
    write(site / "sitecustomize.py", "import builtins\nbuiltins.SITE_MARK = 'theirs'\n")
    app = write(tmp_path / "app.py", CHAT_APP + "\nimport builtins\nprint(builtins.SITE_MARK)\n")

    result = sessionware_run("--", sys.executable, str(app), cwd=tmp_path, env={"PYTHONPATH": str(site)})

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["You said: hello", "theirs"]
    assert list(recorded(tmp_path / "sessionware.db"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to run"),
        (("--",), "nothing to run"),
        (("--budget", "4000", "--", "python"), "budget configures managed mode"),
        (("--session", " ", "--", "python"), "non-empty"),
        (("--budget", "0", "--", "python"), "must be at least 1"),
    ],
)
def test_bad_options_are_usage_errors_and_nothing_runs(
    args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
):
    assert main(["run", *args]) == 2  # in this process: had anything run, pytest would be gone
    assert message in capsys.readouterr().err


def test_run_has_help(tmp_path: Path):
    result = sessionware_run("--help", cwd=tmp_path)

    assert result.returncode == 0
    assert "SESSIONWARE_DISABLED" in result.stdout and "-- PROGRAM" in result.stdout
