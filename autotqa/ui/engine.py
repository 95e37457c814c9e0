"""Build the engine a CLI command runs with, including the file-driven scripted test double.

Real engines (``local``, ``openai``, ``vllm``) come from the serving factory. The ``scripted`` kind
is a **test double** for end-to-end tests of the command line (CliRunner and pseudo-terminal tests):
it never calls a model. Its replies come from the JSON file named by ``AUTOTQA_SCRIPTED_REPLIES``,
in one of two shapes:

* a list, consumed in order by whichever agent asks next::

      ["{\\"steps\\": [\\"count customers\\"]}", "SELECT count(*) FROM customers", ...]

* per agent, each list consumed in order by that agent (agent names match case-insensitively;
  ``"*"`` serves any agent whose own list is missing or used up)::

      {"by_agent": {"planner": [...], "engineer": [...], "critic": [...], "*": [...]}}

An entry is a reply string or ``{"text": "...", "delay_s": 5}``; the delay is an ``asyncio.sleep``
before the reply, so a test can interrupt a question in flight (Ctrl-C in ``autotqa chat``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import EngineConfig
from ..errors import ConfigError, EngineError
from ..serving.engine import Engine
from ..serving.engines.scripted import ScriptedEngine
from ..serving.types import GenerationRequest, StreamChunk

REPLIES_ENV = "AUTOTQA_SCRIPTED_REPLIES"


@dataclass(frozen=True)
class ScriptedReply:
    text: str
    delay_s: float = 0.0


def _entry(raw: Any, where: str) -> ScriptedReply:
    if isinstance(raw, str):
        return ScriptedReply(raw)
    if isinstance(raw, dict) and isinstance(raw.get("text"), str):
        delay = raw.get("delay_s", 0)
        if isinstance(delay, int | float) and delay >= 0:
            return ScriptedReply(raw["text"], float(delay))
    raise ConfigError(f"{where}: a reply must be a string or {{\"text\": str, \"delay_s\": number}}")


class ReplyScript:
    """The replies of one scripted run, handed out in order (per agent when the file says so)."""

    def __init__(self, queues: Mapping[str, list[ScriptedReply]], source: str) -> None:
        self._queues = {name.lower(): list(items) for name, items in queues.items()}
        self.source = source

    @classmethod
    def from_file(cls, path: Path) -> ReplyScript:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"scripted replies file {path} does not exist (named by {REPLIES_ENV})",
                              hint=f"point {REPLIES_ENV} at a JSON list of replies") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read scripted replies {path}: {exc}",
                              hint="the file must be JSON: a list of strings or {\"by_agent\": {...}}") from None
        if isinstance(data, list):
            return cls({"*": [_entry(r, f"{path}[{i}]") for i, r in enumerate(data)]}, str(path))
        if isinstance(data, dict) and isinstance(data.get("by_agent"), dict):
            queues: dict[str, list[ScriptedReply]] = {}
            for agent, items in data["by_agent"].items():
                if not isinstance(items, list):
                    raise ConfigError(f"{path}: by_agent.{agent} must be a list of replies")
                queues[agent] = [_entry(r, f"{path} by_agent.{agent}[{i}]") for i, r in enumerate(items)]
            return cls(queues, str(path))
        raise ConfigError(f"{path}: expected a list of replies or {{\"by_agent\": {{...}}}}")

    def take(self, agent: str) -> ScriptedReply:
        """The next reply for ``agent``; running out is an :class:`EngineError` naming the agent."""
        for key in (agent.lower(), "*"):
            queue = self._queues.get(key)
            if queue:
                return queue.pop(0)
        raise EngineError(f"scripted replies in {self.source} ran out at a request of agent {agent!r}",
                          hint="add replies to the file (the scripted engine is a test double)")


class FileScriptedEngine(ScriptedEngine):
    """A :class:`ScriptedEngine` fed by a :class:`ReplyScript`, with cancellable per-reply delays.

    ``started`` names the agent of every request as it arrives, before any delay (``requests``
    only lists a request once its reply is produced), so a test can tell a slow call is in flight.
    """

    name = "scripted"

    def __init__(self, script: ReplyScript) -> None:
        super().__init__(fn=self._pending_text)
        self.script = script
        self._pending: str | None = None
        self.started: list[str] = []

    def _pending_text(self, request: GenerationRequest) -> str:
        text, self._pending = self._pending or "", None
        return text

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        if not request.prefill_only:
            self.started.append(request.agent)
            reply = self.script.take(request.agent)
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            self._pending = reply.text
        async for chunk in super().stream(request):
            yield chunk


def engine_from_config(config: EngineConfig, env: Mapping[str, str] | None = None) -> Engine:
    """The engine for ``config``: the scripted test double, or whatever the serving factory builds."""
    env = os.environ if env is None else env
    if config.kind == "scripted":
        file = env.get(REPLIES_ENV)
        if not file:
            raise ConfigError(f"engine 'scripted' needs {REPLIES_ENV} (a JSON file of replies)",
                              hint="the scripted engine is a test double; use local, openai or vllm")
        return FileScriptedEngine(ReplyScript.from_file(Path(file)))
    from ..serving.factory import build_engine  # heavy imports only for real engines

    return build_engine(config)
