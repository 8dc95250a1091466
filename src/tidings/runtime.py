"""Composition root: builds every part from Settings and hands each its dependencies."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import timedelta

from tidings.accounts.service import AccountService
from tidings.accounts.verification import HttpSmsProvider, OperatorProvider, VerificationProvider
from tidings.admin.service import OperatorTokens
from tidings.attachments.service import AttachmentService
from tidings.billing.service import Billing, load_rate_card
from tidings.billing.sources import PricingSource
from tidings.bus.base import Bus
from tidings.bus.memory import MemoryBus
from tidings.bus.redis import RedisBus
from tidings.business.api_devices import ApiDeviceHost
from tidings.business.backlog import OutboundBacklog
from tidings.business.core_route import InProcessCore
from tidings.business.idempotency import IdempotencyKeys
from tidings.business.media import BusinessMediaService
from tidings.business.messaging import BusinessMessaging
from tidings.business.policy_gate import PolicyGate
from tidings.business.service import BusinessService
from tidings.business.tasks import BusinessWorker, outbound_topic
from tidings.business_api.shapes import CloudShapes
from tidings.config import PolicySettings, Settings
from tidings.crypto.sealing import Sealer
from tidings.db.counters import CounterStore, DatabaseCounters, RedisCounters
from tidings.db.engine import make_engine
from tidings.db.ratelimit import DatabaseRateLimiter, RateLimiter
from tidings.db.ratelimit_redis import RedisRateLimiter
from tidings.db.uow import Database
from tidings.devices.linking import LinkService, link_topic
from tidings.devices.service import DeviceService
from tidings.kit.clock import Clock, SystemClock
from tidings.limits.service import MessagingLimits, TierSettings, WorstPhoneQuality
from tidings.limits.sources import PairRateSource, ThroughputSource, TierSource
from tidings.mailbox.service import MailboxService
from tidings.outbound import OutboundPolicy
from tidings.policy.caps import MarketingCap
from tidings.policy.evaluate import Limits
from tidings.policy.throughput import RateLimit, ThroughputLimits
from tidings.policy.tiers import Tier
from tidings.policy.window import WindowLengths
from tidings.signals.quality import PhoneQualityService
from tidings.signals.service import SignalService
from tidings.signals.sources import ConsentFacts, MarketingFacts, WindowFacts
from tidings.storage import BlobStore, FileBlobStore
from tidings.templates.desk import TemplateDesk
from tidings.templates.quality import TemplateQualityService
from tidings.templates.review import ReviewSettings
from tidings.templates.service import TemplateLimits, TemplateService
from tidings.webhooks.service import WEBHOOK_DOORBELL, WebhookService


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    database: Database
    bus: Bus
    accounts: AccountService
    devices: DeviceService
    links: LinkService
    mailbox: MailboxService
    blobs: BlobStore
    attachments: AttachmentService
    sealer: Sealer
    businesses: BusinessService
    webhooks: WebhookService
    api_devices: ApiDeviceHost
    business_messaging: BusinessMessaging
    business_media: BusinessMediaService
    business_worker: BusinessWorker
    idempotency: IdempotencyKeys
    templates: TemplateService
    template_desk: TemplateDesk
    counters: CounterStore
    policy_gate: PolicyGate
    messaging_limits: MessagingLimits
    billing: Billing
    operator_tokens: OperatorTokens
    signals: SignalService
    phone_quality: PhoneQualityService
    template_quality: TemplateQualityService

    async def close(self) -> None:
        await self.webhooks.close()
        await self.counters.close()
        await self.api_devices.close()
        await self.bus.close()
        await self.database.dispose()


def build_verification_provider(settings: Settings) -> VerificationProvider:
    verification = settings.verification
    if verification.provider == "http":
        if not verification.http_url:
            raise ValueError("verification.provider is 'http' but verification.http_url is not set")
        return HttpSmsProvider(verification.http_url, verification.http_token)
    return OperatorProvider()


def build_bus(settings: Settings) -> Bus:
    if settings.bus.kind == "redis":
        return RedisBus(settings.bus.redis_url)
    return MemoryBus()


def build_limits(settings: Settings) -> Limits:
    """The policy's numbers from the operator's settings: the `policy` section, then the
    `messaging_limits` and `pricing` sections."""
    limits = settings.messaging_limits
    return replace(
        policy_limits(settings.policy),
        throughput=ThroughputLimits(
            standard=RateLimit.per_second(limits.throughput_per_second),
            high=RateLimit.per_second(limits.high_throughput_per_second),
        ),
        pair_rate=RateLimit.every(
            timedelta(seconds=limits.pair_interval_seconds), burst=limits.pair_burst
        ),
        rate_card=load_rate_card(
            settings.pricing.currency, settings.pricing.rates, settings.pricing.rate_card_file
        ),
    )


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    bus: Bus | None = None,
    verification: VerificationProvider | None = None,
) -> Runtime:
    clock = clock or SystemClock()
    url = settings.database_url
    engine = make_engine(url, echo=settings.database.echo, pool_size=settings.database.pool_size)
    read_engine = make_engine(url, read_only=True) if settings.is_sqlite else None
    database = Database(engine, read_engine)
    bus = bus or build_bus(settings)
    # Several nodes share Redis for exact limits; one node keeps them in its database.
    limiter: RateLimiter = (
        RedisRateLimiter(settings.bus.redis_url, clock)
        if settings.bus.kind == "redis"
        else DatabaseRateLimiter(database, clock)
    )
    accounts = AccountService(
        database=database,
        clock=clock,
        pepper=settings.secret_key.encode(),
        settings=settings.verification,
        provider=verification or build_verification_provider(settings),
        limiter=limiter,
    )
    devices = DeviceService(
        database=database, clock=clock, accounts=accounts, limiter=limiter, limits=settings.limits
    )

    async def ring_link(link_id: str) -> None:
        await bus.publish(link_topic(link_id), {"link": link_id})

    links = LinkService(
        database=database,
        clock=clock,
        accounts=accounts,
        devices=devices,
        limits=settings.limits,
        on_change=ring_link,
    )
    mailbox = MailboxService(
        database=database,
        clock=clock,
        bus=bus,
        accounts=accounts,
        devices=devices,
        limits=settings.limits,
    )
    devices.removal_hooks.append(mailbox.purge_devices)
    devices.list_changed_hooks.append(mailbox.notify_device_list)
    # Files of the core (ciphertext) and of businesses (sealed) share one store; an
    # S3-compatible BlobStore can replace the folder for scale-out.
    blobs = FileBlobStore(settings.data_dir / "blobs")
    attachments = AttachmentService(database=database, clock=clock, blobs=blobs)

    # -- the business platform --
    sealer = Sealer(master_key(settings))
    businesses = BusinessService(database=database, clock=clock, sealer=sealer)
    policy = (
        OutboundPolicy.production()
        if settings.outbound.mode == "production"
        else OutboundPolicy.embedded()
    )
    webhooks = WebhookService(
        database,
        clock,
        sealer,
        businesses.app_secret,
        policy,
        per_target_in_flight=settings.webhooks.per_target_in_flight,
    )

    async def announce_webhooks() -> None:
        await bus.publish(WEBHOOK_DOORBELL, {})

    webhooks.announce = announce_webhooks
    api_devices = ApiDeviceHost(
        settings.data_dir / "api-devices", core_route=InProcessCore(devices, mailbox)
    )

    limits = build_limits(settings)
    business_media = BusinessMediaService(
        database=database, clock=clock, sealer=sealer, blobs=blobs, policy=policy
    )

    async def ring_outbound(phone_pk: int) -> None:
        await bus.publish(outbound_topic(phone_pk), {"phone": phone_pk})

    # Send-policy counters are shared by every node: Redis when nodes share Redis, else rows
    # stepped inside each send's own transaction.
    counters: CounterStore = (
        RedisCounters(settings.bus.redis_url)
        if settings.bus.kind == "redis"
        else DatabaseCounters()
    )
    phone_quality = PhoneQualityService(
        database=database, clock=clock, businesses=businesses, webhooks=webhooks
    )
    messaging_limits = MessagingLimits(
        database=database,
        clock=clock,
        businesses=businesses,
        webhooks=webhooks,
        # Upgrades need the business's numbers rated well; quality updates carry the limit.
        quality=WorstPhoneQuality(businesses, phone_quality.current),
        settings=TierSettings(
            initial_tier=Tier(settings.messaging_limits.initial_tier),
            period=limits.tier_period,
            upgrade_delay=timedelta(seconds=settings.messaging_limits.tier_upgrade_delay_seconds),
            throughput_upgrade_reach=settings.messaging_limits.throughput_upgrade_reach,
        ),
    )
    billing = Billing(database=database)
    gate = policy_gate(limits).with_sources(
        TierSource(messaging_limits),
        ThroughputSource(counters, limits, messaging_limits),
        PairRateSource(counters, limits),
        PricingSource(billing),
    )
    business_messaging = BusinessMessaging(
        database=database,
        clock=clock,
        sealer=sealer,
        devices=api_devices,
        webhooks=webhooks,
        shapes=CloudShapes(),
        ring=ring_outbound,
        media=business_media,
        gate=gate,
        charges=billing,
        backlog=OutboundBacklog(database, clock, settings.business.max_outbound_backlog),
    )
    signals = SignalService(
        database=database,
        clock=clock,
        messaging=business_messaging,
        webhooks=webhooks,
        limits=limits,
        confirm_opt_outs=settings.policy.confirm_opt_outs,
    )
    business_messaging.observers.append(signals)
    template_quality = TemplateQualityService(database=database, clock=clock, webhooks=webhooks)
    signals.quality_hooks.extend((phone_quality.evaluate, template_quality.on_signal))
    phone_quality.limit_fields = messaging_limits.limit_fields
    business_worker = BusinessWorker(
        bus=bus,
        businesses=businesses,
        messaging=business_messaging,
        api_devices=api_devices,
        core_devices=devices,
        poll_seconds=settings.business.worker_poll_seconds,
        housekeeping=(
            attachments.purge_expired,
            business_media.purge_expired,
            phone_quality.evaluate_all,
            template_quality.unpause_due,
            messaging_limits.review_tiers_when_due,
        ),
    )
    templates = TemplateService(
        database=database,
        clock=clock,
        webhooks=webhooks,
        limits=TemplateLimits(
            max_templates=settings.templates.max_templates,
            creations_per_hour=settings.templates.creations_per_hour,
        ),
        review_settings=ReviewSettings(
            miscategorized=settings.templates.miscategorized,
            human_review=settings.templates.human_review,
        ),
    )
    return Runtime(
        settings=settings,
        clock=clock,
        database=database,
        bus=bus,
        accounts=accounts,
        devices=devices,
        links=links,
        mailbox=mailbox,
        blobs=blobs,
        attachments=attachments,
        sealer=sealer,
        businesses=businesses,
        webhooks=webhooks,
        api_devices=api_devices,
        business_messaging=business_messaging,
        business_media=business_media,
        business_worker=business_worker,
        idempotency=IdempotencyKeys(database=database, clock=clock),
        templates=templates,
        template_desk=TemplateDesk(database=database, clock=clock, templates=templates),
        counters=counters,
        policy_gate=gate,
        messaging_limits=messaging_limits,
        billing=billing,
        operator_tokens=OperatorTokens(database=database, clock=clock),
        signals=signals,
        phone_quality=phone_quality,
        template_quality=template_quality,
    )


def policy_limits(policy: PolicySettings) -> Limits:
    """The pure policy core's numbers, from the operator's `policy` settings."""
    cap = (
        None
        if not policy.marketing_cap_enabled
        else MarketingCap(
            count=policy.marketing_cap,
            period=timedelta(hours=policy.marketing_cap_period_hours),
            exempt_in_window=policy.marketing_cap_exempt_in_window,
        )
    )
    return Limits(
        windows=WindowLengths(
            customer_service=timedelta(hours=policy.customer_service_window_hours),
            free_entry_point=timedelta(hours=policy.free_entry_point_hours),
            entry_point_reply_within=timedelta(hours=policy.entry_point_reply_within_hours),
        ),
        marketing_cap=cap,
        marketing_blocked_countries=frozenset(
            c.upper() for c in policy.marketing_blocked_countries
        ),
    )


def policy_gate(limits: Limits) -> PolicyGate:
    """The gate every send passes: windows, consent and blocks, the marketing cap."""
    return PolicyGate(limits, (WindowFacts(), ConsentFacts(), MarketingFacts(limits.marketing_cap)))


def master_key(settings: Settings) -> bytes:
    """The 32-byte key everything sealed at rest derives from (HKDF per purpose)."""
    return hashlib.sha256(b"tidings-master-key\x00" + settings.secret_key.encode()).digest()
