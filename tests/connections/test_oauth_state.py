"""The OAuth state's signature and expiry, and the settings social channels need in
production. Pure: no services."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from leadline.errors import VerificationError
from leadline.settings import Settings, meta_oauth_problems
from tasks.oauth_state import StateClaims, new_claims, sign_state, state_key, verify_state

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
KEY = b"k" * 32


def claims() -> StateClaims:
    return new_claims(uuid.uuid4(), "key:ll_abc", NOW)


def test_a_signed_state_verifies_until_ten_minutes_have_passed() -> None:
    issued = claims()
    state = sign_state(KEY, issued)
    assert verify_state(KEY, state, NOW + timedelta(minutes=9, seconds=59)) == issued
    with pytest.raises(VerificationError):
        verify_state(KEY, state, NOW + timedelta(minutes=10))


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.replace(".", ".x", 1),  # signature altered
        lambda s: ("f" if s[0] != "f" else "g") + s[1:],  # claims altered
        lambda s: s.split(".")[0],  # unsigned
        lambda s: s + "=" * 2000,  # oversized
        lambda s: "not-a-state",
        lambda s: "",
    ],
)
def test_any_damage_is_refused(damage: object) -> None:
    state = sign_state(KEY, claims())
    with pytest.raises(VerificationError):
        verify_state(KEY, damage(state), NOW)  # type: ignore[operator]


def test_another_key_does_not_verify() -> None:
    with pytest.raises(VerificationError):
        verify_state(b"other" * 8, sign_state(KEY, claims()), NOW)


def test_two_states_for_the_same_principal_have_different_nonces() -> None:
    assert claims().nonce != claims().nonce


def test_development_derives_a_key_from_the_app_secret_and_production_refuses_to() -> None:
    dev = Settings(meta_app_secret="dev-secret-value")
    assert state_key(dev) == state_key(Settings(meta_app_secret="dev-secret-value"))
    assert state_key(dev) != state_key(Settings(meta_app_secret="another-secret"))
    assert state_key(Settings(leadline_oauth_state_secret="own-key")) == b"own-key"


def test_production_needs_a_strong_state_key_and_metas_own_urls() -> None:
    assert meta_oauth_problems(Settings()) == []  # social channels off
    weak = Settings(meta_app_id="123", meta_oauth_base="http://127.0.0.1:8025")
    problems = " ".join(meta_oauth_problems(weak))
    assert "LEADLINE_OAUTH_STATE_SECRET" in problems
    assert "META_APP_SECRET" in problems
    assert "META_OAUTH_BASE" in problems and "META_GRAPH_BASE" not in problems
    ready = Settings(
        meta_app_id="123",
        meta_app_secret="s" * 32,
        leadline_oauth_state_secret="Zq8vN2xL0pR7tK4mW9bY1cF6hJ3sD5gA",
    )
    assert meta_oauth_problems(ready) == []
