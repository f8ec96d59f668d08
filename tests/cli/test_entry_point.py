"""The ``sessionware`` entry point: help, exit codes, store choice, terminal detection."""

from __future__ import annotations

import io
import os
import pty
import runpy
import shutil
import sqlite3
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from sessionware.cli import main
from sessionware.core.store import open_store

SUBCOMMANDS = ["sessions", "show", "stats", "export", "import"]


def test_the_console_script_points_at_main() -> None:
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "sessionware"]

    assert script.load() is main


@pytest.mark.parametrize("command", [[], *([c] for c in SUBCOMMANDS)])
def test_help_exists_for_the_program_and_every_subcommand(run_cli, command: list[str]) -> None:
    result = run_cli(*command, "--help")

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: sessionware {' '.join(command)}".rstrip())
    assert "exit codes:" in result.stdout and "3  not found" in result.stdout
    assert "--store URL" in result.stdout


def test_help_lists_every_subcommand_in_process(cli) -> None:
    result = cli("--help")

    assert result.code == 0
    for name in SUBCOMMANDS:
        assert f"    {name} " in result.out


def test_python_dash_m_runs_the_same_main(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["sessionware", "--version"])

    with pytest.raises(SystemExit) as exited:
        runpy.run_module("sessionware", run_name="__main__")

    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("sessionware ")


def test_version(cli) -> None:
    from sessionware import __version__

    assert cli("--version").out.strip() == f"sessionware {__version__}"


def test_help_loads_no_store_model_or_provider_sdk(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from sessionware.cli import main\n"
        "assert main(['--help']) == 0\n"
        "heavy = [m for m in ('pydantic', 'sessionware.core.store', 'openai', 'anthropic', 'litellm')"
        " if m in sys.modules]\n"
        "print(heavy, file=sys.stderr)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=False
    )

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["bogus"],
        ["show"],
        ["sessions", "--format", "xml"],
        ["sessions", "--limit", "0"],
        ["sessions", "--limit", "many"],
        ["show", "x", "--max-chars", "-1"],
        ["stats", "--since", "yesterday"],
        ["export", "x", "--format", "csv"],
        ["import"],
    ],
)
def test_usage_errors_exit_2(cli, argv: list[str]) -> None:
    result = cli(*argv)

    assert result.code == 2
    assert "usage: sessionware" in result.err and "error:" in result.err


@pytest.mark.parametrize("url", ["ftp://host/x", "sqlite:/relative.db", "mysql://db"])
def test_a_store_url_of_unknown_kind_is_a_usage_error(cli, url: str) -> None:
    result = cli("sessions", "--store", url)

    assert result.code == 2
    assert result.err.startswith("sessionware: error: ")


@pytest.mark.parametrize("command", ["show", "export"])
def test_an_unknown_session_exits_3_naming_id_and_store(recorded, run_cli, command: str) -> None:
    result = run_cli(command, "no-such-session", "--store", recorded.url)

    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == f"sessionware: error: session not found: 'no-such-session' in {recorded.path}\n"


@pytest.mark.parametrize("command", [["sessions"], ["show", "x"], ["stats"], ["export", "x"]])
def test_a_missing_store_file_exits_1_and_is_not_created(tmp_path: Path, cli, command: list[str]) -> None:
    path = tmp_path / "absent.db"

    result = cli(*command, "--store", f"sqlite:///{path}")

    assert result.code == 1
    assert f"at {path}: no such file" in result.err
    assert not path.exists()


def test_a_store_that_cannot_be_opened_exits_1_with_its_path(tmp_path: Path, cli) -> None:
    directory = tmp_path / "a-directory.db"
    directory.mkdir()
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("these are not the sessions you are looking for\n" * 100)

    unopenable = cli("sessions", "--store", f"sqlite:///{directory}")
    corrupt = cli("stats", "--store", str(not_sqlite))

    assert unopenable.code == 1 and str(directory) in unopenable.err and "is a folder" in unopenable.err
    assert corrupt.code == 1 and str(not_sqlite) in corrupt.err and "file is not a database" in corrupt.err
    assert not_sqlite.read_text() == "these are not the sessions you are looking for\n" * 100


def test_corrupt_rows_exit_1_as_a_storage_error(recorded, cli) -> None:
    with sqlite3.connect(recorded.path) as db:
        db.execute('UPDATE events SET body = \'{"seq": "x"}\' WHERE seq = 3')
        db.execute("UPDATE sessions SET totals = 'garbage' WHERE id = ?", (recorded.child,))
    db.close()

    shown = cli("show", recorded.parent, "--store", recorded.url)
    listed = cli("sessions", "--store", recorded.url)

    for result in (shown, listed):
        assert result.code == 1
        assert result.err.startswith(
            f"sessionware: error: sqlite storage error during read at {recorded.path}:"
        )
        assert "stored data is corrupt" in result.err


@pytest.mark.slow
def test_the_store_comes_from_the_option_then_the_environment_then_the_working_directory(
    recorded, run_cli, tmp_path: Path
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copy(recorded.path, workdir / "sessionware.db")
    other = tmp_path / "other.db"
    store = open_store(other)
    store.exists("x")
    store.close()

    default = run_cli("sessions", "--no-header", cwd=workdir)
    from_env = run_cli("sessions", "--no-header", cwd=workdir, SESSIONWARE_STORE=f"sqlite:///{other}")
    option_wins = run_cli(
        "sessions",
        "--no-header",
        "--store",
        str(workdir / "sessionware.db"),
        cwd=tmp_path,
        SESSIONWARE_STORE=f"sqlite:///{other}",
    )

    assert len(default.stdout.splitlines()) == 2, default.stderr
    assert from_env.returncode == 0 and from_env.stdout == ""
    assert len(option_wins.stdout.splitlines()) == 2


def test_store_option_may_come_before_or_after_the_subcommand(recorded, cli, tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'missing.db'}"

    before = cli("--store", recorded.url, "sessions", "--no-header")
    after_wins = cli("--store", missing, "sessions", "--store", recorded.url, "--no-header")

    assert before.code == 0 and len(before.out.splitlines()) == 2
    assert after_wins.code == 0 and len(after_wins.out.splitlines()) == 2


@pytest.mark.slow
def test_a_terminal_gets_a_table_and_a_pipe_gets_tab_separated_lines(recorded, run_cli) -> None:
    piped = run_cli("sessions", "--store", recorded.url)

    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionware", "sessions", "--store", recorded.url],
        stdout=terminal,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    _, errors = proc.communicate(timeout=60)  # also closes the stderr pipe
    assert proc.returncode == 0, errors
    on_terminal = b"".join(chunks).decode().replace("\r\n", "\n")

    assert "\t" in piped.stdout and "started\t" in piped.stdout
    assert "\t" not in on_terminal
    assert on_terminal.splitlines()[0].split()[:4] == ["id", "started", "(UTC)", "turns"]


def test_a_reader_that_stops_early_is_not_an_error(tmp_path: Path) -> None:
    from sessionware.core.session.enums import EventSource, EventType, Role
    from sessionware.core.session.registry import registry_for

    url = f"sqlite:///{tmp_path / 'long.db'}"
    store = open_store(url)
    state = registry_for(store).open("long")
    state.record_many(
        [
            (EventType.MESSAGE, EventSource.USER, {"role": Role.USER, "content": "x" * 200})
            for _ in range(2000)
        ]
    )
    store.close()

    proc = subprocess.Popen(
        [sys.executable, "-m", "sessionware", "show", "long", "--store", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"seq\t")
    proc.stdout.close()  # like `| head -1`
    code = proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    proc.stderr.close()

    assert code == 0, err
    assert "Traceback" not in err


class _ClosedPipe(io.StringIO):
    """Standard output whose reader has gone away, as after ``| head``."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_in_process_returns_0_quietly(recorded, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())

    code = main(["sessions", "--store", recorded.url])

    assert code == 0
    assert capsys.readouterr().err == ""
