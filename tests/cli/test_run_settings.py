"""Zero-code settings: from the ``run`` options to the program's environment, and from
the environment to ``instrument()``'s arguments."""

from __future__ import annotations

import doctest
import importlib
import os

import pytest

from sessionware._bootstrap import BOOTSTRAP_DIR
from sessionware.adapters import zero_code
from sessionware.adapters.zero_code import ZeroCodeSettings, absolute_store
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
        importlib.import_module("sessionware.adapters.zero_code"), optionflags=doctest.ELLIPSIS
    )

    assert result.attempted > 0
    assert result.failed == 0
