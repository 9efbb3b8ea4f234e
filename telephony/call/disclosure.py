"""Who is calling, and that it is an automated assistant: the first words of every call we
place (the callee speaks first, so the agent's first reply opens with them).

The words are the prompt outbound_disclosure.txt; AI_DISCLOSURE=false drops them, which
`python -m telephony status` flags (in the US the FCC treats AI voices as artificial voices
under the TCPA, and other countries have similar rules).
"""

from __future__ import annotations

from livekit.agents import llm

from telephony.call.call_state import CallState


def pending_disclosure(state: CallState, chat_ctx: llm.ChatContext) -> str:
    """The disclosure to open the next reply with; '' when not an outbound call, turned
    off, or already said in full (a reply cut short says it again)."""
    if state.dial_request is None or not state.settings.ai_disclosure:
        return ""
    text = state.render("outbound_disclosure").strip()
    if not text:
        return ""
    for item in chat_ctx.items:
        if (
            isinstance(item, llm.ChatMessage)
            and item.role == "assistant"
            and not item.interrupted
            and text in (item.text_content or "")
        ):
            return ""
    return text


def speaks(chunk: object) -> bool:
    """Whether an LLM output chunk carries words to say (not only a tool call)."""
    if isinstance(chunk, str):
        return bool(chunk.strip())
    delta = getattr(chunk, "delta", None)
    return bool(delta is not None and (delta.content or "").strip())
