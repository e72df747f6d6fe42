"""Settings: one typed object built from the environment. Nothing else reads os.environ."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadline.errors import ConfigError
from leadline.objectstore import store_url

Environment = Literal["development", "test", "production"]
MASTER_KEY_BYTES = 32
PROVIDER_SECRETS: dict[str, tuple[str, ...]] = {
    "twilio": ("twilio_auth_token",),
    "stripe": ("stripe_webhook_secret",),
    "telegram": ("telegram_secret_token",),
    "meta": ("meta_app_secret", "meta_verify_token"),
}
MIN_OPS_TOKEN_LENGTH = 32
# Production minimums for secrets (README, "Security model"), by estimate_entropy_bits. A master
# key must also show at least MIN_KEY_DISTINCT distinct bytes and successive differences.
MIN_KEY_DISTINCT = 20
MIN_OPS_TOKEN_BITS = 90
MIN_PROVIDER_SECRET_LENGTH = 16
MIN_PROVIDER_SECRET_BITS = 40
BROKER_SCHEMES = ("amqp", "amqps", "redis", "rediss", "unix")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# JWS algorithms an OIDC access token may be signed with: public-key ones only, so a key
# published in the JWKS can never be used as an HMAC secret (HS/RS confusion) and `none` is out.
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    leadline_env: Environment = "development"
    leadline_database_url: str | None = None
    leadline_app_database_url: str | None = None
    leadline_redis_url: str | None = None
    leadline_redis_namespace: str = "leadline"
    # The Dramatiq broker: `amqp://` (RabbitMQ) or `redis://`; unset, the Redis above.
    leadline_broker_url: str | None = None
    leadline_master_keys: SecretStr | None = None
    leadline_public_url: str = "http://127.0.0.1:8000"
    # Where backups live (docs/retention.md "Where backups live"): LEADLINE_BACKUP_URL, a
    # file:///path or s3://bucket/prefix URL; LEADLINE_BACKUP_DIR is the shorthand for
    # file://DIR, used when no URL is set. S3 credentials: boto3's standard chain (AWS_*).
    leadline_backup_dir: str = ".leadline/backups"
    leadline_backup_url: str | None = None
    leadline_s3_endpoint_url: str | None = None
    leadline_state_dir: str = ".leadline"
    leadline_log_level: str = "INFO"
    leadline_ops_token: SecretStr | None = None
    leadline_worker_metrics_host: str = "127.0.0.1"
    leadline_worker_metrics_port: int = Field(default=9191, ge=0, le=65535)
    leadline_scheduler_metrics_host: str = "127.0.0.1"
    leadline_scheduler_metrics_port: int = Field(default=9190, ge=0, le=65535)
    # /healthz of a worker or scheduler: 503 once its loop has not turned for this long.
    leadline_liveness_stale_seconds: float = Field(default=30.0, gt=0, le=3600)
    leadline_allow_private_webhook_targets: bool = False
    leadline_worker_threads: int = Field(default=8, ge=1, le=256)
    leadline_max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Retention windows (the seeds' promises) and the scheduler's pace.
    leadline_backup_retention_days: int = Field(default=90, ge=1)
    leadline_deletion_grace_days: int = Field(default=30, ge=0)
    leadline_erasure_deadline_hours: int = Field(default=72, ge=1)
    leadline_inbound_payload_retention_days: int = Field(default=7, ge=0)
    leadline_sweep_pending_after_seconds: int = Field(default=30, ge=1)
    leadline_retention_batch_size: int = Field(default=500, ge=1, le=10_000)
    leadline_scheduler_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # Outbound webhooks (docs/webhooks.md). The schedule is seconds after each failed try.
    leadline_webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    leadline_webhook_timeout_seconds: float = Field(default=15.0, gt=0, le=60)
    leadline_webhook_disable_after_hours: float = Field(default=120.0, gt=0)
    leadline_webhook_max_in_flight: int = Field(default=500, ge=1, le=5000)
    leadline_webhook_sweep_grace_seconds: float = Field(default=60.0, ge=0)

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    # A Messaging Service (MG…, a 10DLC campaign) sent instead of `From` (docs/messaging.md).
    twilio_messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    twilio_api_base: str | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_secret_token: SecretStr | None = None
    telegram_api_base: str = "https://api.telegram.org"
    stripe_webhook_secret: SecretStr | None = None
    meta_app_secret: SecretStr | None = None
    meta_verify_token: SecretStr | None = None
    # Social channels connected by OAuth (docs/messaging.md "Social channels"): the Meta app,
    # where its login dialog and the Graph API are (the provider sandbox in development), and
    # the key that signs OAuth `state` values (development falls back to one derived from
    # META_APP_SECRET; production requires its own).
    meta_app_id: str | None = None
    meta_oauth_base: str = "https://www.facebook.com/v21.0"
    meta_graph_base: str = "https://graph.facebook.com/v21.0"
    meta_oauth_scopes: str = (
        "pages_show_list,pages_messaging,instagram_basic,instagram_manage_messages,"
        "business_management,whatsapp_business_management,whatsapp_business_messaging"
    )
    leadline_oauth_state_secret: SecretStr | None = None
    # Email through Postmark (docs/messaging.md "Email"): the server token that sends, the API
    # base (the provider sandbox in development), the message stream campaigns go out on, and
    # the HTTP basic-auth credentials Postmark's bounce, spam-complaint and subscription-change
    # webhooks carry (POST /hooks/postmark).
    postmark_server_token: SecretStr | None = None
    postmark_api_base: str = "https://api.postmarkapp.com"
    postmark_broadcast_stream: str = Field(default="broadcast", min_length=1, max_length=100)
    postmark_webhook_user: SecretStr | None = None
    postmark_webhook_password: SecretStr | None = None
    # One-click unsubscribe links in campaign emails (RFC 8058): the HMAC secret that signs
    # their tokens (unset outside production: derived from the primary master key) and how long
    # a link keeps working.
    leadline_unsubscribe_secret: SecretStr | None = None
    leadline_unsubscribe_ttl_days: int = Field(default=90, ge=1, le=3650)

    @property
    def email_enabled(self) -> bool:
        return bool(secret_value(self.postmark_server_token))

    # Intake: which provider routes are served (each needs its secrets), and rate limits in
    # the `limits` notation ("5/minute", "3 per 2 seconds").
    leadline_intake_providers: str = "twilio,stripe,telegram,meta"
    leadline_limit_auth_failures: str = "5/minute"
    leadline_limit_api: str = "30/minute"
    leadline_limit_webhooks: str = "100/minute"
    leadline_limit_campaigns: str = "3/minute"
    # Every read route of the tenant API (GET), per principal (docs/api.md "Rate limits").
    leadline_limit_api_reads: str = "120/minute"

    # Team members' OIDC access tokens (docs/api.md "OIDC"): the issuer and audience a token
    # must name, where its signing keys are (default: the issuer's discovery document), the
    # claims that carry the organisation and the role (dotted paths reach nested claims), the
    # asymmetric algorithms accepted, and how long the key set is cached and how often an
    # unknown `kid` may force a refresh.
    leadline_oidc_issuer: str | None = None
    leadline_oidc_audience: str | None = None
    leadline_oidc_jwks_url: str | None = None
    leadline_oidc_org_claim: str = "org_id"
    leadline_oidc_role_claim: str = "role"
    leadline_oidc_algorithms: str = "RS256,ES256"
    leadline_oidc_jwks_cache_seconds: float = Field(default=300.0, gt=0, le=86_400)
    leadline_oidc_refresh_cooldown_seconds: float = Field(default=30.0, ge=0, le=3600)

    @field_validator("leadline_oidc_algorithms")
    @classmethod
    def only_asymmetric_algorithms(cls, value: str) -> str:
        chosen = [name.strip() for name in value.split(",") if name.strip()]
        refused = sorted(set(chosen) - set(ASYMMETRIC_ALGORITHMS))
        if not chosen or refused:
            raise ValueError(
                "LEADLINE_OIDC_ALGORITHMS takes asymmetric algorithms only: "
                + ", ".join(ASYMMETRIC_ALGORITHMS)
            )
        return value

    @property
    def oidc_algorithms(self) -> tuple[str, ...]:
        return tuple(
            name.strip() for name in self.leadline_oidc_algorithms.split(",") if name.strip()
        )

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.leadline_oidc_issuer and self.leadline_oidc_audience)

    # Client addresses and slow clients (docs/intake.md "Client addresses"): the proxies whose
    # X-Forwarded-For hops are believed (comma-separated CIDRs; none by default), and how long
    # a whole request body may take to arrive before the intake answers 408.
    leadline_trusted_proxies: str = ""
    leadline_body_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    # The spool for database outages (docs/intake.md "Database outages"): where verified events
    # wait while PostgreSQL is unreachable (default <state dir>/spool.sqlite3), how many it
    # holds before answering 503, and how long an org routing learnt from the database may be
    # used for them unless its table changed since: an API key for minutes (a revocation whose
    # notice was missed must still win), a provider's routing (number, Stripe customer, Meta
    # account) for a day, so a quiet org's STOP is kept in an outage (intake/spool.py).
    leadline_spool_path: str | None = None
    leadline_spool_max_events: int = Field(default=10_000, ge=1)
    leadline_spool_cache_seconds: float = Field(default=120.0, gt=0, le=300)
    leadline_spool_provider_routing_seconds: float = Field(default=86_400.0, gt=0, le=604_800)

    @model_validator(mode="after")
    def liveness_must_outlast_a_scheduler_poll(self) -> Settings:
        if self.leadline_liveness_stale_seconds <= 2 * self.leadline_scheduler_poll_seconds:
            raise ValueError(
                "LEADLINE_LIVENESS_STALE_SECONDS must exceed twice LEADLINE_SCHEDULER_POLL_SECONDS"
            )
        return self

    @field_validator("leadline_broker_url")
    @classmethod
    def broker_scheme_must_be_known(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in BROKER_SCHEMES:
            raise ValueError(f"LEADLINE_BROKER_URL must start with {', '.join(BROKER_SCHEMES)}")
        return value

    @property
    def broker_url(self) -> str | None:
        """The URL of the Dramatiq broker: LEADLINE_BROKER_URL, else LEADLINE_REDIS_URL."""
        return self.leadline_broker_url or self.leadline_redis_url

    @field_validator("leadline_backup_url", "leadline_s3_endpoint_url", mode="before")
    @classmethod
    def blank_is_unset(cls, value: object) -> object:
        # `NAME=` in an env file (.env.example lists every setting) means "not set".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("leadline_backup_url")
    @classmethod
    def backup_url_must_name_a_store(cls, value: str | None) -> str | None:
        try:
            if value is not None:
                store_url(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def backup_dir_and_url_must_agree(self) -> Settings:
        url, directory = self.leadline_backup_url, self.leadline_backup_dir
        given = url is not None and "leadline_backup_dir" in self.model_fields_set
        if given and store_url(str(url)) != store_url(directory):
            raise ValueError(
                "LEADLINE_BACKUP_URL and LEADLINE_BACKUP_DIR name different places (set only "
                "LEADLINE_BACKUP_URL; LEADLINE_BACKUP_DIR is its file:// shorthand)"
            )
        return self

    @property
    def backup_url(self) -> str:
        """The backup store's URL: LEADLINE_BACKUP_URL, else file://LEADLINE_BACKUP_DIR."""
        return store_url(self.leadline_backup_url or self.leadline_backup_dir)

    @field_validator("leadline_trusted_proxies")
    @classmethod
    def proxies_must_be_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.leadline_trusted_proxies)

    @field_validator("leadline_intake_providers")
    @classmethod
    def providers_must_be_known(cls, value: str) -> str:
        unknown = set(split_names(value)) - set(PROVIDER_SECRETS)
        if unknown:
            raise ValueError(f"unknown providers: {', '.join(sorted(unknown))}")
        return value

    @property
    def enabled_providers(self) -> frozenset[str]:
        return frozenset(split_names(self.leadline_intake_providers))

    # Messaging (docs/messaging.md): provider timeouts, retry policy, campaign pacing.
    leadline_provider_timeout_seconds: float = Field(default=15.0, gt=0, le=120)
    leadline_sms_retry_base_seconds: float = Field(default=2.0, gt=0)
    leadline_sms_retry_max_seconds: float = Field(default=300.0, gt=0)
    leadline_sms_max_attempts: int = Field(default=8, ge=1, le=50)
    leadline_outbound_queued_stale_seconds: float = Field(default=10.0, ge=0)
    leadline_outbound_sending_stale_seconds: float = Field(default=120.0, ge=0)
    leadline_campaign_rate_per_sender: float = Field(default=1.0, gt=0)

    @property
    def is_production(self) -> bool:
        return self.leadline_env == "production"

    @property
    def uses_embedded_services(self) -> bool:
        return self.leadline_database_url is None or self.leadline_redis_url is None

    @field_validator("leadline_webhook_retry_schedule")
    @classmethod
    def _check_retry_schedule(cls, value: str) -> str:
        parse_retry_schedule(value)
        return value

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """Seconds to wait after the 1st, 2nd, ... failed attempt; their count bounds retries."""
        return parse_retry_schedule(self.leadline_webhook_retry_schedule)

    def master_keys(self) -> list[tuple[str, bytes]]:
        """The KEKs as (key id, 32 bytes), primary first."""
        if self.leadline_master_keys is None:
            raise ConfigError("LEADLINE_MASTER_KEYS is not set")
        return parse_master_keys(self.leadline_master_keys.get_secret_value())

    def require_production_ready(self) -> None:
        """Refuse to run production on development shortcuts. Raises ConfigError."""
        if not self.is_production:
            return
        problems = production_problems(self)
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))


def parse_networks(raw: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128). Raises ValueError."""
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in split_names(raw))
    except ValueError:
        raise ValueError("LEADLINE_TRUSTED_PROXIES must be comma-separated CIDRs") from None


def split_names(raw: str) -> list[str]:
    return [name.strip().lower() for name in raw.split(",") if name.strip()]


def parse_master_keys(raw: str) -> list[tuple[str, bytes]]:
    keys: list[tuple[str, bytes]] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id:
            raise ConfigError("LEADLINE_MASTER_KEYS entries must look like 'kid:base64'")
        keys.append((key_id, _decode_master_key(key_id, encoded)))
    if not keys:
        raise ConfigError("LEADLINE_MASTER_KEYS holds no key")
    if len({kid for kid, _ in keys}) != len(keys):
        raise ConfigError("LEADLINE_MASTER_KEYS repeats a key id")
    return keys


def _decode_master_key(key_id: str, encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"master key {key_id!r} is not valid base64") from None
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigError(f"master key {key_id!r} must be {MASTER_KEY_BYTES} bytes")
    if len(set(key)) < MIN_KEY_DISTINCT or len(set(differences(key))) < MIN_KEY_DISTINCT:
        raise ConfigError(f"master key {key_id!r} does not look random")
    return key


def differences(data: bytes) -> list[int]:
    """Successive differences mod 256: a run (`abcd…`) or a repeat of a short block shows few."""
    return [(later - earlier) % 256 for earlier, later in itertools.pairwise(data)]


def shannon_bits(symbols: Sequence[int]) -> float:
    """Empirical Shannon entropy, in bits per symbol."""
    if not symbols:
        return 0.0
    total = len(symbols)
    return -sum(n / total * math.log2(n / total) for n in Counter(symbols).values())


def estimate_entropy_bits(secret: str) -> float:
    """A conservative guess at a secret's entropy: its length times the lower of the per-byte
    entropy of its bytes and of their successive differences, so repeated characters (`aaaa`),
    runs (`abcdef`) and repeated blocks (`0123…0123…`) all score low."""
    data = secret.encode()
    per_byte = min(shannon_bits(data), shannon_bits(differences(data)))
    return len(data) * per_byte


def parse_retry_schedule(raw: str) -> tuple[float, ...]:
    """Comma-separated non-negative seconds. Raises ValueError (pydantic reports it)."""
    try:
        delays = tuple(float(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError("webhook retry schedule must be comma-separated seconds") from None
    if any(not 0 <= delay < float("inf") for delay in delays):
        raise ValueError("webhook retry schedule holds a negative or infinite delay")
    return delays


def production_problems(settings: Settings) -> list[str]:
    problems: list[str] = []
    if settings.uses_embedded_services:
        problems.append("LEADLINE_DATABASE_URL and LEADLINE_REDIS_URL are required")
    if settings.leadline_master_keys is None:
        problems.append("LEADLINE_MASTER_KEYS is required")
    else:
        try:
            settings.master_keys()
        except ConfigError as exc:
            problems.append(str(exc))
    if settings.leadline_allow_private_webhook_targets:
        problems.append("LEADLINE_ALLOW_PRIVATE_WEBHOOK_TARGETS is development only")
    if not settings.leadline_public_url.startswith("https://"):
        problems.append("LEADLINE_PUBLIC_URL must be https")
    problems.extend(ops_token_problems(settings.leadline_ops_token))
    problems.extend(missing_provider_secrets(settings))
    problems.extend(weak_provider_secrets(settings))
    problems.extend(messaging_problems(settings))
    problems.extend(email_problems(settings))
    problems.extend(database_role_problems(settings))
    problems.extend(oidc_problems(settings))
    problems.extend(meta_oauth_problems(settings))
    return problems


def meta_oauth_problems(settings: Settings) -> list[str]:
    """Social channels are off (no META_APP_ID) or signed with their own strong state key."""
    if not settings.meta_app_id:
        return []
    problems = []
    secret = secret_value(settings.leadline_oauth_state_secret)
    if len(secret) < MIN_OPS_TOKEN_LENGTH or estimate_entropy_bits(secret) < MIN_OPS_TOKEN_BITS:
        problems.append(
            f"LEADLINE_OAUTH_STATE_SECRET is required with META_APP_ID (at least "
            f"{MIN_OPS_TOKEN_LENGTH} random characters, e.g. `openssl rand -base64 32`)"
        )
    if not secret_value(settings.meta_app_secret):
        problems.append("META_APP_SECRET is required with META_APP_ID")
    for name, url in (
        ("META_OAUTH_BASE", settings.meta_oauth_base),
        ("META_GRAPH_BASE", settings.meta_graph_base),
    ):
        if not url.startswith("https://") or is_loopback_url(url):
            problems.append(f"{name} must be an https URL of Meta's (not the sandbox)")
    return problems


def oidc_problems(settings: Settings) -> list[str]:
    """OIDC is off or fully configured, over TLS."""
    issuer, audience = settings.leadline_oidc_issuer, settings.leadline_oidc_audience
    if not issuer and not audience:
        return []
    if not issuer or not audience:
        return ["LEADLINE_OIDC_ISSUER and LEADLINE_OIDC_AUDIENCE are set together"]
    urls = {
        "LEADLINE_OIDC_ISSUER": issuer,
        "LEADLINE_OIDC_JWKS_URL": settings.leadline_oidc_jwks_url,
    }
    return [
        f"{name} must be https"
        for name, url in urls.items()
        if url and not url.startswith("https://")
    ]


def ops_token_problems(token: SecretStr | None) -> list[str]:
    if token is None:
        return ["LEADLINE_OPS_TOKEN is required"]
    value = token.get_secret_value()
    if len(value) < MIN_OPS_TOKEN_LENGTH:
        return [f"LEADLINE_OPS_TOKEN must be at least {MIN_OPS_TOKEN_LENGTH} characters"]
    if estimate_entropy_bits(value) < MIN_OPS_TOKEN_BITS:
        return [
            f"LEADLINE_OPS_TOKEN looks guessable (under {MIN_OPS_TOKEN_BITS} bits estimated; "
            "use e.g. `openssl rand -base64 32`)"
        ]
    return []


def weak_provider_secrets(settings: Settings) -> list[str]:
    """Set secrets of enabled providers that are too short or too regular to resist guessing."""
    return [
        f"{name.upper()} is too short or too regular (at least {MIN_PROVIDER_SECRET_LENGTH} "
        f"characters and {MIN_PROVIDER_SECRET_BITS} bits estimated)"
        for provider in sorted(settings.enabled_providers)
        for name in PROVIDER_SECRETS[provider]
        if (value := secret_value(getattr(settings, name)))
        and (
            len(value) < MIN_PROVIDER_SECRET_LENGTH
            or estimate_entropy_bits(value) < MIN_PROVIDER_SECRET_BITS
        )
    ]


def secret_value(secret: SecretStr | None) -> str:
    return secret.get_secret_value().strip() if secret is not None else ""


def database_role_problems(settings: Settings) -> list[str]:
    """Tenant sessions must log in as a role that is only a member of leadline_app: from the
    owner's connection, injected SQL could `RESET ROLE` back to the owner."""
    app_url = settings.leadline_app_database_url
    if app_url is None:
        return ["LEADLINE_APP_DATABASE_URL is required (a login role, member of leadline_app)"]
    owner_url = settings.leadline_database_url
    if owner_url is not None and urlsplit(app_url).username == urlsplit(owner_url).username:
        return ["LEADLINE_APP_DATABASE_URL must log in as another role than the owner's"]
    return []


def messaging_problems(settings: Settings) -> list[str]:
    """Provider traffic in production must leave over TLS and never outlive its sender."""
    problems = []
    for name, url in (
        ("TWILIO_API_BASE", settings.twilio_api_base),
        ("TELEGRAM_API_BASE", settings.telegram_api_base),
    ):
        if url is not None and not url.startswith("https://"):
            problems.append(f"{name} must be https")
        if url is not None and is_loopback_url(url):
            problems.append(f"{name} points at the provider sandbox (a loopback address)")
    if (
        settings.leadline_outbound_sending_stale_seconds
        <= settings.leadline_provider_timeout_seconds
    ):
        problems.append(
            "LEADLINE_OUTBOUND_SENDING_STALE_SECONDS must exceed LEADLINE_PROVIDER_TIMEOUT_SECONDS"
        )
    return problems


def email_problems(settings: Settings) -> list[str]:
    """Sending email in production needs its webhooks verifiable, its unsubscribe links signed
    with a secret of their own, and the real Postmark over TLS."""
    if not settings.email_enabled:
        return []
    problems = [
        f"{name} is required when POSTMARK_SERVER_TOKEN is set"
        for name, value in (
            ("POSTMARK_WEBHOOK_USER", settings.postmark_webhook_user),
            ("POSTMARK_WEBHOOK_PASSWORD", settings.postmark_webhook_password),
        )
        if not secret_value(value)
    ]
    password = secret_value(settings.postmark_webhook_password)
    if password and estimate_entropy_bits(password) < MIN_PROVIDER_SECRET_BITS:
        problems.append("POSTMARK_WEBHOOK_PASSWORD is too short or too regular")
    unsubscribe = secret_value(settings.leadline_unsubscribe_secret)
    if len(unsubscribe) < MIN_OPS_TOKEN_LENGTH:
        problems.append(
            f"LEADLINE_UNSUBSCRIBE_SECRET must be at least {MIN_OPS_TOKEN_LENGTH} characters"
        )
    base = settings.postmark_api_base
    if not base.startswith("https://") or is_loopback_url(base):
        problems.append("POSTMARK_API_BASE must be an https URL of Postmark, not the sandbox")
    return problems


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def missing_provider_secrets(settings: Settings) -> list[str]:
    """Each enabled provider route must be able to verify what it receives."""
    return [
        f"{name.upper()} is required (provider {provider} is enabled)"
        for provider in sorted(settings.enabled_providers)
        for name in PROVIDER_SECRETS[provider]
        if getattr(settings, name) is None or not getattr(settings, name).get_secret_value().strip()
    ]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
