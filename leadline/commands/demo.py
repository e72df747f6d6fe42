"""`leadline up --demo`: exercise the running stack and show what was stored (no plaintext)."""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psycopg
import redis
import typer
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from leadline.errors import ConfigError
from leadline.jsondata import JsonObject
from leadline.settings import Settings

if TYPE_CHECKING:
    from leadline.sandbox import SentMessage
    from tasks.context import TaskContext

DEMO_OWNER_PHONE = "+14155550100"
DEMO_CHAT_ID = 424242
DEMO_LEADS: list[JsonObject] = [
    {
        "name": "Ada Lovelace",
        "phone": "+14155550123",
        "email": "ada@example.com",
        "message": "Need a quote for a roof",
        "consent": {"sms": True, "text": "I agree to texts"},
    },
    {"name": "Ada L.", "phone": "(415) 555-0123", "message": "Any update?"},
    {"name": "Grace Hopper", "email": "grace@example.com", "message": "Call me back"},
]


@contextmanager
def isolated_settings(settings: Settings) -> Iterator[Settings]:
    """The demo's own state directory, database and Redis namespace, removed afterwards.

    Nothing is shared with a stack already running: without service URLs the demo starts its
    own embedded servers in a temporary directory; with them, it makes its own database and
    namespace on those servers (on RabbitMQ: queues named after that namespace). Its worker and
    scheduler serve no metrics port (the stack's hold 9190 and 9191, 9192, ...).
    """
    suffix = uuid.uuid4().hex[:10]
    database = f"leadline_demo_{suffix}"
    if settings.leadline_database_url is not None:
        create_database(settings.leadline_database_url, database)
    state_dir = Path(tempfile.mkdtemp(prefix="leadline-demo-"))
    namespace = f"{settings.leadline_redis_namespace}-demo-{suffix}"
    updates: dict[str, object] = {
        "leadline_state_dir": str(state_dir),
        "leadline_backup_dir": str(state_dir / "backups"),
        "leadline_backup_url": None,  # its own directory, even when the stack uses a bucket
        "leadline_redis_namespace": namespace,
        "leadline_worker_metrics_port": 0,
        "leadline_scheduler_metrics_port": 0,
    }
    if settings.leadline_database_url is not None:
        updates["leadline_database_url"] = with_database(settings.leadline_database_url, database)
        if settings.leadline_app_database_url is not None:
            updates["leadline_app_database_url"] = with_database(
                settings.leadline_app_database_url, database
            )
    try:
        yield settings.model_copy(update=updates)
    finally:
        if settings.leadline_database_url is not None:
            drop_database(settings.leadline_database_url, database)
        if settings.leadline_redis_url is not None:
            delete_namespace(settings.leadline_redis_url, namespace)
        delete_rabbitmq_queues()
        shutil.rmtree(state_dir, ignore_errors=True)


def delete_rabbitmq_queues() -> None:
    """The demo's queues, when it ran on RabbitMQ (its namespace names them)."""
    import dramatiq

    from workers.brokers import RabbitmqLeadlineBroker

    broker = dramatiq.get_broker()
    if isinstance(broker, RabbitmqLeadlineBroker):
        broker.delete_queues()


def psycopg_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def create_database(url: str, database: str) -> None:
    try:
        with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
    except psycopg.Error:
        raise ConfigError(
            "the demo could not create its own database (grant CREATEDB to the role of "
            "LEADLINE_DATABASE_URL, or unset it to use embedded PostgreSQL)"
        ) from None


def drop_database(url: str, database: str) -> None:
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def delete_namespace(url: str, namespace: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{namespace}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def run_demo(context: TaskContext, intake_url: str, sandbox_url: str) -> None:
    from models.orgs import create_api_key, create_organization, set_default_region

    org_id = uuid.uuid4()
    with context.db.tenant(org_id) as session:
        create_organization(session, context.keyring, org_id, "Demo Roofing", actor="demo")
        # the second lead's national number is read as a US one, as `org settings` would set
        set_default_region(session, org_id, "US", actor="demo")
        api_key = create_api_key(session, org_id, actor="demo")
    add_alert_recipients(context, org_id)
    typer.echo(
        f"organisation {org_id}, API key {api_key.prefix}…, alerts to 1 SMS number and 1 chat"
    )
    for index, lead in enumerate(DEMO_LEADS):
        response = httpx.post(
            f"{intake_url}/v1/leads",
            json=lead,
            timeout=10,
            headers={"Authorization": f"Bearer {api_key.key}", "Idempotency-Key": f"demo-{index}"},
        )
        typer.echo(f"POST /v1/leads -> {response.status_code} {response.json()}")
    wait_for_processing(context, org_id, expected_events=len(DEMO_LEADS))
    show_stored(context, org_id)
    show_sent(sandbox_url)


def add_alert_recipients(context: TaskContext, org_id: uuid.UUID) -> None:
    """The business owner's phone and a linked Telegram chat, as an operator would set up."""
    from models.alert_settings import add_alert_number
    from models.telegram_links import set_chat_status

    with context.db.tenant(org_id) as session:
        cipher = context.keys.cipher(session, org_id)
        add_alert_number(session, cipher, DEMO_OWNER_PHONE, actor="demo")
        set_chat_status(session, cipher, DEMO_CHAT_ID, "linked", context.clock())


def wait_for_processing(context: TaskContext, org_id: uuid.UUID, expected_events: int) -> None:
    from models.tables import InboundEvent

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with context.db.tenant(org_id) as session:
            done = session.scalar(
                select(func.count())
                .where(InboundEvent.status == "processed")
                .select_from(InboundEvent)
            )
        if done == expected_events:
            return
        time.sleep(0.2)
    raise typer.Exit(1)


def show_stored(context: TaskContext, org_id: uuid.UUID) -> None:
    from models.tables import Lead

    with context.db.tenant(org_id) as session:
        leads = session.scalars(select(Lead).order_by(Lead.created_at)).all()
    typer.echo(f"{len(leads)} leads stored (the two posts with the same phone became one):")
    for lead in leads:
        sizes = {
            column: len(getattr(lead, column) or b"")
            for column in ("name_ct", "phone_ct", "email_ct", "first_message_ct")
        }
        typer.echo(f"  lead {lead.id}: ciphertext bytes {sizes}, sms consent {lead.sms_consent}")


def show_sent(sandbox_url: str, expected: int = 4) -> None:
    """What "left" for Twilio and Telegram: one SMS and one Telegram alert per new lead."""
    sent: list[SentMessage] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(sent) < expected:
        sent = httpx.get(f"{sandbox_url}/sent", timeout=5).json()
        time.sleep(0.2)
    channels = sorted(message["channel"] for message in sent)
    typer.echo(f"provider sandbox received {len(sent)} alerts: {', '.join(channels)}")
    if len(sent) < expected:
        raise typer.Exit(1)
