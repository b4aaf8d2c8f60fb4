"""Offline models for the frameworks that have none of their own fit for scripts.

- :data:`REPLAY_MODEL_INFO`: the ``model_info`` AutoGen's ``ReplayChatCompletionClient`` (and
  ``OpenAIChatCompletionClient`` for an unknown model) needs so agents may call tools;
- :func:`scripted_crewai_llm`: a CrewAI ``BaseLLM`` answering from a list of replies, in CrewAI's
  ReAct text form (``Thought: ...\\nAction: tool\\nAction Input: {...}`` / ``Final Answer: ...``).
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

__all__ = ["REPLAY_MODEL_INFO", "scripted_crewai_llm"]

REPLAY_MODEL_INFO: dict[str, Any] = {
    "vision": False,
    "function_calling": True,
    "json_output": False,
    "family": "unknown",
    "structured_output": False,
}


@cache
def _scripted_class() -> type:
    from fleetforge.adapters.crewai import import_crewai

    crewai = import_crewai()

    class ScriptedLLM(crewai.BaseLLM):  # type: ignore[misc, name-defined]
        """Answers each call with the next scripted reply."""

        def __init__(self, replies: list[str], model: str = "scripted", delay: float = 0.0) -> None:
            super().__init__(model=model)
            self._replies = list(replies)
            self._delay = delay

        def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            # like CrewAI's own LLMs, report each call on the event bus (a custom BaseLLM
            # emits nothing unless it does so itself)
            from crewai.events.types.llm_events import LLMCallType
            from crewai.llms.base_llm import llm_call_context

            owners = {k: kwargs.get(k) for k in ("from_task", "from_agent")}
            with llm_call_context():
                self._emit_call_started_event(messages=messages, **owners)
                if not self._replies:
                    error = "the scripted model has no more replies"
                    self._emit_call_failed_event(error=error, **owners)
                    raise RuntimeError(error)
                reply: str = self._replies.pop(0)
                if self._delay:
                    time.sleep(self._delay)  # a provider's latency (CrewAI calls from a thread)
                self._emit_call_completed_event(
                    response=reply, call_type=LLMCallType.LLM_CALL, messages=messages, **owners
                )
                return reply

        def get_context_window_size(self) -> int:  # the default estimate warns on every call
            return 8192

    return ScriptedLLM


def scripted_crewai_llm(replies: list[str], *, model: str = "scripted", delay: float = 0.0) -> Any:
    """A CrewAI LLM that answers with ``replies`` in order (importing CrewAI quietly), each
    after ``delay`` seconds (a provider's latency, for benchmarks)."""
    return _scripted_class()(replies, model=model, delay=delay)
