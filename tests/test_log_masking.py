"""Phone numbers never reach the logs in full when MASK_PHONE_NUMBERS is on."""

import io
import json
import logging
import re
import unicodedata
from collections.abc import Iterator

import pytest
from livekit.agents.cli.log import JsonFormatter

from telephony.domain import log_masking
from telephony.domain.log_masking import PhoneNumberFilter, install_phone_masking, mask_numbers_in
from telephony.operator.cli import main
from tests.flow import job


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("caller +15105550123 connected", "caller +1********23 connected"),
        ("room call-_+15105550123_Xy7", "room call-_+1********23_Xy7"),
        ("participant sip-15105550123", "participant sip-1********23"),
        ("job AJ_12345678 took 1795267781.93 s", "job AJ_12345678 took 1795267781.93 s"),
    ],
)
def test_numbers_are_masked_and_other_digits_kept(text, masked):
    assert mask_numbers_in(text) == masked


def test_filter_masks_message_arguments_and_extra_fields(caplog):
    logger = logging.getLogger("test.masking")
    caplog.handler.addFilter(PhoneNumberFilter())
    with caplog.at_level(logging.INFO, logger="test.masking"):
        logger.info("dialing %s", "+15105550123", extra={"room": "call-_+15105550199_a", "n": 3})
    (record,) = caplog.records
    assert record.getMessage() == "dialing +1********23"
    assert record.room == "call-_+1********99_a"
    assert "+15105550123" not in caplog.text


def test_install_is_idempotent_and_respects_the_setting():
    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        install_phone_masking(False)
        assert handler.filters == []
        install_phone_masking(True)
        install_phone_masking(True)
        assert len(handler.filters) == 1
    finally:
        root.removeHandler(handler)


# ------------------------------------------------------------------ every spelling

# Ten spellings of one number the agent refuses to dial (the issue's: five of them were
# logged in full in the "rejected job" line).
SPELLINGS = [
    " +14155550123",
    "14155550123",
    "+1 415 555 0123",
    "+1-415-555-0123",
    "(415) 555-0123",
    "14155550123\n",
    "+14155550123\n",
    "+1 (415) 555-0123",
    "+1.415.555.0123",
    "tel:+14155550123",
]
# And what else a dispatcher or an attacker may write.
MORE_SPELLINGS = [
    "+14155550123",
    "4155550123",
    "415.555.0123",
    "+1\u00a0415\u00a0555\u00a00123",
    "+1" + "".join(chr(0xFF10 + int(d)) for d in "4155550123"),  # full-width digits
    "+1" + "".join(chr(0x0660 + int(d)) for d in "4155550123"),  # Arabic-Indic digits
    "+1415\u200b5550123",  # a zero-width space inside
    "+1\u202e4155550123",  # a right-to-left override inside
    "call-x14155550123y",
    "+1 415 555 0123 ext. 12",
]


def shows_the_number(text: str) -> bool:
    """True if five digits of 415 555 0123 in a row can be read in `text` (a masked number
    keeps its first digit and its last two), whatever script or separators it is in."""
    text = re.sub(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|[ntr])", "", text)  # repr's escapes
    digits = "".join(
        str(unicodedata.digit(c)) for c in text if unicodedata.digit(c, None) is not None
    )
    national = "4155550123"
    return any(national[i : i + 5] in digits for i in range(len(national) - 4))


@pytest.mark.parametrize("spelling", SPELLINGS + MORE_SPELLINGS)
@pytest.mark.parametrize("shown", [str, repr])
def test_every_spelling_is_masked(spelling, shown):
    text = f"phone_number {shown(spelling)} is not a valid phone number"
    assert shows_the_number(text)  # the check itself sees the number
    assert not shows_the_number(mask_numbers_in(text)), mask_numbers_in(text)


def test_other_countries_are_masked_with_plus_or_as_bare_e164_digits():
    masked = mask_numbers_in("uk +44 20 7946 0018, fr 33142685300, ts 1795267781930")
    assert masked == "uk +4* ** **** **18, fr 3********00, ts 1795267781930"


OUTBOUND_ENV = {"SIP_OUTBOUND_TRUNK_ID": "ST_outbound", "AMD_ENABLED": "false"}


@pytest.fixture
def worker_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The worker's log as written in production (LiveKit's JSON lines) and in development
    (text lines): a handler on the root logger, as the framework's CLI sets one up."""
    stream = io.StringIO()
    handlers = [logging.StreamHandler(stream), logging.StreamHandler(stream)]
    handlers[0].setFormatter(JsonFormatter())
    handlers[1].setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield stream
    finally:
        for handler in handlers:
            root.removeHandler(handler)


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_the_rejected_job_line_never_shows_the_number(
    monkeypatch, livekit_server, openai_server, worker_log, spelling
):
    """A dial request with a number the agent refuses is logged as "rejected job ...", the
    number quoted: 5 of these 10 spellings were in that line in full."""
    metadata = json.dumps({"phone_number": spelling})
    async with job(
        monkeypatch, livekit_server, openai_server, metadata=metadata, env=OUTBOUND_ENV
    ) as run:
        await run.wait_until_done()
    log = worker_log.getvalue()
    assert "rejected job in room" in log and "is not a valid phone number" in log
    assert not shows_the_number(log), log


# ------------------------------------------------------------------ every part of a record


@pytest.fixture
def fresh_masking() -> Iterator[None]:
    """This process as it starts: no masking installed (an earlier test's is put back after)."""
    saved = (
        logging.getLogRecordFactory(),
        log_masking._masking.wrapped,
        log_masking._masking.enabled,
    )
    if log_masking._masking.wrapped is not None:
        logging.setLogRecordFactory(log_masking._masking.wrapped)
    log_masking._masking.wrapped, log_masking._masking.enabled = None, False
    try:
        yield
    finally:
        logging.setLogRecordFactory(saved[0])
        log_masking._masking.wrapped, log_masking._masking.enabled = saved[1:]


def test_arguments_exception_text_stack_and_extras_are_masked(fresh_masking, worker_log):
    install_phone_masking(True)
    logger = logging.getLogger("test.masking.parts")
    logger.warning("dialing %s", "(415) 555-0123", extra={"callee": "+1 415 555 0123"})
    try:
        raise ValueError("no route to 14155550123")
    except ValueError:
        logger.exception("dial failed for %s", {"to": "415.555.0123"})
    logger.warning("where the number went", stack_info=True, extra={"n": "4155550123"})
    log = worker_log.getvalue()
    assert "dialing" in log and "no route to" in log and "where the number went" in log
    assert not shows_the_number(log), log


@pytest.fixture
def unfiltered_logger() -> logging.Logger:
    """A logger whose records reach no handler the masking filter was put on: outside the
    logger tree, so pytest's handlers on the root are out of its way."""
    return logging.Logger("test.masking.unfiltered")


def test_a_handler_added_after_masking_is_installed_sees_masked_records(
    fresh_masking, unfiltered_logger
):
    """LiveKit Cloud's log export is added when a job starts, after the job installed
    masking: the records it gets are masked where they are made."""
    install_phone_masking(True)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    unfiltered_logger.addHandler(handler)
    try:
        unfiltered_logger.warning("caller %s", "+1 (415) 555-0123")
    finally:
        unfiltered_logger.removeHandler(handler)
    assert stream.getvalue() == "caller +1 (***) ***-**23\n"


def test_the_command_line_masks_what_it_logs(fresh_masking, unfiltered_logger, monkeypatch, capsys):
    """`python -m telephony ...` sets up no log handler: its warnings go through Python's
    last-resort handler, which no filter was ever put on. Once a command runs, they are
    masked too."""
    stream = io.StringIO()
    monkeypatch.setattr(logging, "lastResort", logging.StreamHandler(stream))
    assert main(["calls", "list"]) == 0
    unfiltered_logger.warning("lookup for %s failed", "(415) 555-0123")  # to lastResort
    assert stream.getvalue() == "lookup for (4**) ***-**23 failed\n"
