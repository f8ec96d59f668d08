"""An app behind the proxy: the openai and anthropic SDKs, pointed at it, nothing else.

python examples/proxy/client.py [http://127.0.0.1:4000]
"""

from __future__ import annotations

import sys

import anthropic
import openai

KEY = "sk-example-master-key"


def main(base_url: str) -> None:
    chat = openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY)
    history = [{"role": "system", "content": "You are a terse travel agent."}]
    for question in ("A weekend in Lisbon?", "And in the rain?"):
        history.append({"role": "user", "content": question})
        # No session named: the proxy's hook threads the conversation by its opening.
        reply = chat.chat.completions.create(model="gpt-4o-mini", messages=history)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
        print("chat:", reply.choices[0].message.content)

    stream = chat.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream a haiku."}],
        stream=True,
        extra_headers={"x-litellm-session-id": "ticket-42"},  # a session named by header
    )
    print("stream:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))

    answer = chat.responses.create(
        model="gpt-4o-mini",
        input="Summarise the trip.",
        extra_body={"litellm_metadata": {"session_id": "ticket-43"}},  # or by metadata
    )
    print("responses:", answer.output_text)

    claude = anthropic.Anthropic(base_url=base_url, api_key=KEY)
    with claude.messages.stream(
        model="claude-haiku-4-5",
        max_tokens=200,
        messages=[{"role": "user", "content": "One packing tip."}],
        extra_headers={"x-litellm-session-id": "ticket-44"},
    ) as reader:
        print("messages:", "".join(reader.text_stream))


def managed_demo(base_url: str) -> None:
    """A long conversation, resent whole each turn as apps do, to a proxy in managed mode:
    the proxy sends the model the context built inside its budget, and serves the memory
    call that the "recall:" question makes the (fake) model ask for."""
    chat = openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY)
    history = [{"role": "system", "content": "You are a patient archivist."}]
    for day in range(60):
        note = f"Day {day}: the courier brought crate {day * 7} and a letter about the harbour."
        history += [{"role": "user", "content": note}, {"role": "assistant", "content": f"Filed day {day}."}]
    history.append({"role": "user", "content": "recall: crate 21"})
    reply = chat.chat.completions.create(
        model="gpt-4o-mini", messages=history, metadata={"session_id": "archive-1"}
    )
    print(f"managed: the app sent {len(history)} messages; the answer:", reply.choices[0].message.content)
    stream = chat.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            *history,
            {"role": "assistant", "content": reply.choices[0].message.content},
            {"role": "user", "content": "recall: the harbour letter"},
        ],
        metadata={"session_id": "archive-1"},
        stream=True,
    )
    print("managed stream:", "".join(c.choices[0].delta.content or "" for c in stream if c.choices))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4000")
