"""The curated public surface: sorted, every name resolves, and importing it is cheap and inert."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import sessionware

PROVIDER_SDKS = ("openai", "anthropic", "litellm", "httpx2", "redis", "genai_prices", "tiktoken")


def test_all_is_sorted_and_unique() -> None:
    assert sessionware.__all__ == sorted(sessionware.__all__)
    assert len(set(sessionware.__all__)) == len(sessionware.__all__)
    assert dir(sessionware) == sessionware.__all__


@pytest.mark.parametrize("name", sessionware.__all__)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(sessionware, name)
    assert value is not None
    if name != "__version__":
        assert getattr(value, "__name__", name) == name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sessionware.nope  # noqa: B018


IMPORT_PROBE = """
import json, os, sys, threading
before_env = dict(os.environ)
before_threads = threading.active_count()
import sessionware
after_import = sorted(m for m in sys.modules if m.split(".")[0] in {sdks})
sessionware.SessionManager, sessionware.track_conversation, sessionware.Store, sessionware.TokenUsage
after_touch = sorted(m for m in sys.modules if m.split(".")[0] in {sdks})
print(json.dumps({{
    "after_import": after_import,
    "after_touch": after_touch,
    "env_changed": before_env != dict(os.environ),
    "threads": threading.active_count() - before_threads,
    "cwd_files": sorted(os.listdir(".")),
}}))
"""


def test_importing_the_package_imports_no_provider_sdk_and_has_no_side_effects(tmp_path: object) -> None:
    probe = IMPORT_PROBE.format(sdks=set(PROVIDER_SDKS))
    done = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["after_import"] == []
    # Touching the core facade may not pull in an SDK, a store driver or the price library either.
    assert report["after_touch"] == []
    assert report == {**report, "env_changed": False, "threads": 0, "cwd_files": []}
