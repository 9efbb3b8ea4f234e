"""Prometheus series for the call records and their webhook (README "Watching your calls").

Counters only, labelled by outcome at most (telephony.records.metric_labels bounds it). They
count in whatever process saves or sends: the job process right after its call, the worker
process for queued webhooks; the worker's /metrics merges all of them (multiprocess mode).
"""

from __future__ import annotations

from prometheus_client import Counter

from telephony.records.metric_labels import bounded

RECORDS_SAVED = Counter(
    "telephony_records_saved_total", "Call records saved to the store", ["outcome"]
)
RECORDS_SPOOLED = Counter(
    "telephony_records_spooled_total",
    "Call records the store refused, kept in the spool file (calls import-spool loads them)",
)
RECORDS_FAILED = Counter(
    "telephony_records_failed_total",
    "Call records neither saved nor spooled (only the log line holds them)",
)
WEBHOOKS_QUEUED = Counter(
    "telephony_webhook_deliveries_queued_total", "Call records queued for the webhook"
)
WEBHOOKS_SENT = Counter(
    "telephony_webhook_deliveries_sent_total", "Call records the webhook receiver took (2xx)"
)
WEBHOOKS_FAILED = Counter(
    "telephony_webhook_deliveries_failed_total",
    "Webhook delivery rounds that failed (the record stays queued and is tried again)",
)


def record_saved(outcome: str, *, queued_for_webhook: bool) -> None:
    RECORDS_SAVED.labels(outcome=bounded("outcome", outcome)).inc()
    if queued_for_webhook:
        WEBHOOKS_QUEUED.inc()
