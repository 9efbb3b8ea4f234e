"""Everything a call's tools need, kept as the AgentSession's userdata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from telephony.call.call_context import CallContext
from telephony.call.call_control import CallControl
from telephony.call.ending import CallEnding
from telephony.call.greeting_audio import GreetingAudioCache
from telephony.domain.dial_request import CALL_TRANSFER_TARGET, DialRequest
from telephony.domain.prompts import Prompts
from telephony.domain.settings import Settings
from telephony.records.model import Outcome

if TYPE_CHECKING:
    from telephony.call.holding_line import HoldingLine


@dataclass
class CallState:
    """One call, as its tools see it (the session's userdata).

    Fixed for the call: the settings and prompts, the call control, the dial request and the
    dispatcher's context. Learned once during it: who the caller is (`context`, completed
    when an outbound call is answered), their contact record, after-hours, the answering
    machine verdict. How it ended lives in `ending` (telephony.call.ending), the one place
    every ending goes through."""

    settings: Settings
    prompts: Prompts
    control: CallControl
    context: CallContext
    dial_request: DialRequest | None = None
    # What the dispatcher knows about this call: the dial request's `context` on calls we
    # place, the job metadata's values on calls we answer (a dispatch rule's metadata).
    dispatch_context: Mapping[str, str] = field(default_factory=dict)
    # The job's ending (shared with its recorder); a call of its own when not given.
    ending: CallEnding = None  # type: ignore[assignment]
    # The caller's contact record from the lookup (name and other fields), if known.
    contact: Mapping[str, str] | None = None
    # The call came in outside business hours: the agent takes a message.
    after_hours: bool = False
    # The answering-machine detector's verdict, on outbound calls where it ran.
    amd_verdict: str = ""
    # The keypad menu in words ("For sales press 1, ..."), when a menu is configured.
    keypad_menu: str = ""
    # The worker process's greeting audio (None: every greeting goes through the TTS), and
    # the key under which the audio of the next synthesized speech, the greeting, is kept.
    greeting_audio: GreetingAudioCache | None = None
    greeting_to_capture: str = ""
    # Said while a stalled provider is retried (telephony.call.holding_line); set once the
    # session runs.
    holding_line: HoldingLine | None = None
    # The call's record id (the do-not-call list notes the call a callee opted out on).
    record_id: str = ""

    def __post_init__(self) -> None:
        if self.ending is None:
            self.ending = CallEnding(self.control)

    @property
    def outcome(self) -> Outcome | None:
        """How the call ended, once an ending was claimed (None while it goes on)."""
        return self.ending.outcome

    def transfer_targets(self) -> dict[str, str]:
        """Destination name -> URI: the configured ones, plus this call's own `transfer_to`.
        None after hours: nobody is there to take the call."""
        if self.after_hours:
            return {}
        targets = dict(self.settings.transfer_destinations)
        if self.dial_request and self.dial_request.transfer_to:
            targets[CALL_TRANSFER_TARGET] = self.dial_request.transfer_to
        return targets

    def prompt_values(self) -> dict[str, str]:
        names = sorted(self.transfer_targets())
        contact = self.contact or {}
        details = ", ".join(f"{k}={v}" for k, v in sorted(contact.items()) if v)
        fields = self.context.prompt_fields()
        if self.dispatch_context:
            # The dispatcher's details about the call join the phone system's.
            extra = dict(self.context.custom_attributes) | dict(self.dispatch_context)
            fields["custom_attributes"] = ", ".join(f"{k}={v}" for k, v in sorted(extra.items()))
        return {
            **fields,
            "company_name": self.settings.company_name,
            "transfer_destinations": ", ".join(names) if names else "none configured",
            "caller_name": contact.get("name", ""),
            "contact_details": details or "none",
            "keypad_menu": self.keypad_menu or "none",
        }

    def render(self, prompt_name: str) -> str:
        return self.prompts.render(prompt_name, self.prompt_values())

    def update_context(self, context: CallContext) -> None:
        self.context = context
