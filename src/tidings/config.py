"""Settings: one root with nested sections, loaded once at start-up and passed down.

Sources, strongest first: explicit overrides (CLI flags), environment variables
(`TIDINGS_SECTION__KEY`, e.g. `TIDINGS_DATABASE__URL`), then `tidings.toml` in the data folder.
Nothing reads settings from a global: `runtime.build_runtime(settings)` hands each part its own.
"""

from __future__ import annotations

import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None  # what clients should be told to use, if behind a proxy
    websocket_heartbeat_seconds: float = 20.0
    # uvicorn's websocket protocol. The default is uvicorn's "websockets-sansio" (heartbeats on
    # timer handles, no task per connection) trimmed to hold less per idle connection
    # (gateway/protocol.py); "websockets-sansio" itself, or "websockets", the older task-based
    # one, cost more memory per device connection (docs/performance.md).
    websocket_implementation: Literal[
        "tidings.gateway.protocol:LeanWebSocketProtocol", "websockets-sansio", "websockets"
    ] = "tidings.gateway.protocol:LeanWebSocketProtocol"
    max_request_bytes: int = 2 * 1024 * 1024
    # How long an idle HTTP/1.1 keep-alive connection stays open: longer than clients keep
    # theirs (cli/server.py::server_config says why).
    keep_alive_seconds: int = 30
    # How often the event loop's thread offers the GIL to another thread that waits for it
    # (`sys.setswitchinterval`): SQLite's group commit fsyncs in a thread, and every commit
    # waits until that thread gets the GIL back (db/wal_flush.py). Python's default is 5 ms.
    switch_interval_ms: float = Field(default=0.5, gt=0, le=100)


class DatabaseSettings(BaseModel):
    # Empty means SQLite in the data folder (tidings.db).
    url: str = ""
    echo: bool = False
    pool_size: int = 10


class BusSettings(BaseModel):
    kind: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"


class VerificationSettings(BaseModel):
    # "operator": codes come from `tidings admin invite`. "http": codes are also posted to an
    # SMS gateway at `http_url` when a client asks for one.
    provider: Literal["operator", "http"] = "operator"
    http_url: str | None = None
    http_token: str | None = None
    code_ttl_seconds: int = 600
    invite_ttl_seconds: int = 7 * 24 * 3600
    max_failed_attempts: int = 5  # per phone number per window, then locked out
    failed_attempt_window_seconds: int = 3600
    max_code_requests: int = 3  # codes sent to one number per window (SMS cost, abuse)
    code_request_window_seconds: int = 3600


class LimitsSettings(BaseModel):
    max_companions: int = 4
    key_claims_per_minute: int = 120  # per requesting device
    link_ttl_seconds: int = 600
    mailbox_page: int = 100
    one_time_key_low_water: int = 25


class OutboundSettings(BaseModel):
    # Requests the server makes for tenants (webhooks, media by link). "embedded" allows http
    # and loopback so one machine can try everything; "production" demands https to public
    # addresses (no SSRF into the operator's network).
    mode: Literal["embedded", "production"] = "embedded"


class WebhookSettings(BaseModel):
    # Requests one target (a WABA's callback URL) may have in flight at once. Meta delivers
    # concurrently; 1 sends a target's events strictly one after the other, at one per round
    # trip (webhooks/delivery.py).
    per_target_in_flight: int = Field(default=8, ge=1, le=64)


class BusinessSettings(BaseModel):
    # Upper bound on how long a lost doorbell can delay a business's deliveries.
    worker_poll_seconds: float = 30.0
    # Sends to a number are refused (130429, Retry-After) while this many of its messages wait
    # to be sent (business/backlog.py); 0 turns the bound off.
    max_outbound_backlog: int = Field(default=10_000, ge=0)


class TemplatesSettings(BaseModel):
    max_templates: int = 250  # per WABA (Meta: 250 unverified, 6,000 verified)
    creations_per_hour: int = 100
    # A UTILITY/AUTHENTICATION template that reads as promotional: approve it as MARKETING
    # ("recategorize", as Meta does since April 2025) or reject it.
    miscategorized: Literal["recategorize", "reject"] = "recategorize"
    # Whether a person must approve: never, when the classifier is unsure, or always.
    human_review: Literal["never", "uncertain", "always"] = "never"


# --- messaging limits and pricing (issue 5 items 5, 6, 8) -------------------------------------


class MessagingLimitsSettings(BaseModel):
    """Meta's numbers by default (reference/cloud-api.md §6)."""

    initial_tier: Literal["TIER_250", "TIER_2K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED"] = (
        "TIER_250"
    )
    # Meta puts an automatic upgrade in force "within 6 hours".
    tier_upgrade_delay_seconds: float = Field(default=6 * 3600, ge=0)
    throughput_per_second: int = Field(default=80, ge=1)  # per number, STANDARD level
    high_throughput_per_second: int = Field(default=1000, ge=1)  # after the upgrade (HIGH)
    # Unique customers in 24 hours (at TIER_UNLIMITED) that earn the upgrade to HIGH.
    throughput_upgrade_reach: int = Field(default=100_000, ge=1)
    pair_interval_seconds: float = Field(default=6.0, gt=0)  # one message per interval ...
    pair_burst: int = Field(default=45, ge=1)  # ... after a burst of this many


class PricingSettings(BaseModel):
    """The rate card. Empty: the illustrative default card (tidings.policy.rates).

    `rates` (or a JSON/TOML file at `rate_card_file`) maps "default" and ISO country codes to
    {pricing category: price per delivered message}, e.g.
    {"default": {"marketing": "0.05", "utility": "0.01", "authentication": "0.01"}}.
    """

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    rate_card_file: Path | None = None
    rates: dict[str, dict[str, str | float | int]] | None = None


class PolicySettings(BaseModel):
    """The operator's messaging policy numbers (docs/policy.md); built into policy.Limits."""

    customer_service_window_hours: float = Field(default=24.0, gt=0)
    free_entry_point_hours: float = Field(default=72.0, gt=0)
    entry_point_reply_within_hours: float = Field(default=24.0, gt=0)
    # Marketing templates one customer may receive from all businesses together in a rolling
    # period (Meta does not publish its number). `marketing_cap_enabled = false` turns it off
    # (TOML has no null).
    marketing_cap_enabled: bool = True
    marketing_cap: int = Field(default=4, ge=0)
    marketing_cap_period_hours: float = Field(default=24.0, gt=0)
    # A customer whose service window is open asked to talk: the cap does not apply.
    marketing_cap_exempt_in_window: bool = True
    # ISO country codes where marketing templates are not delivered at all (e.g. ["US"]).
    marketing_blocked_countries: list[str] = Field(default_factory=list)
    # Answer STOP/START keywords and "Stop promotions" with a confirmation message.
    confirm_opt_outs: bool = True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TIDINGS_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default_factory=lambda: Path.home() / ".tidings" / "server")
    # Pepper for hashing short codes at rest; generated into the data folder on first start.
    secret_key: str = ""
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    verification: VerificationSettings = Field(default_factory=VerificationSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    business: BusinessSettings = Field(default_factory=BusinessSettings)
    templates: TemplatesSettings = Field(default_factory=TemplatesSettings)
    messaging_limits: MessagingLimitsSettings = Field(default_factory=MessagingLimitsSettings)
    pricing: PricingSettings = Field(default_factory=PricingSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.data_dir / 'tidings.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings once: file, then environment, then explicit overrides."""
    env_only = Settings()
    folder = (data_dir or env_only.data_dir).expanduser()
    file_values: dict[str, Any] = {}
    config_file = folder / "tidings.toml"
    if config_file.exists():
        file_values = tomllib.loads(config_file.read_text())
    env_values = env_only.model_dump(exclude_unset=True)
    values = _deep_merge(_deep_merge(file_values, env_values), overrides)
    values["data_dir"] = folder
    settings = Settings.model_validate(values)
    if not settings.secret_key:
        settings = settings.model_copy(update={"secret_key": _secret_from(folder)})
    return settings


def _secret_from(folder: Path) -> str:
    """The data folder keeps the server's pepper so hashed codes survive restarts."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "secret.key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()
