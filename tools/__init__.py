"""What the LLM may do on a call: one small module per capability.

Each tool is a thin adapter over `telephony` call control, with a description written
for the LLM and an honest result when something fails.
"""

from livekit.agents import llm

from telephony.call.call_state import CallState

from .end_call import end_call_tool
from .keypad import collect_keypad_digits
from .opt_out import opt_out
from .transfer import transfer_call
from .voicemail import detected_answering_machine
from .warm_transfer import warm_transfer_call


def call_tools(state: CallState) -> list[llm.Tool | llm.Toolset]:
    """The tools for one call: each only where it can work on this call."""
    settings = state.settings
    tools: list[llm.Tool | llm.Toolset] = [end_call_tool()]
    if state.transfer_targets():
        tools.append(transfer_call)
        if settings.warm_transfer and settings.outbound_trunk_id:
            tools.append(warm_transfer_call)
    if state.context.is_phone_call:
        tools.append(collect_keypad_digits)
    if state.context.remote_number:
        tools.append(opt_out)
    if state.dial_request is not None:
        tools.append(detected_answering_machine)
    return tools


__all__ = [
    "call_tools",
    "collect_keypad_digits",
    "detected_answering_machine",
    "end_call_tool",
    "opt_out",
    "transfer_call",
    "warm_transfer_call",
]
