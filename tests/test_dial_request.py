"""Job metadata -> dial request: valid, empty, malformed, wrong numbers, wrong types."""

import json

import pytest

from telephony.domain.dial_request import (
    DialRequest,
    InvalidMetadata,
    parse_dial_request,
    read_job_metadata,
)


def test_valid_request():
    request = parse_dial_request('{"phone_number": "+15105550123", "transfer_to": "+15105550199"}')
    assert request == DialRequest("+15105550123", transfer_to="tel:+15105550199")


def test_sip_transfer_target_is_kept():
    request = parse_dial_request(
        '{"phone_number": "+15105550123", "transfer_to": "sip:desk@pbx.example.com"}'
    )
    assert request and request.transfer_to == "sip:desk@pbx.example.com"


@pytest.mark.parametrize(
    ("dtmf", "expected"),
    [
        ("ww1234#", "ww1234#"),
        ("*9W0", "*9W0"),
        ("", ""),
        ("w" * 32, "w" * 32),
    ],
)
def test_extension_digits_are_kept(dtmf, expected):
    request = parse_dial_request(json.dumps({"phone_number": "+15105550123", "dtmf": dtmf}))
    assert request and request.dtmf == expected


def test_no_extension_digits_by_default():
    request = parse_dial_request('{"phone_number": "+15105550123"}')
    assert request and request.dtmf == ""


@pytest.mark.parametrize("metadata", [None, "", "   ", "\n"])
def test_empty_metadata_means_no_dial(metadata):
    assert parse_dial_request(metadata) is None


@pytest.mark.parametrize(
    ("metadata", "names"),
    [
        ('{"phone_number": "+15105550123"', "not valid JSON"),
        ("phone_number=+15105550123", "not valid JSON"),
        ('{"phone_number": "5105550123"}', "is not a valid phone number"),
        ('{"phone_number": "+1 510 555 0123"}', "is not a valid phone number"),
        ('{"phone_number": "+0105550123"}', "is not a valid phone number"),
        ('{"phone_number": "+1510555012345678"}', "is not a valid phone number"),
        ('{"phone_number": 15105550123}', "must be a string"),
        ('{"phone_number": null}', "must be a string"),
        ('{"phone_number": "+15105550123", "transfer_to": 42}', "transfer_to must be a string"),
        ('{"phone_number": "+15105550123", "transfer_to": "555"}', "not a transfer destination"),
        ('{"phone_number": "+15105550123", "phonenumber": "x"}', "unknown key(s) 'phonenumber'"),
        (
            '{"phone_number": "+15105550123", "dtmf": "ext 12"}',
            "job metadata: dtmf 'ext 12' may only contain digits, *, # and w (a half-second pause)",
        ),
        ('{"phone_number": "+15105550123", "dtmf": "12p3"}', "may only contain digits"),
        ('{"phone_number": "+15105550123", "dtmf": "123\\n"}', "may only contain digits"),
        ('{"phone_number": "+15105550123", "dtmf": 1234}', "dtmf must be a string"),
        (json.dumps({"phone_number": "+15105550123", "dtmf": "1" * 33}), "at most 32"),
    ],
)
def test_invalid_metadata_names_the_problem(metadata, names):
    with pytest.raises(InvalidMetadata) as caught:
        parse_dial_request(metadata)
    assert names in str(caught.value)


ARABIC_INDIC = "+1" + "".join(chr(0x0660 + int(d)) for d in "4155550123")


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("+14155550123\n", "ASCII digits only"),
        (" +14155550123", "ASCII digits only"),
        (ARABIC_INDIC, "ASCII digits only"),
        ("+999999999", "no country has that code"),
        ("+10000000000", "no such number"),
        ("+1510555", "too short"),
    ],
)
def test_dirty_or_nonexistent_numbers_are_never_dialed(number, why):
    with pytest.raises(InvalidMetadata) as caught:
        parse_dial_request(json.dumps({"phone_number": number}))
    assert why in str(caught.value)


def test_dispatcher_context_is_kept_as_text():
    request = parse_dial_request(
        '{"phone_number": "+15105550123", "context": {"name": "Dana", "visits": 3, "vip": true}}'
    )
    assert request and request.context == {"name": "Dana", "visits": "3", "vip": "true"}


@pytest.mark.parametrize(
    "context", ['"Dana"', '{"name": {"first": "Dana"}}', '{"tags": ["a"]}', '{"x": null}']
)
def test_context_must_be_a_flat_object(context):
    with pytest.raises(InvalidMetadata, match="context"):
        parse_dial_request(f'{{"phone_number": "+15105550123", "context": {context}}}')


@pytest.mark.parametrize(
    "metadata",
    [
        "{}",
        '{"source": "dispatch-rule", "tier": "gold"}',
        '{"call": {"to": "+15105550123"}}',  # a worker host's own parameters
    ],
)
def test_metadata_without_a_phone_number_is_an_inbound_call(metadata):
    read = read_job_metadata(metadata)
    assert read.dial is None and read.ignored == ""


def test_inbound_metadata_becomes_context_for_the_call():
    read = read_job_metadata(
        json.dumps({"tier": "gold", "visits": 3, "vip": True, "tags": ["a"], "x": None})
    )
    assert read.context == {"tier": "gold", "visits": "3", "vip": "true", "tags": '["a"]'}


@pytest.mark.parametrize(
    ("metadata", "why"),
    [("hello", "not JSON"), ('["a"]', "a JSON list"), ('"text"', "a JSON str")],
)
def test_metadata_that_is_no_object_is_ignored_with_a_reason(metadata, why):
    read = read_job_metadata(metadata)
    assert read.dial is None and read.context == {} and why in read.ignored
