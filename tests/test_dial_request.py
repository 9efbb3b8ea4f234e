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
    [("hello", "not valid JSON"), ('["a"]', "a JSON list"), ('"text"', "a JSON str")],
)
def test_metadata_that_is_no_object_is_ignored_with_a_reason(metadata, why):
    read = read_job_metadata(metadata)
    assert read.dial is None and read.context == {} and why in read.ignored


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ("[" * 100_000 + "]" * 100_000, "is 200,000 characters long; at most 64,000"),
        ("[" * 30_000 + "]" * 30_000, "nests 30,000 levels deep; at most 16"),
        ('{"a": ' + "[" * 16 + "]" * 16 + "}", "nests 17 levels deep"),
        ('{"visits": ' + "9" * 4301 + "}", "a number 4,301 digits long; at most 100"),
        ('{"visits": -' + "9" * 101 + "}", "a number 101 digits long"),
    ],
)
def test_oversized_metadata_is_ignored_for_a_call_we_answer(metadata, why):
    read = read_job_metadata(metadata)
    assert read.dial is None and read.context == {} and why in read.ignored


@pytest.mark.parametrize(
    "metadata",
    [
        '{"phone_number": "+15105550123", "context": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"phone_number": "+15105550123", "context": {"n": ' + "9" * 5000 + "}}",
        '{"phone_number": ' + "1" * 4301 + "}",
    ],
)
def test_oversized_dial_request_is_refused_in_one_line(metadata):
    with pytest.raises(InvalidMetadata) as caught:
        read_job_metadata(metadata)
    message = str(caught.value)
    assert message.startswith("job metadata ") and "at most" in message and len(message) < 200


def test_inbound_context_is_cut_to_its_bounds():
    read = read_job_metadata(json.dumps({"k" * 100: "v" * 1000, **{f"x{i}": i for i in range(60)}}))
    assert len(read.context) == 50
    assert read.context["k" * 64] == "v" * 500


@pytest.mark.parametrize(
    ("context", "why"),
    [
        ({f"k{i}": "v" for i in range(51)}, "context has 51 keys; at most 50"),
        ({"note": "x" * 501}, "context 'note' is 501 characters long; at most 500"),
        ({"k" * 65: "v"}, "is 65 characters long; at most 64"),
        ({"n": {"deep": 1}}, "must be text"),
        ({f"k{i}": "x" * 20_000 for i in range(50)}, "characters long; at most 64,000"),
    ],
)
def test_outbound_context_has_the_same_limits_as_inbound(context, why):
    """An outbound context took 1 MB and 500 keys; it now keeps to an inbound call's bounds."""
    with pytest.raises(InvalidMetadata, match=why):
        parse_dial_request(json.dumps({"phone_number": "+15105550123", "context": context}))


def test_context_at_its_bounds_is_kept():
    context = {f"{i:02d}" + "k" * 62: "v" * 500 for i in range(50)}
    request = parse_dial_request(json.dumps({"phone_number": "+15105550123", "context": context}))
    assert request and request.context == context


@pytest.mark.parametrize(
    ("transfer_to", "expected"),
    [
        ("+15105550199", "tel:+15105550199"),
        ("tel:+15105550199", "tel:+15105550199"),
        ("sip:desk@pbx.example.com", "sip:desk@pbx.example.com"),
        ("sip:+15105550199@sip.example.com:5061", "sip:+15105550199@sip.example.com:5061"),
        ("sip:front.desk_2@10.0.0.12", "sip:front.desk_2@10.0.0.12"),
    ],
)
def test_transfer_to_takes_tel_and_sip_uris(transfer_to, expected):
    request = parse_dial_request(
        json.dumps({"phone_number": "+15105550123", "transfer_to": transfer_to})
    )
    assert request and request.transfer_to == expected


BAD_TRANSFER_URIS = [
    "sip:desk\x00@pbx.example.com",
    "sip:desk\x7f@pbx.example.com",
    "sip:desk@pbx.example.com<sip:evil@x>",
    'sip:desk"@pbx.example.com',
    "sip:desk@pbx\u202emoc.example",
    "sip:front desk@pbx.example.com",
    "sip:desk@pbx.example.com\r\nX-Evil: 1",
    "sip:desk@pbx.example.com;transport=tcp",
    "sip:desk@pbx.example.com:99999",
    "sip:desk@pbx.example.com:0",
    "sip:desk@-pbx.example.com",
    "sip:desk@" + "a" * 64 + ".example.com",
    "sip:" + "u" * 65 + "@pbx.example.com",
    "sip:@pbx.example.com",
    "sips:desk@pbx.example.com",
    "SIP:desk@pbx.example.com",
    "tel:+15105550199\n",
    "tel:+1510555\u0660199",
    "tel:15105550199",
    " tel:+15105550199",
]


@pytest.mark.parametrize("transfer_to", BAD_TRANSFER_URIS)
def test_transfer_to_refuses_anything_but_a_strict_tel_or_sip_uri(transfer_to):
    """`transfer_to` took NUL, DEL, '<', '"' and U+202E into the SIP REFER."""
    with pytest.raises(InvalidMetadata) as caught:
        parse_dial_request(json.dumps({"phone_number": "+15105550123", "transfer_to": transfer_to}))
    assert "transfer_to" in str(caught.value)
    assert "\n" not in str(caught.value) and "\u202e" not in str(caught.value)
