"""Prometheus metrics of one server process, served at ``/metrics`` on ``--metrics-listen HOST:PORT``.

The registry is the runtime's own (never prometheus_client's global one). The request path pays one
counter increment and one histogram observation per request (:meth:`Metrics.observe`, through
``Runtime.observe_request``); everything else is read at scrape time by :class:`RuntimeCollector` from
plain attributes of the lower layers, which do not import prometheus_client: the audit writer's queue,
the caches' hit and miss counts, the key-pair pool, the change feed, the request limiters, the edge's
refusals, and the number of keys in each state (one database query, cached :data:`KEY_COUNT_TTL`
seconds).

No label value comes from a tenant: operation names are the models' (anything else is ``Unknown``),
outcomes are ``ok`` or an error code of the service's own set, quota groups are the quotas document's
group names, and key states, key specs and caches are fixed sets.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from openkms.domain import xks
from openkms.domain.keyspec import RSA_SPECS
from openkms.domain.model import KeyState
from openkms.server.app import KmsApp
from openkms.server.limits import EdgeRejections
from openkms.server.quotas import RequestLimiter
from openkms.server.runtime import Runtime
from openkms.server.tls import TlsConfig
from openkms.server.xks_app import XksApp

log = logging.getLogger("openkms.metrics")

KEY_COUNT_TTL = 10.0  # seconds a scrape reuses the key counts of the previous one
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
AUDIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The registry of one process and the metrics the request path updates."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "openkms_requests",
            "Requests answered, by API (kms, console, iam, sts, xks), operation and outcome "
            "(ok or the error code answered).",
            ["api", "operation", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "openkms_request_duration_seconds",
            "Seconds from a request's arrival to its answer (body, authentication, work, audit), by API "
            "and operation.",
            ["api", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audit_write = Histogram(
            "openkms_audit_write_duration_seconds",
            "Seconds each database write of a batch of audit records took.",
            buckets=AUDIT_BUCKETS,
            registry=self.registry,
        )
        # (api, operation, outcome) -> the counter and histogram children: one dict lookup per request.
        self._children: dict[tuple[str, str, str], tuple[Callable[[], None], Callable[[float], None]]] = {}
        self._lock = threading.Lock()

    def observe(self, api: str, operation: str, outcome: str, seconds: float) -> None:
        children = self._children.get((api, operation, outcome))
        if children is None:
            with self._lock:
                counter = self.requests.labels(api, operation, outcome)
                histogram = self.latency.labels(api, operation)
                children = self._children[(api, operation, outcome)] = (counter.inc, histogram.observe)
        children[0]()
        children[1](seconds)


@dataclass
class _KeyCounts:
    at: float = float("-inf")
    counts: dict[str, int] | None = None


class RuntimeCollector(Collector):
    """The metrics read at scrape time from the runtime and the apps' limiters."""

    def __init__(
        self,
        runtime: Runtime,
        limiters: Sequence[RequestLimiter],
        rejections: EdgeRejections | None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.limiters = limiters
        self.rejections = rejections
        self._monotonic = monotonic
        self._keys = _KeyCounts()
        self._keys_lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        yield from self._requests_refused()
        yield from self._audit()
        yield from self._caches()
        yield from self._keypair_pool()
        yield from self._change_feed()
        yield from self._key_states()
        sealed = GaugeMetricFamily("openkms_sealed", "1 while the service is sealed (Shamir), else 0.")
        sealed.add_metric([], 1.0 if self.runtime.trust.sealed else 0.0)
        yield sealed

    def _requests_refused(self) -> Iterator[Metric]:
        throttled = CounterMetricFamily(
            "openkms_throttled_requests",
            "Calls refused with ThrottlingException by the request quotas, by quota group (xks: an "
            "external key store proxy's own rate).",
            labels=["group"],
        )
        totals: dict[str, int] = {}
        for limiter in self.limiters:
            for group, count in list(limiter.throttled.items()):
                totals[group] = totals.get(group, 0) + count
        for group, count in sorted(totals.items()):
            throttled.add_metric([group], count)
        yield throttled
        edge = CounterMetricFamily(
            "openkms_edge_rejections",
            "Requests and connections refused at the network edge, by HTTP status (408: too slow, 431: "
            "headers too large, 503: too many connections).",
            labels=["status"],
        )
        if self.rejections is not None:
            for status, count in sorted(self.rejections.by_status.items()):
                edge.add_metric([str(status)], count)
        yield edge

    def _audit(self) -> Iterator[Metric]:
        audit = self.runtime.audit
        depth = GaugeMetricFamily("openkms_audit_queue_depth", "Audit records waiting to be written.")
        depth.add_metric([], audit.queued())
        yield depth
        written = CounterMetricFamily("openkms_audit_records_written", "Audit records written.")
        written.add_metric([], audit.written)
        yield written
        failed = CounterMetricFamily(
            "openkms_audit_write_failures", "Audit records whose database write failed (retried or dropped)."
        )
        failed.add_metric([], audit.failed)
        yield failed

    def _caches(self) -> Iterator[Metric]:
        keys, aliases = self.runtime.core.cache.sizes()
        creds = self.runtime.creds
        entries = GaugeMetricFamily(
            "openkms_cache_entries",
            "Entries of the in-memory caches (keys, aliases, credentials, credentials_negative: access "
            "key ids recently found to have none).",
            labels=["cache"],
        )
        entries.add_metric(["keys"], keys)
        entries.add_metric(["aliases"], aliases)
        entries.add_metric(["credentials"], creds.entries())
        entries.add_metric(["credentials_negative"], creds.negative_entries())
        yield entries
        cache = self.runtime.core.cache
        counts = {
            "keys": (cache.hits, cache.misses),
            "aliases": (cache.alias_hits, cache.alias_misses),
            "credentials": (creds.hits, creds.misses),
        }
        lookups = CounterMetricFamily(
            "openkms_cache_lookups",
            "Cache lookups, by cache and result (hit or miss).",
            labels=["cache", "result"],
        )
        ratio = GaugeMetricFamily(
            "openkms_cache_hit_ratio",
            "Hits over lookups since the process started, by cache (absent before the first lookup).",
            labels=["cache"],
        )
        for name, (hits, misses) in counts.items():
            lookups.add_metric([name, "hit"], hits)
            lookups.add_metric([name, "miss"], misses)
            if hits + misses:
                ratio.add_metric([name], hits / (hits + misses))
        yield lookups
        yield ratio

    def _keypair_pool(self) -> Iterator[Metric]:
        pool = self.runtime.keypairs
        available = GaugeMetricFamily(
            "openkms_keypair_pool_available",
            "Pre-generated RSA key pairs ready, by key spec.",
            labels=["spec"],
        )
        target = GaugeMetricFamily(
            "openkms_keypair_pool_target", "Key pairs the pool is refilled to, by key spec.", labels=["spec"]
        )
        for spec in sorted(RSA_SPECS):
            available.add_metric([str(spec)], pool.available(spec))
            target.add_metric([str(spec)], pool.targets.get(spec, 0))
        yield available
        yield target
        takes = CounterMetricFamily(
            "openkms_keypair_pool_takes",
            "Key pairs asked of the pool: hit (one was ready) or miss (generated on the request path).",
            labels=["result"],
        )
        takes.add_metric(["hit"], pool.hits)
        takes.add_metric(["miss"], pool.misses)
        yield takes

    def _change_feed(self) -> Iterator[Metric]:
        feed = self.runtime.feed
        delivered = CounterMetricFamily(
            "openkms_change_feed_changes", "Changes of other processes (and this one's, on SQLite) delivered."
        )
        delivered.add_metric([], feed.delivered)
        yield delivered
        connected = GaugeMetricFamily(
            "openkms_change_feed_connected",
            "1 while the change feed works (PostgreSQL: listening; SQLite: its last poll succeeded).",
        )
        connected.add_metric([], 1.0 if feed.connected else 0.0)
        yield connected
        failures = CounterMetricFamily(
            "openkms_change_feed_failures", "Failed polls (SQLite) or lost connections (PostgreSQL)."
        )
        failures.add_metric([], feed.failures)
        yield failures
        if feed.last_delivery is not None:
            since = GaugeMetricFamily(
                "openkms_change_feed_seconds_since_delivery", "Seconds since the change feed last delivered."
            )
            since.add_metric([], max(0.0, self.runtime.store.clock.now() - feed.last_delivery))
            yield since
        if feed.lag is not None:
            lag = GaugeMetricFamily(
                "openkms_change_feed_lag_seconds",
                "SQLite: seconds from the oldest change of the last batch delivered to its delivery.",
            )
            lag.add_metric([], feed.lag)
            yield lag

    def _key_states(self) -> Iterator[Metric]:
        counts = self._key_counts()
        if counts is None:
            return
        family = GaugeMetricFamily(
            "openkms_keys", "KMS keys in each key state, over every account and Region.", labels=["state"]
        )
        for state in KeyState:
            family.add_metric([str(state)], counts.get(str(state), 0))
        yield family

    def _key_counts(self) -> dict[str, int] | None:
        with self._keys_lock:  # one query at a time, reused for KEY_COUNT_TTL seconds
            now = self._monotonic()
            if self._keys.counts is None or now - self._keys.at >= KEY_COUNT_TTL:
                try:
                    with self.runtime.store.read() as tx:
                        self._keys.counts = tx.count_keys_by_state()
                    self._keys.at = now
                except Exception:
                    log.warning("counting keys by state for the metrics failed", exc_info=True)
            return self._keys.counts


@dataclass(frozen=True)
class MetricsListen:
    """Where ``--metrics-listen`` serves: a host (loopback by default) and a port."""

    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> MetricsListen:
        """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` (ValueError otherwise)."""
        text = value.strip()
        host = "127.0.0.1"
        port_text = text
        if text.startswith("["):
            address, sep, port_text = text[1:].partition("]:")
            if not sep or not address:
                raise ValueError(f"expected [IPv6]:PORT, got {value!r}")
            host = address
        elif ":" in text:
            host, _, port_text = text.rpartition(":")
            host = host or "127.0.0.1"
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"expected PORT, HOST:PORT or [IPv6]:PORT, got {value!r}")
        return cls(host, int(port_text))


class MetricsServer:
    """The HTTP(S) server of ``/metrics`` (prometheus_client's, on its own thread)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(
    app: KmsApp, listen: MetricsListen, tls: TlsConfig | None, rejections: EdgeRejections | None
) -> MetricsServer:
    """Record ``app``'s requests and serve its process's metrics on ``listen`` (HTTPS with the API's
    certificate when the API serves TLS, requiring a client certificate when it does; plain HTTP
    otherwise; the certificate is read once, a SIGHUP reloads only the API's). OSError when the address
    cannot be bound."""
    runtime = app.runtime
    metrics = Metrics()
    limiters = [app.limiter] if app.limiter is not None else []
    xks_app = app.mounts.get(xks.MOUNT)
    if isinstance(xks_app, XksApp):
        limiters.append(xks_app.limiter)
    metrics.registry.register(RuntimeCollector(runtime, limiters, rejections))
    runtime.observe_request = metrics.observe
    runtime.audit.on_write = metrics.audit_write.observe
    server, thread = start_http_server(
        listen.port,
        listen.host,
        registry=metrics.registry,
        certfile=str(tls.cert_file) if tls else None,
        keyfile=str(tls.key_file) if tls else None,
        client_cafile=str(tls.client_ca_file) if tls and tls.client_ca_file else None,
        client_auth_required=bool(tls and tls.client_ca_file),
        tls_min_version=ssl.TLSVersion.TLSv1_2 if tls else None,
    )
    return MetricsServer(server, thread)
