"""The checks made on a CSV before anything is stored, and on each row, without services."""

from __future__ import annotations

import pytest

from tasks.imports.rows import RowRejected, check_row
from tasks.imports.scan import ImportRefused, map_header, parse_mapping, read_records, scan_file

pytestmark = pytest.mark.unit


def refusal(call: object) -> tuple[int, str]:
    with pytest.raises(ImportRefused) as caught:
        call()  # type: ignore[operator]
    return caught.value.status, str(caught.value)


def test_records_carry_the_line_they_start_on() -> None:
    text = 'name,phone\r\n"two\r\nlines",+16505550100\r\n\r\nAda,+16505550101\r\n'
    assert read_records(text) == [
        (1, ["name", "phone"]),
        (2, ["two\r\nlines", "+16505550100"]),
        (5, ["Ada", "+16505550101"]),
    ]


def test_header_names_are_matched_case_insensitively_and_mapped() -> None:
    assert map_header([" Name ", "PHONE"], {}) == ["name", "phone"]
    mapping = parse_mapping(["Mobile=phone", "notes="])
    assert map_header(["mobile", "notes"], mapping) == ["phone", None]


@pytest.mark.parametrize(
    ("header", "mapping", "message"),
    [
        (["name", "colour", "phone"], {}, "unknown columns: colour"),
        (["name", "name", "phone"], {}, "columns named twice: name"),
        (["name", "", "phone"], {}, "column 2 of the header has no name"),
        (["cell", "phone"], {"cell": "phone"}, "fields given by two columns: phone"),
        (["name"], {}, "the file needs a phone or an email column"),
        (["phone"], {"mobile": "phone"}, "mapped columns not in the file: mobile"),
    ],
)
def test_bad_headers_are_refused_naming_only_columns(
    header: list[str], mapping: dict[str, str], message: str
) -> None:
    status, text = refusal(lambda: map_header(header, mapping))
    assert status == 422 and text.startswith(message)


def test_a_mapping_to_an_unknown_field_is_refused() -> None:
    assert refusal(lambda: parse_mapping(["mobile=telephone"]))[0] == 422
    assert refusal(lambda: parse_mapping(["mobile"]))[0] == 422


def test_the_file_is_chunked_in_batches_with_its_sha256() -> None:
    rows = "".join(f"a{n}@example.org\r\n" for n in range(2_500))
    scanned = scan_file(("email\r\n" + rows).encode(), {}, "test")
    assert [len(chunk) for chunk in scanned.chunks] == [1_000, 1_000, 500]
    assert scanned.chunks[1][0][0] == 1_002  # line numbers survive chunking
    assert len(scanned.sha256) == 64


FIELDS: list[str | None] = ["name", "phone", "email", "consent_sms", "consent_at"]


def test_a_good_row_becomes_lead_fields() -> None:
    fields = check_row(
        [" Ada ", "(415) 555-0199", "Ada@Example.org", "Yes", "2024-05-01 10:00"], FIELDS, "US"
    )
    assert (fields.name, fields.phone, fields.email) == ("Ada", "+14155550199", "Ada@example.org")
    assert fields.sms_consent is True and fields.source == "import"
    assert fields.consent_at is not None and fields.consent_at.utcoffset() is not None


def test_a_rejection_reason_never_holds_the_value() -> None:
    with pytest.raises(RowRejected) as caught:
        check_row(["Ada", "+1 secret-555", "", "no", ""], FIELDS, None)
    assert "secret" not in str(caught.value)
