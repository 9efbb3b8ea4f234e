"""Everything a call's tools need, kept as the AgentSession's userdata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .call_context import CallContext
from .call_control import CallControl
from .dial_request import DialRequest
from .greeting_audio import GreetingAudioCache
from .prompts import Prompts
from .records.model import Outcome
from .settings import Settings

# The name under which a call's own `transfer_to` (from its job metadata) is offered.
CALL_TRANSFER_TARGET = "default"


@dataclass
class CallState:
    settings: Settings
    prompts: Prompts
    control: CallControl
    context: CallContext
    dial_request: DialRequest | None = None
    # What the dispatcher knows about this call: the dial request's `context` on calls we
    # place, the job metadata's values on calls we answer (a dispatch rule's metadata).
    dispatch_context: Mapping[str, str] = field(default_factory=dict)
    # How the agent ended the call, when a tool ended it (goodbye, transfer, voicemail).
    ending: Outcome | None = None
    transferred_to: str = ""
    # Why the agent ended the call when the ending alone does not say (silence, time limit).
    end_reason: str = ""
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
