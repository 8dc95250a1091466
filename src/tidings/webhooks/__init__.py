"""Webhooks: the outbox of business events, signed delivery with retries, subscriptions.

service.py   WebhookService: enqueue (in the caller's transaction), subscriptions and the
             GET handshake, events API, replay, health
delivery.py  Dispatcher: claims due deliveries, POSTs them, records outcomes; backoff
signing.py   the exact body bytes and X-Hub-Signature-256
repository.py / models.py   all SQL / the tables
views.py     what the service returns, with its wire shapes
routes.py    subscribed_apps (Meta) and the Tidings events/replay/health endpoints
"""
