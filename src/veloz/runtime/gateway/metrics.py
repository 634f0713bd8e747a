"""`/metrics` of a gateway: its link to the engine, the stream it follows, the commands
it forwarded, its audit import and the credential changes it heard (the app adds
requests and stream clients, as on the engine)."""

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from veloz.observability.metrics import histogram_family
from veloz.runtime.credential_changes import CredentialChanges
from veloz.runtime.gateway.audit import GatewayAudit
from veloz.runtime.gateway.client import GatewayClient
from veloz.runtime.gateway.limits import RedisRateLimit


class GatewayCollector(Collector):
    def __init__(
        self,
        client: GatewayClient,
        limit: RedisRateLimit | None,
        audit: GatewayAudit | None = None,
        changes: CredentialChanges | None = None,
    ) -> None:
        self._client = client
        self._limit = limit
        self._audit = audit
        self._changes = changes

    def collect(self) -> Iterator[Metric]:
        client = self._client
        link, stream = client.link.stats, client.follower.stats
        for name, value, help_text in (
            ("engine_up", link.up, "1 while the engine answers this gateway"),
            ("stream_connected", stream.connected, "1 while Redis answers this gateway"),
            ("stream_lag_entries", stream.lag, "Stream entries not yet applied here"),
            ("stream_seq", stream.seq, "Last journal sequence applied here"),
            ("stream_length", stream.length, "Entries the Redis stream holds (XLEN)"),
            ("feed_connected", client.feed_connected, "1 while the engine's market feed is open"),
            (
                "audit_store_failing",
                self._audit is not None and self._audit.importer.failing,
                "1 while the store refuses the audit records waiting in this gateway's spool",
            ),
        ):
            yield GaugeMetricFamily(f"veloz_gateway_{name}", help_text, value=int(value))
        for name, value, help_text in (
            ("stream_entries", stream.entries, "Stream entries applied"),
            ("stream_gaps", stream.gaps, "Times the stream skipped sequences"),
            ("stream_failures", stream.failures, "Failed reads of the stream"),
            ("engine_failures", link.failures, "Requests to the engine that got no answer"),
            ("engine_reads", client.reads.fetches, "Reads fetched from the engine"),
            ("read_hits", client.reads.hits, "Reads answered from what was kept"),
            ("feed_messages", client.feed_messages, "Market feed messages received"),
            (
                "rate_limit_fallbacks",
                self._limit.fallbacks if self._limit is not None else 0,
                "Rate-limit decisions taken per replica because Redis failed",
            ),
            (
                "audit_imported",
                self._audit.importer.imported if self._audit is not None else 0,
                "Audit records imported from this gateway's spool into the store",
            ),
            (
                "credential_changes_heard",
                self._changes.heard if self._changes is not None else 0,
                "Credential changes announced by other processes that made this one reload",
            ),
        ):
            yield CounterMetricFamily(f"veloz_gateway_{name}", help_text, value=value)
        forwarded = CounterMetricFamily(
            "veloz_gateway_forwarded_commands",
            "Commands forwarded to the engine, by route and answer status",
            labels=["route", "status"],
        )
        for label, count in sorted(link.forwarded.items()):
            route, _, status = label.rpartition(" ")
            forwarded.add_metric([route, status], count)
        yield forwarded
        yield histogram_family(
            "veloz_gateway_command_seconds",
            "From forwarding a command to the engine's answer",
            link.command_seconds,
        )
        yield histogram_family(
            "veloz_gateway_delivery_seconds",
            "From an event's time in the engine to its arrival at this gateway",
            stream.delivery_seconds,
        )
