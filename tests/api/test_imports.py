"""CSV lead imports through the tenant API, written by real Dramatiq worker threads: counts
and the error CSV of a file with bad rows of ten kinds, the same file twice, dedupe against
stored leads, encodings, refusals that store nothing, formula cells escaped on every export,
a STOP that an imported consent does not lift, roles and another org's ids."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from leadline.sandbox import SandboxState
from models.imports import LeadImport, LeadImportChunk
from models.leads import decrypt_lead, phone_index
from models.orgs import set_default_region
from models.tables import AuditEntry, Lead
from tasks.after_commit import AfterCommit
from tasks.context import TaskContext
from tasks.export import escape_cell
from tasks.optouts import OptoutChange, is_opted_out, record_optout
from tasks.sweeps import purge_inbound
from tests.api.tenants import Tenant
from tests.helpers import wait_for
from tests.support.imports import BAD_ROWS, HEADER, csv_bytes, lead_file, phones, upload

pytestmark = pytest.mark.integration
ADMIN = "admin"


def finished(client: TestClient, tenant: Tenant, import_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(
            f"/v1/imports/{import_id}", headers=tenant.auth(ADMIN)
        ).json()
        return body if body["status"] == "done" else None

    return wait_for(done, timeout=60)


def imported(client: TestClient, tenant: Tenant, content: bytes, *maps: str) -> dict[str, Any]:
    response = upload(client, tenant.auth(ADMIN), content, *maps)
    assert response.status_code == 202, response.text
    return finished(client, tenant, response.json()["id"])


def leads_of(context: TaskContext, org_id: uuid.UUID) -> list[Any]:
    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        return [decrypt_lead(cipher, lead) for lead in session.scalars(select(Lead))]


def count(context: TaskContext, org_id: uuid.UUID, table: Any) -> int:
    with context.db.tenant(org_id) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def error_rows(client: TestClient, tenant: Tenant, report: dict[str, Any]) -> list[list[str]]:
    response = client.get(report["errors_url"], headers=tenant.auth(ADMIN))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.text)))


def test_good_rows_imported_once_and_bad_rows_of_ten_kinds_listed_exactly(
    client: TestClient,
    make_tenant: Callable[[], Tenant],
    context: TaskContext,
    worker: Any,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    tenant = make_tenant()
    file = lead_file(good=2_500, bad_per_kind=10)
    report = imported(client, tenant, file.content)

    assert {k: report[k] for k in ("rows", "imported", "updated", "rejected")} == {
        "rows": 2_600,
        "imported": 2_500,
        "updated": 0,
        "rejected": 100,
    }
    header, *rows = error_rows(client, tenant, report)
    assert header == ["line", "reason", *HEADER]
    assert [int(row[0]) for row in rows] == sorted(file.bad)
    for row in rows:
        reason, cells = file.bad[int(row[0])]
        assert row[1] == reason
        assert row[2:] == [escape_cell(cell) for cell in cells]  # '+1650…' → "'+1650…"
    assert {reason for reason, _ in file.bad.values()} == {r for _, r in BAD_ROWS.values()}
    logged = json.dumps(log_lines())
    assert "uploaded" in logged or "request" in logged  # the logs were captured
    for _, cells in file.bad.values():
        assert not any(len(cell) > 6 and cell in logged for cell in cells), (
            "a rejected value was logged"
        )

    leads = leads_of(context, tenant.id)
    assert sorted(lead.phone for lead in leads) == sorted(row[1] for row in file.good)
    by_phone = {lead.phone: lead for lead in leads}
    first = file.good[0]
    assert (by_phone[first[1]].name, by_phone[first[1]].email) == (first[0], first[2])
    assert by_phone[first[1]].first_message == first[3]
    assert by_phone[first[1]].sms_consent is (first[4] == "true")
    assert count(context, tenant.id, LeadImportChunk) == 0  # nothing of the file is kept

    again = upload(client, tenant.auth(ADMIN), file.content)
    assert again.status_code == 200
    assert again.json() == report
    assert count(context, tenant.id, Lead) == 2_500
    assert count(context, tenant.id, LeadImport) == 1


def test_rows_complete_existing_leads_found_by_blind_index(
    client: TestClient, make_tenant: Callable[[], Tenant], context: TaskContext, worker: Any
) -> None:
    tenant = make_tenant()
    known, fresh = phones(2)
    posted = client.post("/v1/leads", json={"phone": known}, headers=tenant.auth("ingest"))
    assert posted.status_code == 202
    wait_for(lambda: count(context, tenant.id, Lead) == 1)
    rows = [
        ["Known Person", known, "known@example.org", "", "false", "", ""],
        ["Fresh Person", fresh, "", "", "false", "", ""],
        ["", "", "KNOWN@example.org", "again", "false", "", ""],  # the same person by email
        ["Fresh Again", fresh.replace("+1", "+1 "), "fresh@example.org", "", "false", "", ""],
    ]
    report = imported(client, tenant, csv_bytes(rows))

    assert (report["imported"], report["updated"], report["rejected"]) == (1, 3, 0)
    leads = {lead.phone: lead for lead in leads_of(context, tenant.id)}
    assert set(leads) == {known, fresh}
    assert (leads[known].name, leads[known].email) == ("Known Person", "known@example.org")
    assert leads[fresh].email == "fresh@example.org"


def test_one_person_in_chunks_written_at_once_is_one_lead(
    client: TestClient, make_tenant: Callable[[], Tenant], context: TaskContext, worker: Any
) -> None:
    tenant = make_tenant()
    numbers = phones(1_500)
    first = [[f"First {i}", phone, "", "", "false", "", ""] for i, phone in enumerate(numbers)]
    # The same people again, by email in the next chunks (written concurrently with the first).
    emails = [
        [f"Again {i}", phone, f"p{i}@example.org", "", "", "", ""]
        for i, phone in enumerate(numbers)
    ]
    report = imported(client, tenant, csv_bytes(first + emails))
    assert (report["imported"], report["updated"], report["rejected"]) == (1_500, 1_500, 0)
    leads = leads_of(context, tenant.id)
    assert len(leads) == 1_500
    assert sorted(lead.email for lead in leads) == sorted(f"p{i}@example.org" for i in range(1_500))


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: text.encode(),
        lambda text: b"\xef\xbb\xbf" + text.encode(),
        lambda text: text.encode("utf-16"),  # with its BOM, in this machine's byte order
        lambda text: b"\xfe\xff" + text.encode("utf-16-be"),
        lambda text: b"\xff\xfe" + text.encode("utf-16-le"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16", "utf-16-be-bom", "utf-16-le-bom"],
)
def test_utf8_and_utf16_files_are_read(
    client: TestClient,
    make_tenant: Callable[[], Tenant],
    context: TaskContext,
    worker: Any,
    encode: Callable[[str], bytes],
) -> None:
    tenant = make_tenant()
    (phone,) = phones(1)
    text = f"name,phone\r\nZoë Ñúñez 山田,{phone}\r\n"
    report = imported(client, tenant, encode(text))
    assert report["imported"] == 1
    assert [lead.name for lead in leads_of(context, tenant.id)] == ["Zoë Ñúñez 山田"]


BIG = b"email\r\n" + b"x" * (10 * 1024 * 1024)
REFUSED = {
    "over-10-mb": (BIG, "text/csv", 413),
    "over-10-mb-beyond-the-body-cap": (BIG + b"x" * 100_000, "text/csv", 413),
    "over-100000-rows": (b"email\r\n" + b"a@example.org\r\n" * 100_001, "text/csv", 413),
    "latin-1": ("name,phone\r\nZoë,+16505550100\r\n".encode("latin-1"), "text/csv", 415),
    "utf-32": ("name,phone\r\n".encode("utf-32"), "text/csv", 415),
    "not-text-csv": (b"name,phone\r\n", "application/octet-stream", 415),
    "nul-bytes": (b"name,phone\r\nA\x00da,+16505550100\r\n", "text/csv", 422),
    "xlsx": (b"PK\x03\x04" + b"\x14\x00" * 50, "text/csv", 422),
    "unknown-column": (b"name,phone,favourite_colour\r\nAda,+16505550100,red\r\n", "text/csv", 422),
    "no-contact-column": (b"name,message\r\nAda,hi\r\n", "text/csv", 422),
    "empty": (b"", "text/csv", 422),
    "cell-over-the-csv-field-limit": (
        b'name,phone\r\n"' + b"x" * 200_000 + b'",+16505550100\r\n',
        "text/csv",
        422,
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_refused_files_write_nothing(
    client: TestClient, make_tenant: Callable[[], Tenant], context: TaskContext, case: str
) -> None:
    tenant = make_tenant()
    content, kind, status = REFUSED[case]
    response = upload(client, tenant.auth(ADMIN), content, kind=kind)
    assert response.status_code == status, response.text
    for table in (LeadImport, LeadImportChunk, Lead):
        assert count(context, tenant.id, table) == 0


def test_a_body_that_is_not_multipart_is_refused(
    client: TestClient, make_tenant: Callable[[], Tenant]
) -> None:
    tenant = make_tenant()
    headers = {**tenant.auth(ADMIN), "Content-Type": "text/csv"}
    response = client.post("/v1/imports", content=b"name,phone\r\n", headers=headers)
    assert response.status_code == 415


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=xyz"],
    ids=["no-boundary", "no-parts"],
)
def test_a_broken_multipart_body_is_refused(
    client: TestClient, make_tenant: Callable[[], Tenant], context: TaskContext, content_type: str
) -> None:
    tenant = make_tenant()
    headers = {**tenant.auth(ADMIN), "Content-Type": content_type}
    response = client.post("/v1/imports", content=b"name,phone\r\n", headers=headers)
    assert response.status_code == 422
    assert count(context, tenant.id, LeadImport) == 0


def test_unknown_columns_can_be_mapped_or_left_out(
    client: TestClient, make_tenant: Callable[[], Tenant], context: TaskContext, worker: Any
) -> None:
    tenant = make_tenant()
    (phone,) = phones(1)
    content = f"Full Name,Mobile,Colour\r\nAda Mapped,{phone},red\r\n".encode()
    report = imported(client, tenant, content, "full name=name", "mobile=phone", "colour=")
    assert report["imported"] == 1
    assert [lead.name for lead in leads_of(context, tenant.id)] == ["Ada Mapped"]
    bad = upload(client, tenant.auth(ADMIN), content, "mobile=telephone")
    assert bad.status_code == 422


def test_formula_cells_are_stored_as_text_and_escaped_in_every_export(
    client: TestClient, make_tenant: Callable[[], Tenant], context: TaskContext, worker: Any
) -> None:
    tenant = make_tenant()
    numbers = phones(4)
    formulas = ['=HYPERLINK("http://x")', "+SUM(A1)", "-2+3", "@cmd"]
    rows = [
        [name, phone, "", "", "false", "", ""]
        for name, phone in zip(formulas, numbers, strict=True)
    ]
    rows += [["\t=tab", "not a phone", "", "", "false", "", ""]]
    rows += [["\r=cr", "not a phone", "", "", "false", "", ""]]
    report = imported(client, tenant, csv_bytes(rows))
    assert (report["imported"], report["rejected"]) == (4, 2)
    assert sorted(lead.name for lead in leads_of(context, tenant.id)) == sorted(formulas)

    export = client.get("/v1/export", params={"format": "csv"}, headers=tenant.auth("owner"))
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(export.content)) as archive:
        leads_csv = archive.read("leads.csv").decode()
    names = [row["name"] for row in csv.DictReader(io.StringIO(leads_csv))]
    assert sorted(names) == sorted("'" + formula for formula in formulas)

    _, *errors = error_rows(client, tenant, report)
    assert [row[2] for row in errors] == ["'\t=tab", "'\r=cr"]


def test_an_imported_consent_never_lifts_a_stop(
    client: TestClient,
    make_tenant: Callable[[], Tenant],
    context: TaskContext,
    worker: Any,
    sandbox_state: SandboxState,
) -> None:
    tenant = make_tenant()
    stopped, other = phones(2)
    with context.db.tenant(tenant.id) as session:
        cipher = context.keys.cipher(session, tenant.id)
        bidx = phone_index(cipher, stopped)
        change = OptoutChange(
            session, cipher, bidx, "keyword", "test", AfterCommit(), datetime.now(UTC)
        )
        assert record_optout(change)
    rows = [
        ["Stopped", stopped, "", "", "true", "2030-01-01T00:00:00Z", "I agree to texts"],
        ["Other", other, "", "", "true", "2030-01-01T00:00:00Z", "I agree to texts"],
    ]
    assert imported(client, tenant, csv_bytes(rows))["imported"] == 2
    with context.db.tenant(tenant.id) as session:
        assert is_opted_out(session, tenant.id, bidx)
    listed = client.get("/v1/suppressions", headers=tenant.auth(ADMIN)).json()["data"]
    assert len(listed) == 1

    # A campaign to consenting leads reaches the other lead, never the stopped one.
    headers = {**tenant.auth(ADMIN), "Idempotency-Key": uuid.uuid4().hex}
    body = {"name": "Spring", "template": "Hi {name}", "filter": {"consent": "sms"}}
    campaign = client.post("/v1/campaigns", json=body, headers=headers)
    assert campaign.status_code == 202
    path = f"/v1/campaigns/{campaign.json()['id']}"

    def counts() -> dict[str, int] | None:
        found: dict[str, int] = client.get(path, headers=tenant.auth(ADMIN)).json()["counts"]
        return found if found["targeted"] == 2 else None

    launched = wait_for(counts)
    assert launched["blocked"] == 1
    assert stopped not in [message["to"] for message in sandbox_state.sent()]


@pytest.mark.parametrize("role", ["ingest", "member"])
def test_roles_below_admin_are_refused(
    client: TestClient, make_tenant: Callable[[], Tenant], context: TaskContext, role: str
) -> None:
    tenant = make_tenant()
    (phone,) = phones(1)
    content = f"name,phone\r\nAda,{phone}\r\n".encode()
    assert upload(client, tenant.auth(role), content).status_code == 403
    assert count(context, tenant.id, LeadImport) == 0
    made = upload(client, tenant.auth(ADMIN), content)
    assert made.status_code == 202
    path = f"/v1/imports/{made.json()['id']}"
    assert client.get(path, headers=tenant.auth(role)).status_code == 403
    assert client.get(path + "/errors", headers=tenant.auth(role)).status_code == 403


def test_another_org_cannot_read_an_import_nor_its_errors(
    client: TestClient, make_tenant: Callable[[], Tenant], worker: Any
) -> None:
    owner, other = make_tenant(), make_tenant()
    report = imported(client, owner, csv_bytes([["Bad", "not a phone", "", "", "", "", ""]]))
    assert report["rejected"] == 1
    path = f"/v1/imports/{report['id']}"
    for url in (path, report["errors_url"]):
        response = client.get(url, headers=other.auth("owner"))
        assert response.status_code == 404
        assert "not a phone" not in response.text
    # The same file in another org is another import.
    again = upload(
        client, other.auth(ADMIN), csv_bytes([["Bad", "not a phone", "", "", "", "", ""]])
    )
    assert again.status_code == 202
    assert again.json()["id"] != report["id"]


def test_the_upload_is_audited_without_pii(
    client: TestClient, make_tenant: Callable[[], Tenant], context: TaskContext, worker: Any
) -> None:
    tenant = make_tenant()
    (phone,) = phones(1)
    report = imported(client, tenant, f"name,phone\r\nAda Audit,{phone}\r\n".encode())
    with context.db.tenant(tenant.id) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "import.created")
        ).one()
    assert entry.target == report["id"]
    assert entry.actor == f"key:{tenant.prefixes[ADMIN]}"
    assert entry.details == {"rows": 1, "columns": 2}
    assert phone not in str(entry.details) and "Ada" not in str(entry.details)


def test_rejected_rows_are_purged_with_old_inbound_payloads(
    client: TestClient, make_tenant: Callable[[], Tenant], context: TaskContext, worker: Any
) -> None:
    tenant = make_tenant()
    report = imported(client, tenant, csv_bytes([["Old", "not a phone", "", "", "", "", ""]]))
    assert len(error_rows(client, tenant, report)) == 2
    purge_inbound(context, context.clock() + timedelta(days=6))
    assert len(error_rows(client, tenant, report)) == 2  # kept for 7 days
    assert purge_inbound(context, context.clock() + timedelta(days=8))["import_errors_purged"] >= 1
    assert error_rows(client, tenant, report) == [["line", "reason", *HEADER]]
    assert client.get(f"/v1/imports/{report['id']}", headers=tenant.auth(ADMIN)).json() == report


def test_national_numbers_are_read_in_the_orgs_default_region(
    client: TestClient, make_tenant: Callable[[], Tenant], context: TaskContext, worker: Any
) -> None:
    tenant = make_tenant()
    with context.db.tenant(tenant.id) as session:
        set_default_region(session, tenant.id, "GB", actor="test")
    rows = [
        ["Ada", "020 7946 0958", "", "", "", "", ""],
        ["Bob", "+1 650 555 0123", "", "", "", "", ""],
    ]
    report = imported(client, tenant, csv_bytes(rows))
    assert (report["imported"], report["rejected"]) == (2, 0)
    assert sorted(lead.phone for lead in leads_of(context, tenant.id)) == [
        "+16505550123",
        "+442079460958",
    ]
