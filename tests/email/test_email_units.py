"""The pure parts of email: basic auth, unsubscribe tokens, what Postmark's answers and
webhooks mean, the email document a row holds, and the production checks."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from intake.verify import verify_basic_auth
from leadline.errors import ConfigError, VerificationError
from leadline.settings import Settings, email_problems
from models.email_content import EmailContent, decode_email
from tasks.email_events import kept_fields, suppression_reason
from tasks.providers import postmark_answer
from tasks.unsubscribe import UnsubscribeTarget, make_token, read_token, signing_key
from tests.support.services import random_master_key

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_takes_only_both_halves_right() -> None:
    verify_basic_auth("hooks", "s3cret:with:colons", header("hooks", "s3cret:with:colons"))
    verify_basic_auth("hooks", "pw", "basic " + header("hooks", "pw").split()[1])
    for given in (
        header("hooks", "wrong"),
        header("other", "pw"),
        header("hooks", "pw") + "=",
        "Digest " + header("hooks", "pw").split()[1],
        "Basic " + base64.b64encode(b"hookspw").decode(),
        "",
        None,
    ):
        with pytest.raises(VerificationError):
            verify_basic_auth("hooks", "pw", given)


def settings(**values: object) -> Settings:
    return Settings(leadline_master_keys=random_master_key("k1"), **values)  # type: ignore[arg-type]


def test_a_token_names_org_and_lead_and_nothing_else() -> None:
    signing = settings()
    target = UnsubscribeTarget(uuid.uuid4(), uuid.uuid4())
    token = make_token(signing, target, NOW)
    assert read_token(signing, token, NOW + timedelta(days=89)) == target
    assert len(token) < 80 and "@" not in token
    with pytest.raises(VerificationError):
        read_token(signing, token, NOW + timedelta(days=90))
    with pytest.raises(VerificationError):
        read_token(settings(), token, NOW)  # another master key: another signing key


def test_the_unsubscribe_secret_is_required_in_production_only() -> None:
    chosen = settings(leadline_unsubscribe_secret=SecretStr("u" * 40))
    assert signing_key(chosen) != signing_key(settings())
    production = Settings(leadline_env="production")
    with pytest.raises(ConfigError):
        signing_key(production)


def test_production_email_needs_webhook_credentials_a_secret_and_real_postmark() -> None:
    off = Settings(leadline_env="production")
    assert email_problems(off) == []
    on = Settings(
        leadline_env="production",
        postmark_server_token=SecretStr("server-token"),
        postmark_api_base="http://127.0.0.1:8025",
    )
    problems = " ".join(email_problems(on))
    for name in (
        "POSTMARK_WEBHOOK_USER",
        "POSTMARK_WEBHOOK_PASSWORD",
        "LEADLINE_UNSUBSCRIBE_SECRET",
        "POSTMARK_API_BASE",
    ):
        assert name in problems
    ready = on.model_copy(
        update={
            "postmark_api_base": "https://api.postmarkapp.com",
            "postmark_webhook_user": SecretStr("postmark"),
            "postmark_webhook_password": SecretStr("Zq8-vR2_mX5pL0wK7nB4"),
            "leadline_unsubscribe_secret": SecretStr("Zq8-vR2_mX5pL0wK7nB4aY1cT6dF9gH3j"),
        }
    )
    assert email_problems(ready) == []


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (200, {"ErrorCode": 0, "MessageID": "abc", "Message": "OK"}, "sent", None),
        (422, {"ErrorCode": 406, "Message": "inactive"}, "blocked", "postmark_406"),
        (422, {"ErrorCode": 300, "Message": "invalid"}, "failed", "postmark_300"),
        (401, {"ErrorCode": 10, "Message": "bad token"}, "failed", "postmark_10"),
        (429, {"ErrorCode": 429, "Message": "slow down"}, "retry", "postmark_429"),
        (503, {}, "retry", "503"),
        (200, {"ErrorCode": 0}, "failed", "postmark_0"),
    ],
)
def test_what_postmark_answered(
    status: int, body: dict[str, object], kind: str, code: str | None
) -> None:
    result = postmark_answer(status, body)
    assert (result.kind, result.code) == (kind, code)


def test_webhooks_keep_only_what_they_need() -> None:
    payload = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "Email": "a@example.com",
        "Content": "the whole bounced message",
        "Subject": "Spring check-up",
        "Details": "smtp;550",
    }
    assert kept_fields(payload) == {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "Email": "a@example.com",
    }
    assert suppression_reason(kept_fields(payload)) == "email_hard_bounce"
    assert suppression_reason({"RecordType": "Bounce", "Type": "Unsubscribe"}) == (
        "email_unsubscribe"
    )
    assert suppression_reason({"RecordType": "Delivery"}) is None


def test_an_email_document_round_trips() -> None:
    content = EmailContent(
        "news@roofs.example",
        "Spring",
        "Hi\nthere",
        "broadcast",
        (("List-Unsubscribe", "<https://x/unsubscribe/t>"),),
    )
    assert decode_email(content.encode()) == content
