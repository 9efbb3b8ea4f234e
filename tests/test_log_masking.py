"""Phone numbers never reach the logs in full when MASK_PHONE_NUMBERS is on."""

import logging

import pytest

from telephony.domain.log_masking import PhoneNumberFilter, install_phone_masking, mask_numbers_in


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("caller +15105550123 connected", "caller +1********23 connected"),
        ("room call-_+15105550123_Xy7", "room call-_+1********23_Xy7"),
        ("participant sip-15105550123", "participant sip-15*******23"),
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
