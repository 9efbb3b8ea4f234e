"""What the LLM may do on a call: one small module per capability.

Each tool is a thin adapter over `telephony` call control, with a description written
for the LLM and an honest result when something fails.
"""

from livekit.agents import llm

from .end_call import end_call_tool
from .transfer import transfer_call
from .voicemail import detected_answering_machine


def call_tools(*, outbound: bool, can_transfer: bool) -> list[llm.Tool | llm.Toolset]:
    """The tools for one call: voicemail only where we placed the call, transfer only
    where somewhere to transfer to is configured."""
    tools: list[llm.Tool | llm.Toolset] = [end_call_tool()]
    if can_transfer:
        tools.append(transfer_call)
    if outbound:
        tools.append(detected_answering_machine)
    return tools


__all__ = ["call_tools", "detected_answering_machine", "end_call_tool", "transfer_call"]
