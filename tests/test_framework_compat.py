"""The LiveKit internals the project uses (telephony/call/framework_compat.py) are there.

These fail first, naming what moved, when livekit-agents is upgraded past the series the
compat module was written for: fix that module, then the rest of the suite tells the rest.
"""

import re
from pathlib import Path

from livekit.agents import __version__ as agents_version

from telephony.call import framework_compat as compat


def test_the_installed_livekit_agents_is_the_series_the_compat_module_was_written_for():
    assert compat.supported_version(agents_version), (
        f"livekit-agents {agents_version} is installed; telephony/call/framework_compat.py "
        f"was written for {compat.SUPPORTED_SERIES}.x. Check every name in PRIVATE_NAMES "
        "against the new version, then update SUPPORTED_SERIES and the pin in pyproject.toml."
    )


def test_every_internal_name_the_project_uses_exists_in_the_installed_version():
    assert compat.missing_private_names() == []


def test_the_check_notices_a_version_or_a_name_it_was_not_written_for():
    assert compat.supported_version("1.8.9") and compat.supported_version("1.8")
    assert not compat.supported_version("1.9.0") and not compat.supported_version("1.80.0")

    class Renamed:
        def __init__(self) -> None:
            self._kept = 1

    assert compat.missing_private_names([(Renamed, ("_kept", "_gone"))]) == ["Renamed._gone"]


def test_no_module_outside_the_compat_module_reaches_into_livekit_internals():
    """`obj._name` on a LiveKit object appears only in framework_compat.py: a grep of the
    product code for the internal names the compat module lists."""
    root = Path(compat.__file__).resolve().parents[2]
    names = {n for owner_names in compat.PRIVATE_NAMES.values() for n in owner_names}
    offenders = []
    for path in [
        root / "agent.py",
        *(root / "telephony").rglob("*.py"),
        *(root / "tools").rglob("*.py"),
    ]:
        if path.name == "framework_compat.py":
            continue
        text = path.read_text()
        offenders += [
            f"{path.relative_to(root)}: {n}"
            for n in names
            if re.search(rf"(?<!\bself)\.{n}\b", text)
        ]
    assert offenders == []


def test_a_provider_left_for_its_fallback_no_longer_serves_replies() -> None:
    """The holding line counts a timeout only of a provider that serves the reply: the
    adapter's background recovery probe of a provider it left says nothing about it."""
    from livekit.agents import llm
    from livekit.plugins import openai

    from telephony.call.framework_compat import serving

    primary, fallback = (openai.LLM(model=m, api_key="sk-test") for m in ("a", "b"))
    adapter = llm.FallbackAdapter([primary, fallback])
    assert serving(adapter, primary) and serving(adapter, fallback)
    adapter._status[0].available = False  # the adapter moved to the fallback
    assert not serving(adapter, primary)
    assert serving(adapter, fallback)
    adapter._status[1].available = False  # none left: the adapter tries them all again
    assert serving(adapter, primary) and serving(adapter, fallback)
    assert serving(primary, primary)  # a model alone
