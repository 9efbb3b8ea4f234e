"""The OpenAI stand-in drives the real livekit openai plugin (LLM, TTS, AgentSession) offline."""

from __future__ import annotations

import openai
import pytest
from livekit.agents import (
    Agent,
    AgentSession,
    APIConnectOptions,
    APIStatusError,
    function_tool,
    llm,
)

from telephony.devtools.standins.openai_server import (
    SAMPLE_RATE,
    OpenAIStandin,
    http_error,
    reply,
    respond,
    tool_call,
    tool_calls,
)

# explicit marks so the tests also run before the project sets asyncio_mode = "auto"
pytestmark = pytest.mark.asyncio

NO_RETRY = APIConnectOptions(max_retry=0)
# AudioEmitter may close a pcm segment with a synthetic 10 ms silent marker frame
MARKER_SLACK = 0.010 + 1e-6


@function_tool
async def lookup_order(order_id: int) -> str:
    """Look up an order by its number."""
    return f"order {order_id} shipped"


def _user_ctx(text: str = "hi") -> llm.ChatContext:
    ctx = llm.ChatContext()
    ctx.add_message(role="user", content=text)
    return ctx


async def _collect(stream: llm.LLMStream) -> tuple[str, list[llm.FunctionToolCall]]:
    text, calls = "", []
    async with stream:
        async for chunk in stream:
            if chunk.delta:
                text += chunk.delta.content or ""
                calls.extend(chunk.delta.tool_calls)
    return text, calls


async def test_chat_streams_scripted_text(openai_server: OpenAIStandin) -> None:
    openai_server.script(reply("Thanks for calling, how can I help?", chunk_chars=4))

    text, calls = await _collect(
        openai_server.llm().chat(chat_ctx=_user_ctx(), conn_options=NO_RETRY)
    )

    assert text == "Thanks for calling, how can I help?"
    assert calls == []
    [request] = openai_server.chat_requests
    assert request.messages[-1] == {"role": "user", "content": "hi"}
    assert request.body["stream_options"] == {"include_usage": True}
    assert not request.used_default


async def test_tool_call_arrives_parsed(openai_server: OpenAIStandin) -> None:
    openai_server.script(tool_call("lookup_order", {"order_id": 1234}, call_id="call_1"))

    _, calls = await _collect(
        openai_server.llm().chat(
            chat_ctx=_user_ctx("where is order 1234?"),
            tools=[lookup_order],
            conn_options=NO_RETRY,
        )
    )

    [call] = calls
    assert (call.name, call.call_id) == ("lookup_order", "call_1")
    assert llm.utils.prepare_function_arguments(fnc=lookup_order, json_arguments=call.arguments)
    assert call.arguments == '{"order_id": 1234}'
    assert openai_server.chat_requests[0].tools == ["lookup_order"]


async def test_parallel_tool_calls_and_leading_text(
    openai_server: OpenAIStandin,
) -> None:
    openai_server.script(
        tool_call("lookup_order", {"order_id": 1}, text="One moment."),
        tool_calls(("lookup_order", {"order_id": 2}), ("lookup_order", {"order_id": 3})),
    )
    model = openai_server.llm()

    text, [first] = await _collect(model.chat(chat_ctx=_user_ctx(), tools=[lookup_order]))
    _, parallel = await _collect(model.chat(chat_ctx=_user_ctx(), tools=[lookup_order]))

    assert (text, first.arguments) == ("One moment.", '{"order_id": 1}')
    assert [c.arguments for c in parallel] == ['{"order_id": 2}', '{"order_id": 3}']
    assert len({c.call_id for c in parallel}) == 2


async def test_http_error_surfaces_without_retry(openai_server: OpenAIStandin) -> None:
    openai_server.script(http_error(500, "boom"))

    with pytest.raises(APIStatusError) as exc_info:
        await _collect(openai_server.llm().chat(chat_ctx=_user_ctx(), conn_options=NO_RETRY))

    assert exc_info.value.status_code == 500
    assert "boom" in exc_info.value.message
    assert len(openai_server.chat_requests) == 1


async def test_plugin_retry_consumes_next_turn(openai_server: OpenAIStandin) -> None:
    # each retry attempt is a new request, so it takes the next script item
    openai_server.script(http_error(503), reply("recovered"))
    retry_once = APIConnectOptions(max_retry=1, retry_interval=0.0)

    text, _ = await _collect(
        openai_server.llm().chat(chat_ctx=_user_ctx(), conn_options=retry_once)
    )

    assert text == "recovered"
    assert len(openai_server.chat_requests) == 2


async def test_respond_and_default_reply(openai_server: OpenAIStandin) -> None:
    openai_server.script(respond(lambda body: reply(f"echo: {body['messages'][-1]['content']}")))
    model = openai_server.llm()

    echoed, _ = await _collect(model.chat(chat_ctx=_user_ctx("ping")))
    fallback, _ = await _collect(model.chat(chat_ctx=_user_ctx("again")))

    assert echoed == "echo: ping"
    assert fallback == openai_server.default_reply
    assert [r.used_default for r in openai_server.chat_requests] == [False, True]
    assert openai_server.chat_requests[0].last_user_text == "ping"


async def test_first_token_delay_is_observable(openai_server: OpenAIStandin) -> None:
    openai_server.script(reply("late", first_token_delay=0.2))

    await _collect(openai_server.llm().chat(chat_ctx=_user_ctx()))

    request = openai_server.chat_requests[0]
    assert request.first_chunk_at is not None
    assert request.first_chunk_at - request.received_at >= 0.2


async def test_non_streamed_completion(openai_server: OpenAIStandin) -> None:
    openai_server.script(tool_call("lookup_order", {"order_id": 7}, text="Checking."))
    client = openai.AsyncClient(api_key="test", base_url=openai_server.base_url, max_retries=0)

    async with client:
        completion = await client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hi"}]
        )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    assert choice.message.tool_calls[0].function.arguments == '{"order_id": 7}'
    assert completion.usage is not None and completion.usage.total_tokens > 0


async def test_tts_audio_duration_follows_text(openai_server: OpenAIStandin) -> None:
    openai_server.tts_first_byte_delay = 0.1
    tts = openai_server.tts(voice="alloy")

    frames = [ev.frame async for ev in tts.synthesize("hello")]

    expected = openai_server.audio_duration_for("hello")
    assert expected == pytest.approx(5 * 0.060)
    total = sum(f.duration for f in frames)
    assert expected <= total <= expected + MARKER_SLACK
    assert {f.sample_rate for f in frames} == {SAMPLE_RATE}
    assert any(max(f.data, default=0) > 1000 for f in frames)  # a tone, not silence
    [request] = openai_server.speech_requests
    assert (request.input, request.voice, request.response_format) == (
        "hello",
        "alloy",
        "pcm",
    )
    assert request.first_byte_at is not None
    assert request.first_byte_at - request.received_at >= 0.1


@pytest.mark.parametrize("response_format", ["wav", "mp3"])
async def test_tts_serves_requested_format(
    openai_server: OpenAIStandin, response_format: str
) -> None:
    tts = openai_server.tts(response_format=response_format)

    frames = [ev.frame async for ev in tts.synthesize("hello world")]

    # compressed formats add codec padding, so only roughly the same length
    expected = openai_server.audio_duration_for("hello world")
    assert sum(f.duration for f in frames) == pytest.approx(expected, abs=0.05)
    assert openai_server.speech_requests[0].response_format == response_format


async def test_agent_session_run_text_only(openai_server: OpenAIStandin) -> None:
    openai_server.script(reply("Hello! This is Acme support."))
    agent = Agent(instructions="You are a phone agent for Acme.")

    async with AgentSession(llm=openai_server.llm(), vad=None, stt=None, tts=None) as session:
        await session.start(agent)
        result = await session.run(user_input="hi")

    result.expect.next_event().is_message(role="assistant")
    result.expect.no_more_events()
    message = result.events[0].item
    assert message.text_content == "Hello! This is Acme support."
    request = openai_server.chat_requests[0]
    assert request.messages[0]["content"] == "You are a phone agent for Acme."
    assert request.last_user_text == "hi"


async def test_agent_session_runs_tool_loop(openai_server: OpenAIStandin) -> None:
    openai_server.script(
        tool_call("lookup_order", {"order_id": 42}),
        respond(lambda body: reply(f"Good news: {body['messages'][-1]['content']}.")),
    )
    agent = Agent(instructions="You look up orders.", tools=[lookup_order])

    async with AgentSession(llm=openai_server.llm(), vad=None, stt=None, tts=None) as session:
        await session.start(agent)
        result = await session.run(user_input="where is order 42?")

    result.expect.next_event().is_function_call(name="lookup_order", arguments={"order_id": 42})
    result.expect.next_event().is_function_call_output(output="order 42 shipped")
    result.expect.next_event().is_message(role="assistant")
    result.expect.no_more_events()
    assert result.events[-1].item.text_content == "Good news: order 42 shipped."
    assert [r.tools for r in openai_server.chat_requests] == [["lookup_order"]] * 2
