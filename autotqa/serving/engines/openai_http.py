"""Any OpenAI-compatible chat server over HTTP: a ``vllm serve`` deployment, llama.cpp's servers, OpenAI.

Servers differ in the details this engine must get right:

- **Structured output.** OpenAI and vLLM take ``response_format={"type": "json_schema", ...}``;
  llama.cpp's servers (llama-cpp-python's and ``llama-server``) take ``{"type": "json_object",
  "schema": ...}``. ``server_flavor="auto"`` reads ``owned_by`` from ``/v1/models`` once, and if a
  ``json_schema`` request is still refused (400/422) it retries once with ``json_object`` and
  remembers that for the rest of the run.
- **Priority** is a vLLM extension (body field ``priority``, lower runs first); it is sent only to vLLM
  (other servers may reject unknown fields).
- **Reuse accounting** comes from ``usage.prompt_tokens_details.cached_tokens`` where the server
  reports it (vLLM, OpenAI); streaming asks for usage with ``stream_options.include_usage``.
- **Routing.** The session id travels as ``user`` and as ``X-Session-Id`` (with ``X-Program-Id`` and
  ``X-Agent``) so a router in front of several replicas can keep a session on the replica that holds
  its prefix (DESIGN.md, scale-out).
- **Warm-ups.** The server's prefix cache is invisible from here, so a session's prefix counts as
  held for ``rewarm_after_s`` after the last request that carried it (``warm_prefixes.py``): a
  question within that time sends no warm-up request of its own.

Retries are bounded: a connection that cannot be opened is retried by httpx's own transport
(``AsyncHTTPTransport(retries=...)``, with its exponential backoff); what the transport cannot
retry — 5xx answers and a connection dropped mid-request — is retried here with backoff. A
server that stays unreachable becomes one :class:`EngineError` that says where and what to do.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx

from ...config import EngineConfig
from ...errors import EngineError
from ..engine import Engine
from ..layout import to_messages
from ..types import FinishReason, GenerationRequest, GenerationResult, PromptSegments, StreamChunk, Timings, Usage
from ..warm_prefixes import IdlePrefixes

Flavor = Literal["openai", "vllm", "llamacpp", "auto"]
_OWNED_BY = {"vllm": "vllm", "llamacpp": "llamacpp", "me": "llamacpp"}  # "me": llama-cpp-python
_RETRY_STATUS = {500, 502, 503, 504}


def normalize_base_url(url: str) -> str:
    """``http://host:8000`` -> ``http://host:8000/v1``; a URL that names a path is kept as given.

    >>> normalize_base_url("http://127.0.0.1:8000/")
    'http://127.0.0.1:8000/v1'
    >>> normalize_base_url("https://api.example.com/openai/v1")
    'https://api.example.com/openai/v1'
    """
    url = url.rstrip("/")
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


def _strict_ok(schema: Any) -> bool:
    """OpenAI's strict mode needs every object closed and every property required."""
    if isinstance(schema, dict):
        if schema.get("type") == "object" and "properties" in schema:
            if schema.get("additionalProperties") is not False:
                return False
            if set(schema.get("required", [])) != set(schema["properties"]):
                return False
        return all(_strict_ok(v) for v in schema.values())
    if isinstance(schema, list):
        return all(_strict_ok(v) for v in schema)
    return True


def _reason(exc: BaseException) -> str:
    """A short cause for a transport error, looking through the chain (anyio wraps the OSError)."""
    seen: BaseException | None = exc
    texts = []
    while seen is not None and len(texts) < 8:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror):
            return "unknown host"
        texts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    low = " ".join(texts).lower()
    if "refused" in low:
        return "connection refused"
    if "name or service not known" in low or "nodename" in low or "getaddrinfo" in low:
        return "unknown host"
    return texts[0] or type(exc).__name__


def _finish(reason: str | None) -> FinishReason:
    return "length" if reason == "length" else "stop"


class OpenAIEngine(Engine):
    """Chat completions against an OpenAI-compatible server (streaming and not)."""

    name: ClassVar[str] = "openai"
    supports_json_schema: ClassVar[bool] = True

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None, *,
                 server_flavor: Flavor = "auto", timeout_s: float = 120.0, max_retries: int = 3,
                 backoff_s: float = 0.5, max_concurrency: int = 8, seed: int | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, rewarm_after_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base_url = normalize_base_url(base_url)
        self.model = model
        self.api_key = api_key
        self.flavor: Flavor = server_flavor
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_concurrency = max_concurrency
        self.seed = seed
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._probed = False
        self.prefixes = IdlePrefixes(rewarm_after_s, clock=clock)

    @classmethod
    def from_config(cls, cfg: EngineConfig, **options: Any) -> OpenAIEngine:
        if not cfg.base_url:
            raise EngineError("the openai engine needs a server URL",
                              hint="pass --base-url http://HOST:PORT/v1 (e.g. a `vllm serve` deployment)")
        return cls(cfg.base_url, cfg.model, cfg.api_key, timeout_s=cfg.request_timeout_s,
                   seed=cfg.seed, rewarm_after_s=cfg.rewarm_after_s, **options)

    # -- HTTP plumbing -------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        # An AsyncClient's pool is bound to the loop that first used it; tests and CLIs may run
        # several asyncio.run() calls, so a new loop gets a new client.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            transport = self._transport or httpx.AsyncHTTPTransport(retries=self.max_retries)
            self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                             timeout=self.timeout_s, transport=transport)
            self._client_loop = loop
        return self._client

    def _unreachable(self, exc: Exception) -> EngineError:
        return EngineError(f"cannot reach the model server at {self.base_url} ({_reason(exc)}) "
                           "— start it or check --base-url")

    def _timed_out(self) -> EngineError:
        return EngineError(f"the model server at {self.base_url} did not answer within {self.timeout_s:g} s",
                           hint="the server may be overloaded; raise request_timeout_s or check it")

    def _http_error(self, resp: httpx.Response, body: bytes) -> EngineError:
        try:
            detail = json.loads(body)
            detail = detail.get("error", detail) if isinstance(detail, dict) else detail
            detail = detail.get("message", detail) if isinstance(detail, dict) else detail
        except ValueError:
            detail = body.decode(errors="replace")[:500] or "(empty body)"
        err = EngineError(f"the model server at {self.base_url} answered {resp.status_code}: {detail}")
        err.status_code = resp.status_code  # type: ignore[attr-defined]
        return err

    async def _send(self, method: str, path: str, *, json_body: dict[str, Any] | None = None,
                    headers: dict[str, str] | None = None, stream: bool = False) -> httpx.Response:
        """Send with bounded retries; a returned response is 2xx (streamed responses still open)."""
        client = self._http()
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                req = client.build_request(method, path, json=json_body, headers=headers)
                resp = await client.send(req, stream=stream)
            except httpx.TimeoutException as exc:
                raise self._timed_out() from exc
            except httpx.ConnectError as exc:  # the transport has already retried opening it
                raise self._unreachable(exc) from exc
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if last:
                    raise self._unreachable(exc) from exc
            else:
                if resp.is_success:
                    return resp
                body = await resp.aread()
                await resp.aclose()
                if resp.status_code not in _RETRY_STATUS or last:
                    raise self._http_error(resp, body)
            await asyncio.sleep(self.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _probe(self) -> None:
        """Learn the model name and server flavor from ``/v1/models`` (once)."""
        if self._probed or (self.model and self.flavor != "auto"):
            return
        try:
            resp = await self._send("GET", "/models")
        except EngineError as err:
            if self.model and 400 <= getattr(err, "status_code", 0) < 500:
                # No model list (some gateways): assume OpenAI's dialect; a json_schema refusal
                # still falls back to json_object below.
                self.flavor, self._probed = "openai", True
                return
            raise
        data = resp.json().get("data") or []
        if not self.model:
            if not data:
                raise EngineError(f"the model server at {self.base_url} lists no models",
                                  hint="pass --model NAME")
            self.model = str(data[0]["id"])
        if self.flavor == "auto":
            owned = next((str(m.get("owned_by", "")) for m in data if m.get("id") == self.model),
                         str(data[0].get("owned_by", "")) if data else "")
            self.flavor = _OWNED_BY.get(owned.lower(), "openai")  # type: ignore[assignment]
        self._probed = True

    # -- request bodies ------------------------------------------------------------------------

    def _response_format(self, request: GenerationRequest) -> dict[str, Any] | None:
        schema = request.schema_dict()
        if schema is None:
            return None
        if self.flavor == "llamacpp":
            return {"type": "json_object", "schema": schema}
        title = request.output_model.__name__ if request.output_model else schema.get("title", "output")
        return {"type": "json_schema", "json_schema": {
            "name": re.sub(r"[^A-Za-z0-9_-]", "_", str(title))[:64] or "output",
            "schema": schema, "strict": _strict_ok(schema)}}

    def _body(self, request: GenerationRequest, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in to_messages(request.segments)],
            # A prefill is one token: the server computes (and caches) the prompt's KV state.
            "max_tokens": 1 if request.prefill_only else request.max_tokens,
            "temperature": request.temperature,
            "stream": stream,
            "user": request.session_id,
        }
        if request.stop and not request.prefill_only:
            body["stop"] = list(request.stop)
        if self.seed is not None:
            body["seed"] = self.seed
        if stream:
            body["stream_options"] = {"include_usage": True}
        fmt = None if request.prefill_only else self._response_format(request)
        if fmt is not None:
            body["response_format"] = fmt
        if self.flavor == "vllm":
            body["priority"] = request.priority
        elif self.flavor == "llamacpp":
            # llama.cpp servers default to repeat_penalty 1.1, which OpenAI's API has no notion of
            # (and which derails greedy lists such as counts); ask for the neutral value.
            body["repeat_penalty"] = 1.0
        return body

    @staticmethod
    def _headers(request: GenerationRequest) -> dict[str, str]:
        # No X-Request-Id: servers that validate it as a UUID (starlette-context) answer 400.
        return {"X-Session-Id": request.session_id, "X-Program-Id": request.program_id,
                "X-Agent": request.agent}

    async def _post_chat(self, request: GenerationRequest, *, stream: bool) -> httpx.Response:
        await self._probe()
        try:
            resp = await self._send("POST", "/chat/completions", json_body=self._body(request, stream=stream),
                                    headers=self._headers(request), stream=stream)
        except EngineError as err:
            status = getattr(err, "status_code", None)
            if not (status in (400, 422) and request.schema_dict() is not None and self.flavor != "llamacpp"):
                raise
            # A server that does not know json_schema: fall back to json_object + schema, once.
            self.flavor = "llamacpp"
            resp = await self._send("POST", "/chat/completions", json_body=self._body(request, stream=stream),
                                    headers=self._headers(request), stream=stream)
        self.prefixes.touch(request.session_id, request.segments)  # the server took the prompt
        return resp

    def _result(self, request: GenerationRequest, text: str, reason: str | None,
                usage: dict[str, Any] | None, t0: float, ttft: float) -> GenerationResult:
        usage = usage or {}
        details = usage.get("prompt_tokens_details") or {}
        if request.prefill_only:
            text, finish, completion = "", "prefill", 0
        else:
            finish, completion = _finish(reason), int(usage.get("completion_tokens") or 0)
        return GenerationResult(
            request_id=request.request_id, text=text, finish_reason=finish,  # type: ignore[arg-type]
            usage=Usage(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                        reused_tokens=int(details.get("cached_tokens") or 0), completion_tokens=completion),
            timings=Timings(ttft_s=ttft, total_s=time.perf_counter() - t0), agent=request.agent,
            program_id=request.program_id, session_id=request.session_id)

    # -- Engine API ----------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Non-streaming: one JSON answer, usage always included."""
        t0 = time.perf_counter()
        resp = await self._post_chat(request, stream=False)
        try:
            data = resp.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise EngineError(f"the model server at {self.base_url} sent an unreadable answer: {exc}") from exc
        elapsed = time.perf_counter() - t0
        return self._result(request, text, choice.get("finish_reason"), data.get("usage"), t0, elapsed)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        t0 = time.perf_counter()
        ttft = 0.0
        parts: list[str] = []
        reason: str | None = None
        usage: dict[str, Any] | None = None
        resp = await self._post_chat(request, stream=True)
        try:
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                event = json.loads(payload)
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or []:
                    reason = choice.get("finish_reason") or reason
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece and not request.prefill_only:
                        if not parts:
                            ttft = time.perf_counter() - t0
                        parts.append(piece)
                        yield StreamChunk(text=piece)
        except httpx.TimeoutException as exc:
            raise self._timed_out() from exc
        except (httpx.TransportError, ValueError) as exc:
            raise EngineError(f"the stream from the model server at {self.base_url} broke: {_reason(exc)}") from exc
        finally:
            await resp.aclose()
        yield StreamChunk(result=self._result(request, "".join(parts), reason, usage, t0,
                                              ttft or time.perf_counter() - t0))

    def holds_prefix(self, session_id: str, prefix: PromptSegments) -> bool:
        """Sent within ``rewarm_after_s`` (the server may have evicted it since; we cannot know)."""
        return self.prefixes.warm(session_id, prefix)

    def end_session(self, session_id: str) -> None:
        self.prefixes.forget(session_id)

    async def close(self) -> None:
        if self._client is not None:
            try:
                await self._client.aclose()
            except RuntimeError:  # its loop is gone; nothing left to release
                pass
            self._client = None
