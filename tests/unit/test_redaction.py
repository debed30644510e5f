"""Secret redaction: literal and encoded forms, in whole text and in streams."""

import base64
import binascii
import re
import urllib.parse

import pytest
from flowlink.redaction import Redactor, StreamRedactor

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-P@ss/word+42"


@pytest.mark.parametrize(
    "leak",
    [
        SECRET,
        f"DB_PASSWORD={SECRET}\n",
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode((SECRET + "\n").encode()).decode(),
        base64.b64encode(("x" + SECRET).encode()).decode(),
        base64.b64encode(("xy" + SECRET).encode()).decode(),
        base64.urlsafe_b64encode(("xy" + SECRET).encode()).decode(),
        binascii.hexlify(SECRET.encode()).decode(),
        binascii.hexlify(SECRET.encode()).decode().upper(),
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
        re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(SECRET, safe="")),  # %2f
        urllib.parse.quote(SECRET, safe="/+"),  # encodeURI-style: reserved characters left alone
        urllib.parse.quote(SECRET, safe="!'()*"),  # encodeURIComponent / jq @uri
        "".join(f"%{b:02X}" for b in SECRET.encode()),  # every character escaped
        urllib.parse.quote("s3cr3t-P", safe="") + "%40" + "ss/word%2B42",  # mixed by hand
    ],
)
def test_redactor_hides_literal_and_encoded_forms(leak):
    redacted = Redactor({"DB_PASSWORD": SECRET}).redact(f"before {leak} after")
    assert "[REDACTED:DB_PASSWORD]" in redacted
    assert SECRET not in redacted
    assert redacted.startswith("before ") and redacted.endswith(" after")


def test_redactor_catches_url_encodings_of_non_ascii_and_spaces():
    value = "pässwörd mit leer"
    redactor = Redactor({"PW": value})
    lower_escapes = re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), urllib.parse.quote(value))
    for leak in (urllib.parse.quote(value), urllib.parse.quote_plus(value), lower_escapes):
        assert redactor.redact(f"<{leak}>") == "<[REDACTED:PW]>", leak


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_stream_redactor_catches_a_fully_percent_encoded_value_fed_byte_by_byte(chunk_size):
    text = "x=" + "".join(f"%{b:02x}" for b in SECRET.encode()) + ";"
    stream = StreamRedactor(Redactor({"DB_PASSWORD": SECRET}))
    out = "".join(stream.feed(text[i : i + chunk_size]) for i in range(0, len(text), chunk_size)) + stream.flush()
    assert out == "x=[REDACTED:DB_PASSWORD];"


def test_redactor_handles_base64_line_wrapping_of_long_values():
    value = "k" * 90 + "-Z9"
    wrapped = base64.encodebytes((value + "\n").encode()).decode()  # wraps at 76 chars like base64(1)
    assert "\n" in wrapped.strip()
    assert "[REDACTED:TOKEN]" in Redactor({"TOKEN": value}).redact(wrapped)


def test_redactor_leaves_unrelated_text_alone():
    text = "nothing to see here: c2VjcmV0 deadbeef %2F"
    assert Redactor({"DB_PASSWORD": SECRET}).redact(text) == text


def test_redactor_names_each_secret():
    out = Redactor({"A": "alpha-value-1", "B": "bravo-value-2"}).redact("alpha-value-1 bravo-value-2")
    assert out == "[REDACTED:A] [REDACTED:B]"


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 50])
def test_stream_redactor_catches_values_split_across_chunks(chunk_size):
    text = "start " + SECRET + " middle " + base64.b64encode(SECRET.encode()).decode() + " end"
    stream = StreamRedactor(Redactor({"DB_PASSWORD": SECRET}))
    out = "".join(stream.feed(text[i : i + chunk_size]) for i in range(0, len(text), chunk_size))
    out += stream.flush()
    assert out == "start [REDACTED:DB_PASSWORD] middle [REDACTED:DB_PASSWORD] end"


def test_redact_obj_walks_nested_structures():
    obj = {"stdout": SECRET, "items": [SECRET, 3, {"x": SECRET}]}
    assert Redactor({"S": SECRET}).redact_obj(obj) == {
        "stdout": "[REDACTED:S]",
        "items": ["[REDACTED:S]", 3, {"x": "[REDACTED:S]"}],
    }
