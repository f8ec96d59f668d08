"""Virtual memory demo (offline): a long chat stays inside a 2,000-token budget.

Run: python examples/vm_demo.py
"""

from __future__ import annotations

import asyncio

from sessionware import ContextPolicy, SessionManager, VMMode


async def main() -> None:
    sm = SessionManager(
        system_prompt="You are a concise assistant.",
        enable_vm=True,
        vm_config=ContextPolicy(budget=2000, mode=VMMode.RELAXED),
    )
    await sm.user_says("Please always answer in metric units.", pin=True)
    await sm.ai_responds("Will do.", model="gpt-4o-mini")
    await sm.user_says("For the record, the staging database password is TANGO-4411-Z.")
    await sm.ai_responds("Noted.", model="gpt-4o-mini")
    for i in range(300):
        await sm.user_says(f"Turn {i}: what should I pack for day {i} of the hike?")
        await sm.ai_responds(f"For day {i}: water, a map and {i % 5 + 1} snacks.", model="gpt-4o-mini")

    ctx = await sm.build_context(
        incoming_messages=[{"role": "user", "content": "What was the staging password?"}]
    )
    report = ctx.report
    assert report is not None
    print(
        f"{report.turns_total} turns, {len(ctx.messages)} messages,"
        f" {report.tokens} tokens (budget {report.budget})"
    )
    print(f"compactions {report.compactions}, stable prefix {report.stable_prefix_tokens} tokens")
    print("VM tools offered:", [t["function"]["name"] for t in ctx.tools])
    print(
        "search_pages ->",
        await sm.handle_vm_tool_call("search_pages", {"query": "staging database password"}),
    )
    print(
        "metrics:", (await sm.vm_metrics()).model_dump(include={"compactions", "pages_evicted", "searches"})
    )


if __name__ == "__main__":
    asyncio.run(main())
