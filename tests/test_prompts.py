"""Prompt files: loaded by name, filled from the call, bad placeholders caught at start-up."""

import shutil
from pathlib import Path

import pytest

from telephony.domain.prompts import PLACEHOLDERS, PROMPT_NAMES, PromptError, Prompts
from telephony.domain.settings import PROJECT_ROOT

SHIPPED = PROJECT_ROOT / "prompts"


@pytest.fixture
def prompts_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "prompts"
    shutil.copytree(SHIPPED, folder)
    return folder


def test_shipped_prompts_load_and_render():
    prompts = Prompts.load(SHIPPED)
    values = dict.fromkeys(PLACEHOLDERS, "X") | {"company_name": "Acme Dental"}
    for name in PROMPT_NAMES:
        assert prompts.render(name, values).strip()
    assert "Acme Dental" in prompts.render("inbound_greeting", values)


def test_unknown_placeholder_is_a_startup_error(prompts_copy: Path):
    (prompts_copy / "voicemail.txt").write_text("Hi {first_name}, call {company_name}.")
    with pytest.raises(
        PromptError, match=r"voicemail.txt: unknown placeholder\(s\) \{first_name\}"
    ):
        Prompts.load(prompts_copy)


def test_stray_brace_is_a_startup_error(prompts_copy: Path):
    (prompts_copy / "inbound_greeting.txt").write_text("Hello {company_name")
    with pytest.raises(PromptError, match=r"inbound_greeting\.txt"):
        Prompts.load(prompts_copy)


def test_missing_prompt_and_bad_one_reported_together(prompts_copy: Path):
    (prompts_copy / "instructions.txt").unlink()
    (prompts_copy / "voicemail.txt").write_text("{nope}")
    with pytest.raises(PromptError) as caught:
        Prompts.load(prompts_copy)
    assert len(caught.value.problems) == 2


def test_literal_braces_are_allowed(prompts_copy: Path):
    (prompts_copy / "voicemail.txt").write_text("Press {{1}} for {company_name}.")
    prompts = Prompts.load(prompts_copy)
    values = dict.fromkeys(PLACEHOLDERS, "") | {"company_name": "Acme"}
    assert prompts.render("voicemail", values) == "Press {1} for Acme."


def test_the_readme_lists_every_prompt_and_placeholder():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert [n for n in PROMPT_NAMES if f"| `{n}.txt` |" not in readme] == []
    assert [p for p in PLACEHOLDERS if f"| `{{{p}}}` |" not in readme] == []
