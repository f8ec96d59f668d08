"""A tiny MCP server over stdio, for ``examples/tools_chuk.py`` (which starts it itself).

It serves one tool, ``city_population``, with the ``MCPServer`` of ``chuk-mcp`` (the MCP
library the tool engine already depends on): JSON-RPC messages, one per line, on stdin
and stdout. Offline: the figures are a small table.

    python examples/tools_mcp_server.py      # then speak MCP on its stdin/stdout
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from chuk_mcp.protocol.messages.json_rpc_message import JSONRPCMessage
from chuk_mcp.protocol.types.capabilities import ServerCapabilities, ToolsCapability
from chuk_mcp.server import MCPServer

POPULATION = {"lisbon": 545_000, "porto": 232_000, "paris": 2_103_000, "oslo": 709_000}


async def city_population(city: str) -> dict[str, Any]:
    """The population of a city (within its city limits)."""
    people = POPULATION.get(city.strip().lower())
    if people is None:
        raise LookupError(f"no population figure for {city!r}; known cities: {', '.join(sorted(POPULATION))}")
    return {"city": city, "population": people, "source": "offline table"}


def make_server() -> MCPServer:
    server = MCPServer(
        "demo-cities", capabilities=ServerCapabilities(tools=ToolsCapability(listChanged=False))
    )
    server.register_tool(
        "city_population",
        city_population,
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        description="The population of a city (within its city limits).",
    )
    return server


async def serve(server: MCPServer) -> None:
    """Answer JSON-RPC messages read from stdin, one per line, until stdin closes."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    session: str | None = None
    while line := await reader.readline():
        if not line.strip():
            continue
        message = JSONRPCMessage.model_validate(json.loads(line))
        response, new_session = await server.protocol_handler.handle_message(message, session)
        session = new_session or session
        if response is not None:
            sys.stdout.write(response.model_dump_json(exclude_none=True) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve(make_server()))
