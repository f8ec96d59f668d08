"""Zero-code settings: from the ``run`` options to the program's environment, and from
the environment to ``instrument()``'s arguments."""

from __future__ import annotations

import doctest
import importlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import sessionware
from sessionware._bootstrap import BOOTSTRAP_DIR
from sessionware.adapters.engine.guard import set_strict
from sessionware.adapters.instrument import default_instrumentor, is_instrumented, zero_code
from sessionware.adapters.instrument.zero_code import ZeroCodeSettings, absolute_store
from sessionware.cli import parser
from sessionware.cli.run import child_environment
from sessionware.core.errors import InvalidSessionOperation


def test_zero_code_and_the_command_share_the_store_variable_and_default_file():
    assert zero_code.STORE_ENV == parser.STORE_ENV
    assert zero_code.DEFAULT_STORE_URL == parser.DEFAULT_STORE_URL


def test_without_settings_calls_go_to_sessionware_db_in_the_working_directory():
    settings = ZeroCodeSettings.from_environ({}, cwd="/srv/app")

    assert settings == ZeroCodeSettings(store="sqlite:////srv/app/sessionware.db")


@pytest.mark.parametrize(
    ("url", "absolute"),
    [
        ("sqlite:///data/calls.db", "sqlite:////srv/app/data/calls.db"),
        ("sqlite:////var/calls.db", "sqlite:////var/calls.db"),
        ("calls.sqlite", "/srv/app/calls.sqlite"),
        ("memory://", "memory://"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
    ],
)
def test_relative_sqlite_paths_are_fixed_at_start(url: str, absolute: str):
    assert absolute_store(url, "/srv/app") == absolute


def test_every_setting_is_read():
    settings = ZeroCodeSettings.from_environ(
        {
            "SESSIONWARE_STORE": "memory://",
            "SESSIONWARE_SESSION": " nightly ",
            "SESSIONWARE_PROVIDERS": "openai, litellm",
            "SESSIONWARE_PROPAGATE": "yes",
        },
        cwd="/",
    )

    assert settings == ZeroCodeSettings(
        store="memory://", session_id="nightly", providers=("openai", "litellm"), propagate=True
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SESSIONWARE_BUDGET": "lots"}, "whole number"),
        ({"SESSIONWARE_BUDGET": "4000"}, "managed mode"),
        ({"SESSIONWARE_MODE": "turbo"}, "observe' or 'managed'"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str):
    with pytest.raises(InvalidSessionOperation, match=message):
        ZeroCodeSettings.from_environ(env, cwd="/")


def test_managed_mode_takes_a_budget():
    settings = ZeroCodeSettings.from_environ(
        {"SESSIONWARE_MODE": "Managed", "SESSIONWARE_BUDGET": "4000"}, cwd="/"
    )

    assert (settings.mode, settings.budget) == ("managed", 4000)


def test_the_kill_switch_keeps_the_environment_as_it_was():
    environ = {"SESSIONWARE_DISABLED": "1", "PYTHONPATH": "/opt/lib"}

    assert (
        child_environment(environ, store="memory://", session="s", mode=None, budget=None, propagate=True)
        == environ
    )


def test_the_program_gets_the_bootstrap_first_and_the_settings():
    env = child_environment(
        {"PYTHONPATH": "/opt/lib", "HOME": "/root"},
        store="sqlite:///x.db",
        session="nightly",
        mode="observe",
        budget=None,
        propagate=True,
    )

    assert env["PYTHONPATH"] == BOOTSTRAP_DIR + os.pathsep + "/opt/lib"
    assert os.path.isfile(os.path.join(BOOTSTRAP_DIR, "sitecustomize.py"))
    assert {k: v for k, v in env.items() if k.startswith("SESSIONWARE_")} == {
        "SESSIONWARE_STORE": "sqlite:///x.db",
        "SESSIONWARE_SESSION": "nightly",
        "SESSIONWARE_MODE": "observe",
        "SESSIONWARE_PROPAGATE": "1",
    }
    assert env["HOME"] == "/root"


def test_the_docstring_examples_hold():
    result = doctest.testmod(
        importlib.import_module("sessionware.adapters.instrument.zero_code"), optionflags=doctest.ELLIPSIS
    )

    assert result.attempted > 0
    assert result.failed == 0


@pytest.fixture
def restore_instrumentation() -> Iterator[None]:
    yield
    if is_instrumented():
        sessionware.uninstrument()
    set_strict(None)


def test_start_instruments_the_interpreter_from_the_environment(
    tmp_path: Path, restore_instrumentation: None
):
    import anthropic  # noqa: F401  (loaded: patched at once, not by a post-import hook)

    environ = {"SESSIONWARE_STORE": f"sqlite:///{tmp_path}/calls.db", "SESSIONWARE_PROVIDERS": "anthropic"}

    assert zero_code.start(environ) is True
    assert is_instrumented()
    assert default_instrumentor().patched() == [
        "anthropic.Anthropic._request",
        "anthropic.AsyncAnthropic._request",
    ]


def test_the_kill_switch_leaves_the_interpreter_alone(restore_instrumentation: None):
    assert zero_code.start({"SESSIONWARE_DISABLED": "true", "SESSIONWARE_MODE": "nonsense"}) is False
    assert not is_instrumented()


def test_propagating_hands_children_an_absolute_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_instrumentation: None
):
    monkeypatch.chdir(tmp_path)
    environ = {"SESSIONWARE_PROPAGATE": "1", "SESSIONWARE_PROVIDERS": "anthropic"}

    zero_code.start(environ)

    assert environ["SESSIONWARE_STORE"] == f"sqlite:///{tmp_path}/sessionware.db"
