"""Anthropic Messages (``messages.*``, ``beta.messages.*``) for ``Anthropic`` and
``AsyncAnthropic``. The ``anthropic`` SDK is imported only when a client is wrapped or
instrumented.
"""
