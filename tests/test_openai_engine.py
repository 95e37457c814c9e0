"""The OpenAI-compatible HTTP engine: request shapes per server flavor (mock transport), retries,
errors against real sockets, and a real llama-cpp-python server (``model`` mark)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import httpx
import pytest
from engine_suite import Answer, EngineCase, EngineConformance, llama_server, model_path, run, segments  # noqa: F401

from autotqa.config import EngineConfig
from autotqa.errors import EngineError
from autotqa.serving.engines.openai_http import OpenAIEngine
from autotqa.serving.factory import build_engine
from autotqa.serving.types import GenerationRequest


def _completion(text: str = "orders", usage: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage or {"prompt_tokens": 300, "completion_tokens": 2,
                               "prompt_tokens_details": {"cached_tokens": 256}}}


class Recorder:
    """A mock server: answers from a list of (status, json) and keeps every request."""

    def __init__(self, answers: list[Any], models: list[dict[str, Any]] | None = None) -> None:
        self.answers = answers
        self.models = models or [{"id": "served-model", "owned_by": "vllm"}]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": self.models})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        if isinstance(body, (bytes, str)):
            return httpx.Response(status, content=body, headers={"content-type": "text/event-stream"})
        return httpx.Response(status, json=body)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith("/chat/completions")]


def _engine(rec: Recorder, **kw: Any) -> OpenAIEngine:
    kw.setdefault("backoff_s", 0.001)
    return OpenAIEngine("http://test:8000", transport=httpx.MockTransport(rec), **kw)


def _req(**kw: Any) -> GenerationRequest:
    kw.setdefault("segments", segments("Name one table."))
    return GenerationRequest(session_id="sess-1", program_id="sess-1/p1", agent="planner", **kw)


def test_vllm_flavor_body_headers_and_usage() -> None:
    rec = Recorder([(200, _completion('{"table": "orders", "rows": 1200}'))])
    eng = _engine(rec)
    r = run(eng.generate(_req(output_model=Answer, priority=2, stop=["```"], max_tokens=20)))
    (models, chat) = rec.requests
    assert models.url.path == "/v1/models" and chat.url.path == "/v1/chat/completions"
    body = rec.bodies()[0]
    assert eng.flavor == "vllm" and body["model"] == "served-model"
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "Answer", "schema": Answer.model_json_schema(), "strict": False}}
    assert (body["priority"], body["user"], body["stop"], body["max_tokens"], body["stream"]) == (
        2, "sess-1", ["```"], 20, False)
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert (chat.headers["x-session-id"], chat.headers["x-program-id"], chat.headers["x-agent"]) == (
        "sess-1", "sess-1/p1", "planner")
    assert (r.usage.prompt_tokens, r.usage.reused_tokens, r.usage.completion_tokens) == (300, 256, 2)
    assert r.text == '{"table": "orders", "rows": 1200}' and r.finish_reason == "stop"


@pytest.mark.parametrize(("owned_by", "flavor"), [("vllm", "vllm"), ("me", "llamacpp"),
                                                   ("llamacpp", "llamacpp"), ("openai", "openai"),
                                                   ("system", "openai")])
def test_auto_flavor_from_owned_by(owned_by: str, flavor: str) -> None:
    rec = Recorder([(200, _completion())], models=[{"id": "m", "owned_by": owned_by}])
    eng = _engine(rec)
    run(eng.generate(_req(output_model=Answer)))
    body = rec.bodies()[0]
    assert eng.flavor == flavor
    assert ("priority" in body) is (flavor == "vllm")
    expected_type = "json_object" if flavor == "llamacpp" else "json_schema"
    assert body["response_format"]["type"] == expected_type
    if flavor == "llamacpp":
        assert body["response_format"]["schema"] == Answer.model_json_schema()
        assert body["repeat_penalty"] == 1.0  # llama.cpp servers default to 1.1
    else:
        assert "repeat_penalty" not in body


def test_strict_only_for_closed_schemas() -> None:
    closed = {"title": "Pick", "type": "object", "properties": {"x": {"type": "integer"}},
              "required": ["x"], "additionalProperties": False}
    rec = Recorder([(200, _completion('{"x": 1}'))])
    run(_engine(rec, model="gpt", server_flavor="openai").generate(_req(json_schema=closed)))
    body = rec.bodies()[0]
    assert body["response_format"]["json_schema"] == {"name": "Pick", "schema": closed, "strict": True}
    assert "priority" not in body and len(rec.requests) == 1  # model and flavor given: no probe


def test_json_schema_refused_falls_back_to_json_object_once() -> None:
    rec = Recorder([(400, {"error": {"message": "unknown response_format json_schema"}}),
                    (200, _completion('{"table": "t", "rows": 1}')),
                    (200, _completion('{"table": "t", "rows": 2}'))])
    eng = _engine(rec, model="m", server_flavor="openai")
    run(eng.generate(_req(output_model=Answer)))
    run(eng.generate(_req(output_model=Answer)))
    types = [b["response_format"]["type"] for b in rec.bodies()]
    assert types == ["json_schema", "json_object", "json_object"]


def test_missing_model_list_means_openai_dialect() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(404, json={"error": "not found"})
        return httpx.Response(200, json=_completion('{"table": "t", "rows": 1}'))

    eng = OpenAIEngine("http://gw/v1", model="m", transport=httpx.MockTransport(handler))
    assert run(eng.generate(_req(output_model=Answer))).text == '{"table": "t", "rows": 1}'
    assert eng.flavor == "openai"


def test_retries_5xx_with_backoff_then_succeeds() -> None:
    rec = Recorder([(503, {"error": "busy"}), (502, {"error": "gateway"}), (200, _completion())])
    r = run(_engine(rec, model="m", server_flavor="openai", max_retries=3).generate(_req()))
    assert r.text == "orders" and len(rec.bodies()) == 3


def test_5xx_gives_up_after_bounded_retries() -> None:
    rec = Recorder([(500, {"error": {"message": "boom"}})] * 3)
    with pytest.raises(EngineError, match=r"answered 500: boom"):
        run(_engine(rec, model="m", server_flavor="openai", max_retries=2).generate(_req()))
    assert len(rec.bodies()) == 3


def test_4xx_is_not_retried() -> None:
    rec = Recorder([(401, {"error": {"message": "bad key"}})])
    with pytest.raises(EngineError, match=r"at http://test:8000/v1 answered 401: bad key"):
        run(_engine(rec, model="m", server_flavor="openai").generate(_req()))
    assert len(rec.bodies()) == 1


def test_dropped_connections_are_retried_then_reported() -> None:
    dropped = httpx.RemoteProtocolError("Server disconnected without sending a response.")
    rec = Recorder([dropped, dropped, (200, _completion())])
    assert run(_engine(rec, model="m", server_flavor="openai").generate(_req())).text == "orders"
    rec = Recorder([dropped] * 3)
    with pytest.raises(EngineError, match=r"cannot reach the model server at http://test:8000/v1 \("):
        run(_engine(rec, model="m", server_flavor="openai", max_retries=2).generate(_req()))
    assert len(rec.requests) == 3


def test_refused_connection_is_reported_once_the_transport_gave_up() -> None:
    # Opening a connection is retried by httpx's transport; a mock transport has no retries.
    rec = Recorder([httpx.ConnectError("[Errno 111] Connection refused"), (200, _completion())])
    with pytest.raises(EngineError) as info:
        run(_engine(rec, model="m", server_flavor="openai", max_retries=2).generate(_req()))
    assert str(info.value) == ("cannot reach the model server at http://test:8000/v1 (connection refused) "
                               "— start it or check --base-url")
    assert len(rec.requests) == 1


def test_a_server_that_starts_late_is_reached_by_transport_retries() -> None:
    """A real socket refuses at first (bound, not listening); httpx's transport retries with backoff
    (0, 0.5, 1 s ...) and reaches it once it listens."""
    import threading

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    body = json.dumps(_completion("late")).encode()

    def serve() -> None:
        time.sleep(0.2)
        srv.listen(1)
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        eng = OpenAIEngine(f"http://127.0.0.1:{srv.getsockname()[1]}", model="m", server_flavor="openai",
                           max_retries=3, timeout_s=10)
        assert run(eng.generate(_req())).text == "late"  # without the transport's retries: refused
    finally:
        thread.join(timeout=5)
        srv.close()


def _sse(events: list[dict[str, Any]]) -> str:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def test_streaming_sse_with_usage() -> None:
    def delta(text: str, finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}

    usage = {"prompt_tokens": 120, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 96}}
    rec = Recorder([(200, _sse([delta("SEL"), delta("ECT"), delta(" 1", "stop"), {"choices": [], "usage": usage}]))])
    eng = _engine(rec, model="m", server_flavor="vllm")

    async def go() -> tuple[list[str], Any]:
        texts, result = [], None
        async for c in eng.stream(_req()):
            texts.append(c.text) if c.result is None else None
            result = c.result or result
        return texts, result

    texts, result = run(go())
    body = rec.bodies()[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert texts == ["SEL", "ECT", " 1"] and result.text == "SELECT 1"
    assert (result.usage.prompt_tokens, result.usage.reused_tokens, result.usage.completion_tokens) == (120, 96, 3)
    assert result.finish_reason == "stop"


def test_prefill_is_one_token_and_reports_prefill() -> None:
    rec = Recorder([(200, _completion("x"))])
    r = run(_engine(rec, model="m", server_flavor="vllm").warm(_req(output_model=Answer)))
    body = rec.bodies()[0]
    assert body["max_tokens"] == 1 and "response_format" not in body
    assert (r.finish_reason, r.text, r.usage.completion_tokens, r.usage.reused_tokens) == ("prefill", "", 0, 256)


def test_unreachable_server_real_socket() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    eng = OpenAIEngine(f"http://127.0.0.1:{port}", max_retries=1, backoff_s=0.01)
    with pytest.raises(EngineError) as info:
        run(eng.generate(_req()))
    assert str(info.value) == (f"cannot reach the model server at http://127.0.0.1:{port}/v1 "
                               "(connection refused) — start it or check --base-url")


def test_timeout_real_socket() -> None:
    with socket.socket() as srv:  # accepts connections (backlog) but never answers
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        eng = OpenAIEngine(f"http://127.0.0.1:{srv.getsockname()[1]}/v1", model="m", server_flavor="openai",
                           timeout_s=0.3)
        with pytest.raises(EngineError, match=r"did not answer within 0\.3 s"):
            run(eng.generate(_req()))


def test_factory_builds_http_engines() -> None:
    eng = build_engine(EngineConfig(kind="vllm", base_url="http://h:8000", model="Qwen"))
    assert isinstance(eng, OpenAIEngine) and eng.flavor == "vllm" and eng.base_url == "http://h:8000/v1"
    eng = build_engine(EngineConfig(kind="openai", base_url="http://h:1/v1", api_key="k", request_timeout_s=7))
    assert (eng.flavor, eng.timeout_s, eng.api_key) == ("auto", 7, "k")
    with pytest.raises(EngineError, match="the openai engine needs a server URL"):
        build_engine(EngineConfig(kind="openai"))


def test_client_survives_several_event_loops() -> None:
    rec = Recorder([(200, _completion()), (200, _completion())])
    eng = _engine(rec, model="m", server_flavor="openai")
    assert asyncio.run(eng.generate(_req())).text == "orders"
    assert asyncio.run(eng.generate(_req())).text == "orders"


@pytest.mark.model
def test_real_llama_server(llama_server: str) -> None:
    eng = OpenAIEngine(llama_server, timeout_s=600)
    r = run(eng.generate(_req(output_model=Answer,
                              segments=segments('Which table holds order totals? Reply as JSON with keys '
                                                '"table" and "rows".'), max_tokens=32)))
    assert eng.flavor == "llamacpp"  # owned_by "me": llama-cpp-python
    assert isinstance(Answer.model_validate_json(r.text), Answer)
    assert r.usage.prompt_tokens > 200 and 1 <= r.usage.completion_tokens <= 32


@pytest.mark.model
class TestOpenAIEngine(EngineConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def engine_case(cls, llama_server: str) -> EngineCase:
        # llama-cpp-python's server reports no cached-token counts, so reuse is not checkable here.
        return EngineCase(OpenAIEngine(llama_server, timeout_s=600), prefix_tokens=lambda seg: 1,
                          reports_reuse=False)
