"""An MCP server for tests, built on the official SDK and run as its own process, over stdio or streamable HTTP.

Its tools have the shapes real servers have: dotted and non-ASCII names, a parameter typed `Any` (no JSON type,
which Kimi refuses), an error result, a slow tool, a huge output.

    python -m tests.mcp_server stdio
    python -m tests.mcp_server http PORT [TOKEN]
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer

server = MCPServer("kimibot-test-tickets")


@server.tool(name="tickets.lookup", description="Look up a support ticket by number.")
def lookup(number: int) -> str:
    return f"Ticket {number}: login page shows a blank screen after SSO (status: open, owner: dana)."


@server.tool(name="annotate", description="Attach a free-form note to a ticket.")
def annotate(number: int, note: Any) -> str:
    return f"Noted on ticket {number}: {note!r}"


@server.tool(name="résumé", description="Summarise the ticket queue.")
def queue_summary() -> str:
    return "3 open tickets, 1 waiting on the customer."


@server.tool(name="break", description="Always fails.")
def fail() -> str:
    raise ValueError("the ticket database is read-only today")


@server.tool(name="slow", description="Takes its time.")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@server.tool(name="dump", description="Exports every ticket.")
def dump() -> str:
    return "ticket line\n" * 10_000


def main(argv: list[str]) -> None:
    if argv[:1] == ["http"]:
        import uvicorn
        from starlette.middleware.base import BaseHTTPMiddleware
        from starlette.responses import Response

        port, token = int(argv[1]), (argv[2] if len(argv) > 2 else "")
        app = server.streamable_http_app()

        async def require_token(request: Any, call_next: Any) -> Any:
            if token and request.headers.get("authorization") != f"Bearer {token}":
                return Response("unauthorized", status_code=401)
            return await call_next(request)

        app.add_middleware(BaseHTTPMiddleware, dispatch=require_token)
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    else:
        server.run("stdio")


if __name__ == "__main__":
    main(sys.argv[1:])
