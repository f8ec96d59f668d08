"""OpenAI: chat completions, embeddings and the Responses API, for ``OpenAI``,
``AsyncOpenAI`` and their Azure twins. The ``openai`` SDK is imported only when a client
is wrapped or instrumented.
"""
