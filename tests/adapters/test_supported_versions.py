"""One source of the supported SDK versions: the code's ranges, pyproject.toml's extras and
the README name the same ranges; a version outside them warns once."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

import sessionware
from sessionware.adapters.fakes import FakeOpenAI
from sessionware.adapters.instrument.versions import supported_range
from sessionware.adapters.providers import Provider, provider_named

ROOT = Path(__file__).resolve().parents[2]


def extras() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: dict[str, list[str]] = config["project"]["optional-dependencies"]
    return found


@pytest.mark.parametrize("provider", list(Provider))
def test_pyproject_extras_name_the_codes_range(provider: Provider):
    row = provider_named(provider)
    assert row is not None and row.versions is not None
    wanted = row.versions.describe()
    named = [
        re.sub(r"\[.*?\]", "", req)
        for reqs in extras().values()
        for req in reqs
        if re.match(rf"{provider.value}(\[|>|<|=)", req)
    ]
    assert named, f"no extra names {provider.value}"
    assert all(req == f"{provider.value}{wanted}" for req in named), named


@pytest.mark.parametrize("provider", list(Provider))
def test_the_readme_names_the_codes_range(provider: Provider):
    assert f"`{supported_range(provider)}`" in (ROOT / "README.md").read_text()


def test_the_installed_sdks_are_in_range():
    for provider, module in ((Provider.OPENAI, openai), (Provider.ANTHROPIC, anthropic)):
        row = provider_named(provider)
        assert row is not None and row.versions is not None
        assert row.versions.contains(tuple(int(p) for p in module.__version__.split(".")[:3]))


def test_wrapping_a_client_of_an_unsupported_version_warns_once_and_records(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(openai, "__version__", "1.99.0")
    api = FakeOpenAI()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            client = sessionware.wrap(
                openai.OpenAI(api_key="k", http_client=httpx.Client(transport=api.transport())),
                store="memory://",
            )
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])

    lines = [r.getMessage() for r in caplog.records if "1.99.0" in r.getMessage()]
    assert lines == [lines[0]] and "openai>=2.20,<4" in lines[0]
