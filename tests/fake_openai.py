"""A loopback server speaking the OpenAI chat-completions API, scripted for Hello Fleet's agents,
so the demo's real-model path (`fleetforge demo --model`) runs offline in tests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DRAFT = "# Fake topic\n\n## alpha\n- a fact\n\n## beta\n- a fact\n\n## gamma\n- a fact\n"


def _call(call_id: str, name: str, **arguments: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}  # fmt: skip


def _reply(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages", [])
    tools = {t["function"]["name"] for t in body.get("tools", [])}
    answered = any(m.get("role") == "tool" for m in messages)
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if body.get("response_format"):  # the planner
        message["content"] = json.dumps({"sections": ["alpha", "beta", "gamma"]})
    elif "workspace_write" in tools and not answered:  # the writer saves its draft
        message["tool_calls"] = [_call("call_w", "workspace_write", path="draft.md", content=DRAFT)]
    elif "workspace_write" in tools:
        message["content"] = "draft.md"
    elif "workspace_read" in tools and not answered:  # the researcher reads the outline
        message["tool_calls"] = [_call("call_r", "workspace_read", path="outline.md")]
    else:
        message["content"] = json.dumps({"facts": {"alpha": ["a fact"], "beta": ["a fact"]}})
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 10, "total_tokens": 40},
    }


async def completions(request: Request) -> JSONResponse:
    return JSONResponse(_reply(await request.json()))


@contextmanager
def fake_openai() -> Iterator[str]:
    """Serve on a free loopback port; yield the base URL (``http://127.0.0.1:PORT/v1``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake OpenAI server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
