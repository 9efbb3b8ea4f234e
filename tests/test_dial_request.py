"""Job metadata -> dial request: valid, empty, malformed, wrong numbers, wrong types."""

import pytest

from telephony.dial_request import DialRequest, InvalidMetadata, parse_dial_request


def test_valid_request():
    request = parse_dial_request('{"phone_number": "+15105550123", "transfer_to": "+15105550199"}')
    assert request == DialRequest("+15105550123", transfer_to="tel:+15105550199")


def test_sip_transfer_target_is_kept():
    request = parse_dial_request(
        '{"phone_number": "+15105550123", "transfer_to": "sip:desk@pbx.example.com"}'
    )
    assert request and request.transfer_to == "sip:desk@pbx.example.com"


@pytest.mark.parametrize("metadata", [None, "", "   ", "\n"])
def test_empty_metadata_means_no_dial(metadata):
    assert parse_dial_request(metadata) is None


@pytest.mark.parametrize(
    ("metadata", "names"),
    [
        ('{"phone_number": "+15105550123"', "not valid JSON"),
        ("phone_number=+15105550123", "not valid JSON"),
        ('["+15105550123"]', "must be a JSON object"),
        ('"+15105550123"', "must be a JSON object"),
        ("{}", "no 'phone_number'"),
        ('{"phone_number": "5105550123"}', "not an E.164 number"),
        ('{"phone_number": "+1 510 555 0123"}', "not an E.164 number"),
        ('{"phone_number": "+0105550123"}', "not an E.164 number"),
        ('{"phone_number": "+1510555012345678"}', "not an E.164 number"),
        ('{"phone_number": 15105550123}', "must be a string"),
        ('{"phone_number": null}', "must be a string"),
        ('{"phone_number": "+15105550123", "transfer_to": 42}', "transfer_to must be a string"),
        ('{"phone_number": "+15105550123", "transfer_to": "555"}', "not a transfer destination"),
        ('{"phone_number": "+15105550123", "phonenumber": "x"}', "unknown key(s) 'phonenumber'"),
    ],
)
def test_invalid_metadata_names_the_problem(metadata, names):
    with pytest.raises(InvalidMetadata) as caught:
        parse_dial_request(metadata)
    assert names in str(caught.value)
