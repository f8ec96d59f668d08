"""Imported first by the LiteLLM test modules: they skip, whole, where LiteLLM is not
installed (the newest-SDK environment, ``make test-latest``)."""

from __future__ import annotations

import pytest

pytest.importorskip("litellm", reason="LiteLLM is not installed in this environment")
