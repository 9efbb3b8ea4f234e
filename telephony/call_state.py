"""Everything a call's tools need, kept as the AgentSession's userdata."""

from __future__ import annotations

from dataclasses import dataclass

from .call_context import CallContext
from .call_control import CallControl
from .dial_request import DialRequest
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
    # How the agent ended the call, when a tool ended it (goodbye, transfer, voicemail).
    ending: Outcome | None = None
    transferred_to: str = ""

    def transfer_targets(self) -> dict[str, str]:
        """Destination name -> URI: the configured ones, plus this call's own `transfer_to`."""
        targets = dict(self.settings.transfer_destinations)
        if self.dial_request and self.dial_request.transfer_to:
            targets[CALL_TRANSFER_TARGET] = self.dial_request.transfer_to
        return targets

    def prompt_values(self) -> dict[str, str]:
        names = sorted(self.transfer_targets())
        return {
            **self.context.prompt_fields(),
            "company_name": self.settings.company_name,
            "transfer_destinations": ", ".join(names) if names else "none configured",
        }

    def render(self, prompt_name: str) -> str:
        return self.prompts.render(prompt_name, self.prompt_values())

    def update_context(self, context: CallContext) -> None:
        self.context = context
