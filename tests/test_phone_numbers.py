from telephony.domain.phone_numbers import is_e164, mask_number


def test_e164():
    assert is_e164("+15105550123")
    assert is_e164("+442071838750")
    assert not is_e164("15105550123")
    assert not is_e164("+1-510-555-0123")
    assert not is_e164("+")


def test_masking_keeps_only_a_hint():
    assert mask_number("+15105550123") == "+1********23"
    assert mask_number("") == ""
    assert "5550" not in mask_number("+15105550123")
