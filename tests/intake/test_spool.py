"""The spool for database outages, on a PostgreSQL server of this test's own that it stops.

While the server is down, verified Twilio SMS (a STOP among them) and API leads of orgs the
intake saw in the last seconds are answered 2xx and spooled, sealed; unknown orgs and a full
spool get 503 with Retry-After. Once the server is back the replayer stores every spooled
event exactly once (a second replay of the same rows adds nothing) and the STOP is a
suppression; a spool left by a stopped intake is drained by the next one at start-up.
"""

from __future__ import annotations

import json
import random
import secrets
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pgserver
import psycopg
import pytest
from cryptography.exceptions import InvalidTag
from pgserver._commands import pg_ctl
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient

from intake.app import create_app
from intake.spool import RoutingCache, Spool, database_unreachable, replay
from leadline.clock import utcnow
from leadline.sandbox import SandboxState
from models.billing import link_stripe_customer
from models.leads import phone_index
from models.messaging import Suppression
from models.migrate import upgrade
from models.orgs import create_api_key, create_organization
from models.routing import add_meta_account, add_phone_number
from models.tables import InboundEvent
from tasks.context import TaskContext, build_context
from tasks.sending import HELD_RETRY_SECONDS, deliver_outbound
from tests.helpers import wait_for
from tests.support.intake import random_number
from tests.support.messaging import queue_alerts, sent_to
from tests.support.services import Org
from tests.support.signing import (
    messenger_body,
    meta_headers,
    stripe_event,
    stripe_headers,
    telegram_headers,
    telegram_update,
    twilio_form,
    whatsapp_body,
)

pytestmark = pytest.mark.integration

SMS = "/hooks/twilio/sms"


@dataclass
class OwnPostgres:
    """A PostgreSQL server in a temporary directory that only this test module uses."""

    server: Any

    def stop(self) -> None:
        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    @contextmanager
    def down(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[OwnPostgres]:
    server = pgserver.get_server(Path(tempfile.mkdtemp(prefix="spool-pg-")), cleanup_mode="delete")
    yield OwnPostgres(server)
    server.cleanup()


@pytest.fixture(scope="module")
def own_context(context: TaskContext, own_postgres: OwnPostgres) -> Iterator[TaskContext]:
    """The session's settings (broker, keys, secrets) on the module's own server."""
    settings = context.settings.model_copy(
        update={
            "leadline_database_url": own_postgres.server.get_uri(),
            "leadline_app_database_url": None,
        }
    )
    own = build_context(settings)
    upgrade(own.db.owner_engine)
    yield own
    own.db.dispose()


def make_org(context: TaskContext) -> tuple[Org, str]:
    org_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        create_organization(session, context.keyring, org_id, "Spool Org", actor="test")
        key = create_api_key(session, org_id, actor="test")
        number = add_phone_number(session, org_id, random_number(), actor="test")
    return Org(org_id, key.key), number


@contextmanager
def intake(context: TaskContext, spool_path: Path, **overrides: Any) -> Iterator[TestClient]:
    settings = context.settings.model_copy(
        update={"leadline_spool_path": str(spool_path), **overrides}
    )
    app = create_app(TaskContext(settings, context.db, context.keys, context.clock))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def post_sms(client: TestClient, to: str, sender: str, body: str) -> Any:
    params = [("MessageSid", "SM" + secrets.token_hex(16)), ("From", sender), ("To", to)]
    form, headers = twilio_form([*params, ("Body", body)], SMS)
    return client.post(SMS, content=form, headers=headers)


def post_lead(client: TestClient, org: Org, phone: str, key: str | None = None) -> Any:
    headers = {**org.auth, **({"Idempotency-Key": key} if key else {})}
    lead = {"name": "Spooled Lead", "phone": phone, "email": "spooled.lead@example.com"}
    return client.post("/v1/leads", json=lead, headers=headers)


def events(context: TaskContext, org_id: uuid.UUID) -> list[InboundEvent]:
    with context.db.tenant(org_id) as session:
        return list(session.scalars(select(InboundEvent)))


def suppressed(context: TaskContext, org_id: uuid.UUID, phone: str) -> bool:
    with context.db.tenant(org_id) as session:
        bidx = phone_index(context.keys.cipher(session, org_id), phone)
        rows = session.scalars(select(Suppression).where(Suppression.recipient_bidx == bidx))
        return rows.first() is not None


def spool_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def copy_spool(path: Path, target: Path) -> None:
    """A consistent copy (WAL included) of the spool as it is now."""
    source = sqlite3.connect(path)
    with sqlite3.connect(target) as copy:
        source.backup(copy)
    source.close()


def test_outage_is_spooled_then_replayed_exactly_once(
    own_context: TaskContext, own_postgres: OwnPostgres
) -> None:
    org, number = make_org(own_context)
    workdir = Path(tempfile.mkdtemp(prefix="spool-"))
    path, snapshot = workdir / "spool.sqlite3", workdir / "snapshot.sqlite3"
    senders = [random_number() for _ in range(4)]
    stopper, lead_phone = senders[0], random_number()
    with intake(own_context, path, leadline_spool_max_events=7) as client:
        assert post_lead(client, org, random_number()).status_code == 202  # warms the cache
        assert post_sms(client, number, random_number(), "hello").status_code == 200
        with own_postgres.down():
            sms = [post_sms(client, number, stopper, "STOP")]
            sms += [post_sms(client, number, s, f"body text {s}") for s in senders[1:]]
            leads = [
                post_lead(client, org, lead_phone, "spool-key-1"),
                post_lead(client, org, lead_phone),
                post_lead(client, org, lead_phone),
            ]
            assert [r.status_code for r in sms] == [200] * 4
            assert [r.status_code for r in leads] == [202] * 3
            ids = {r.json()["id"] for r in leads}
            assert len(ids) == 3

            unknown_number = post_sms(client, random_number(), random_number(), "hi")
            unknown_key = post_lead(client, Org(uuid.uuid4(), "ll_unknown_key"), lead_phone)
            full = post_sms(client, number, random_number(), "one too many")
            for refused in (unknown_number, unknown_key, full):
                assert refused.status_code == 503
                assert int(refused.headers["Retry-After"]) > 0

            stored = spool_bytes(path)
            for secret in [*senders, lead_phone, "STOP", "body text", "Spooled Lead"]:
                assert secret.encode() not in stored
                assert secret.lstrip("+").encode() not in stored
            assert b"spooled.lead" not in stored
            copy_spool(path, snapshot)
            assert Spool(snapshot, own_context.keyring, 100).count() == 7

        spool = Spool(path, own_context.keyring, 100)
        wait_for(lambda: spool.count() == 0)

    stored_events = events(own_context, org.id)
    assert len(stored_events) == 2 + 7
    assert {str(e.id) for e in stored_events} >= ids
    assert suppressed(own_context, org.id, stopper)

    # A replayer that died between storing and deleting replays the same rows again.
    assert replay(own_context, Spool(snapshot, own_context.keyring, 100)) == 7
    assert sorted(e.id for e in events(own_context, org.id)) == sorted(e.id for e in stored_events)
    shutil.rmtree(workdir)


def test_a_restarted_intake_drains_the_spool_it_finds(
    own_context: TaskContext, own_postgres: OwnPostgres
) -> None:
    org, number = make_org(own_context)
    workdir = Path(tempfile.mkdtemp(prefix="spool-"))
    path = workdir / "spool.sqlite3"
    with own_postgres.down():
        with intake(own_context, path) as client:
            # A cold intake knows no org: nothing is spooled, the provider is told to retry.
            assert post_lead(client, org, random_number()).status_code == 503
        own_postgres.start()
        with intake(own_context, path) as client:
            assert post_lead(client, org, random_number()).status_code == 202
            assert post_sms(client, number, random_number(), "warm").status_code == 200
            own_postgres.stop()
            assert post_sms(client, number, random_number(), "spooled").status_code == 200
            assert post_lead(client, org, random_number(), "restart-1").status_code == 202
        assert Spool(path, own_context.keyring, 100).count() == 2
    with intake(own_context, path):
        wait_for(lambda: Spool(path, own_context.keyring, 100).count() == 0)
    assert len(events(own_context, org.id)) == 4
    shutil.rmtree(workdir)


def test_an_event_that_cannot_be_stored_does_not_hold_back_the_rest(
    own_context: TaskContext,
) -> None:
    org, _ = make_org(own_context)
    workdir = Path(tempfile.mkdtemp(prefix="spool-"))
    spool = Spool(workdir / "spool.sqlite3", own_context.keyring, 100)
    spool.put(uuid.uuid4(), "api", "no-such-org", {"name": "x"})  # its org is gone
    spool.put(org.id, "api", "behind-it", {"name": "y"})
    assert replay(own_context, spool) == 1
    assert [e.external_id for e in events(own_context, org.id)] == ["behind-it"]
    assert [e.external_id for e in spool.oldest()] == ["no-such-org"]
    shutil.rmtree(workdir)


def test_an_api_key_is_forgotten_after_its_ttl_a_number_after_the_longer_one() -> None:
    now = [0.0]
    cache = RoutingCache(
        key_ttl=30, provider_ttl=86_400, generation=lambda _: 0, clock=lambda: now[0]
    )
    org_id = uuid.uuid4()
    cache.remember("api_key", "hash", org_id)
    cache.remember("number", "+14155550100", org_id)
    now[0] = 29.9
    assert cache.recall("api_key", "hash") == org_id
    now[0] = 30.0
    assert cache.recall("api_key", "hash") is None
    assert cache.recall("number", "+14155550100") == org_id
    assert cache.recall("api_key", "+14155550100") is None
    now[0] = 86_400.0
    assert cache.recall("number", "+14155550100") is None


def test_a_routing_is_dropped_when_its_table_changes_or_a_lookup_misses_it() -> None:
    generations = {"org_phone_numbers": 0, "meta_accounts": 0}
    cache = RoutingCache(key_ttl=30, provider_ttl=86_400, generation=generations.__getitem__)
    org_id = uuid.uuid4()
    cache.remember("number", "+14155550100", org_id)
    cache.remember("meta_accounts", "page-1", org_id)
    generations["org_phone_numbers"] += 1  # a number was added or removed somewhere
    assert cache.recall("number", "+14155550100") is None
    assert cache.recall("meta_accounts", "page-1") == org_id
    cache.forget("meta_accounts", "page-1")
    assert cache.recall("meta_accounts", "page-1") is None


def test_a_sealed_event_opens_only_for_its_own_org_source_and_id(
    context: TaskContext, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", context.keyring, 100)
    org_id = uuid.uuid4()
    spool.put(org_id, "twilio_sms", "SM1", {"params": {"Body": "STOP"}})
    row = spool.conn.execute(
        "SELECT row, event_id, org_id, source, external_id, key_id, sealed FROM events"
    ).fetchone()
    assert spool.unseal(*row).payload == {"params": {"Body": "STOP"}}
    with pytest.raises(InvalidTag):
        spool.unseal(row[0], row[1], str(uuid.uuid4()), *row[3:])
    with pytest.raises(InvalidTag):
        spool.unseal(*row[:3], "api", *row[4:])
    with pytest.raises(InvalidTag):
        spool.unseal(*row[:4], "SM2", *row[5:])


def test_stripe_meta_telegram_and_status_callbacks_are_spooled_for_known_orgs(
    own_context: TaskContext, own_postgres: OwnPostgres
) -> None:
    org, number = make_org(own_context)
    customer, page = f"cus_{uuid.uuid4().hex[:14]}", str(random.randint(10**14, 10**15))
    with own_context.db.tenant(org.id) as session:
        link_stripe_customer(session, org.id, customer, actor="test")
        add_meta_account(session, org.id, page, actor="test")
    workdir = Path(tempfile.mkdtemp(prefix="spool-"))
    path = workdir / "spool.sqlite3"
    status_path = "/hooks/twilio/status"
    query = f"org={org.id}"

    def stripe(event_id: str) -> Any:
        kind = "customer.subscription.updated"
        body = json.dumps(stripe_event(kind, customer, int(time.time()), event_id=event_id))
        return client.post(
            "/hooks/stripe", content=body.encode(), headers=stripe_headers(body.encode())
        )

    def meta(mid: str, account: str = page) -> Any:
        body = messenger_body(account, "psid-1", [(mid, "hello from messenger")])
        return client.post("/hooks/meta", content=body, headers=meta_headers(body))

    def telegram(update_id: int, org_id: uuid.UUID = org.id) -> Any:
        return client.post(
            f"/hooks/telegram/{org_id}",
            json=telegram_update(update_id, 42, "hello from telegram"),
            headers=telegram_headers(),
        )

    def status(sid: str) -> Any:
        params = [("MessageSid", sid), ("MessageStatus", "delivered"), ("From", number)]
        form, headers = twilio_form(params, status_path, query=query)
        return client.post(f"{status_path}?{query}", content=form, headers=headers)

    with intake(own_context, path) as client:
        warm = [stripe("evt_warm"), meta("mid.warm"), telegram(1), status("SM" + "a" * 32)]
        assert [r.status_code for r in warm] == [200, 200, 200, 204]
        with own_postgres.down():
            spooled = [stripe("evt_down"), meta("mid.down"), telegram(2), status("SM" + "b" * 32)]
            assert [r.status_code for r in spooled] == [200, 200, 200, 204]
            assert Spool(path, own_context.keyring, 100).count() == 4
            unknown = [meta("mid.x", "1" * 15), telegram(3, uuid.uuid4())]
            assert [r.status_code for r in unknown] == [503, 503]
        wait_for(lambda: Spool(path, own_context.keyring, 100).count() == 0)
    sources = sorted(e.source for e in events(own_context, org.id))
    assert sources == sorted(["stripe", "meta", "telegram", "twilio_status"] * 2)
    shutil.rmtree(workdir)


def test_only_an_unreachable_server_counts_as_an_outage() -> None:
    def wrapped(orig: Exception) -> OperationalError:
        return OperationalError("SELECT 1", {}, orig)

    assert database_unreachable(wrapped(psycopg.OperationalError("connection refused")))
    assert database_unreachable(wrapped(psycopg.errors.AdminShutdown("shutting down")))
    assert database_unreachable(wrapped(psycopg.errors.CannotConnectNow("starting up")))
    # A refused statement is the request's own failure: never spooled as if it were taken.
    assert not database_unreachable(wrapped(psycopg.errors.SerializationFailure("retry")))
    assert not database_unreachable(wrapped(psycopg.errors.DeadlockDetected("deadlock")))
    assert not database_unreachable(ValueError("not a database error"))


def test_a_spooled_stop_holds_before_the_events_spooled_ahead_of_it_are_stored(
    own_context: TaskContext, own_postgres: OwnPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chaos run: a lead and the person's STOP spooled in that order; the replayer stored the
    lead first, a worker sent its auto-reply, and only then the STOP was replayed."""
    import intake.spool as spool_module

    org, number = make_org(own_context)
    person = random_number()
    workdir = Path(tempfile.mkdtemp(prefix="spool-"))
    path = workdir / "spool.sqlite3"
    seen: list[bool] = []
    store = spool_module.store_inbound_event

    def observed_store(context: TaskContext, org_id: uuid.UUID, *args: Any, **kw: Any) -> Any:
        seen.append(suppressed(own_context, org.id, person))
        return store(context, org_id, *args, **kw)

    monkeypatch.setattr(spool_module, "store_inbound_event", observed_store)
    with intake(own_context, path) as client:
        assert post_lead(client, org, random_number()).status_code == 202  # warms the cache
        assert post_sms(client, number, random_number(), "warm").status_code == 200
        with own_postgres.down():
            assert post_lead(client, org, person, "ahead-of-the-stop").status_code == 202
            assert post_sms(client, number, person, "STOP").status_code == 200
            back = datetime.now(UTC)
        wait_for(lambda: Spool(path, own_context.keyring, 100).count() == 0)
    assert seen[:2] == [True, True]
    assert suppressed(own_context, org.id, person)
    # Stored with the time they reached the intake, not the time they were replayed.
    arrived = [e.source for e in events(own_context, org.id) if e.received_at < back]
    assert sorted(arrived) == ["api", "api", "twilio_sms", "twilio_sms"]
    shutil.rmtree(workdir)


def test_a_spooled_lead_under_a_key_another_lead_took_is_kept_under_its_own_id(
    own_context: TaskContext, own_postgres: OwnPostgres
) -> None:
    """During an outage the intake cannot tell a retry from a key reused with another body:
    it answered 202, so the replayer keeps that lead rather than dropping it as a retry."""
    org, _ = make_org(own_context)
    workdir = Path(tempfile.mkdtemp(prefix="spool-"))
    path = workdir / "spool.sqlite3"
    with intake(own_context, path) as client:
        first = post_lead(client, org, random_number(), "taken-key")
        assert first.status_code == 202
        with own_postgres.down():
            retry = post_lead(client, org, random_number(), "taken-key")
            assert retry.status_code == 202
        wait_for(lambda: Spool(path, own_context.keyring, 100).count() == 0)
    stored = {str(e.id): e for e in events(own_context, org.id)}
    assert set(stored) == {first.json()["id"], retry.json()["id"]}
    assert stored[first.json()["id"]].external_id == "taken-key"
    assert stored[retry.json()["id"]].external_id is None
    shutil.rmtree(workdir)


def test_a_spooled_stop_holds_the_orgs_sms_until_the_replayer_records_it(
    own_context: TaskContext,
    own_postgres: OwnPostgres,
    broker: dramatiq.Broker,
    sandbox_state: SandboxState,
) -> None:
    """Chaos run: an SMS queued before the outage was claimed as soon as the database came
    back, 0.2 s before the replayer recorded the STOP its recipient had sent meanwhile."""
    org, number = make_org(own_context)
    person = random_number()
    (queued,) = queue_alerts(own_context, org.id, person, 1, enqueue=False)
    workdir = Path(tempfile.mkdtemp(prefix="spool-"))
    path = workdir / "spool.sqlite3"
    with intake(own_context, path) as client:
        assert post_sms(client, number, random_number(), "warm").status_code == 200
        own_postgres.stop()
        assert post_sms(client, number, person, "STOP").status_code == 200
    own_postgres.start()  # and no intake runs: nothing is replayed yet

    assert deliver_outbound(own_context, org.id, queued) == "held"
    assert sent_to(sandbox_state, person) == []
    assert replay(own_context, Spool(path, own_context.keyring, 100)) == 1
    later = TaskContext(
        own_context.settings,
        own_context.db,
        own_context.keys,
        lambda: utcnow() + timedelta(seconds=HELD_RETRY_SECONDS + 1),
    )
    assert deliver_outbound(later, org.id, queued) == "blocked"
    assert sent_to(sandbox_state, person) == []
    shutil.rmtree(workdir)


def test_a_spooled_whatsapp_stop_holds_sms_to_that_number_until_it_is_recorded(
    own_context: TaskContext,
    own_postgres: OwnPostgres,
    broker: Any,
    sandbox_state: SandboxState,
) -> None:
    """The same for a STOP on WhatsApp: it suppresses SMS to the sender's number, so while it
    waits in the spool the org's SMS are held, and once replayed the queued SMS is blocked."""
    org, _ = make_org(own_context)
    account = str(random.randint(10**14, 10**15))
    with own_context.db.tenant(org.id) as session:
        add_meta_account(session, org.id, account, actor="test")
    person = random_number()
    (queued,) = queue_alerts(own_context, org.id, person, 1, enqueue=False)
    workdir = Path(tempfile.mkdtemp(prefix="spool-"))
    path = workdir / "spool.sqlite3"

    def whatsapp(mid: str, text: str) -> Any:
        body = whatsapp_body(account, person.removeprefix("+"), mid, text, "Ana")
        return client.post("/hooks/meta", content=body, headers=meta_headers(body))

    with intake(own_context, path) as client:
        assert whatsapp("wamid.warm", "hello").status_code == 200
        own_postgres.stop()
        assert whatsapp("wamid.stop", "STOP").status_code == 200
    own_postgres.start()

    assert deliver_outbound(own_context, org.id, queued) == "held"
    assert replay(own_context, Spool(path, own_context.keyring, 100)) == 1
    later = TaskContext(
        own_context.settings,
        own_context.db,
        own_context.keys,
        lambda: utcnow() + timedelta(seconds=HELD_RETRY_SECONDS + 1),
    )
    assert deliver_outbound(later, org.id, queued) == "blocked"
    assert suppressed(own_context, org.id, person)
    assert sent_to(sandbox_state, person) == []
    shutil.rmtree(workdir)
