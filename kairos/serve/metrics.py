"""``/metrics``: Prometheus histograms of the latency metrics, SLO counters, queue gauges.

Per-request figures are observed once, when a request ends (off the per-token path), from
the core ``RequestRecord``, so the server's TTFT/TPOT/ITL/E2E mean what the simulator's do.
Queue and batch gauges are read from the proxy's mirrors at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric

from kairos.serve.job import Job, record
from kairos.serve.proxy import Proxy

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_STEP = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 1.0)


class BulkHistogram:
    """A Prometheus histogram fed a whole array at once: a request's every inter-token gap
    in one ``searchsorted`` instead of one locked ``observe`` per token."""

    def __init__(
        self, name: str, doc: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name, self.doc = name, doc
        self.bounds = np.asarray(buckets, dtype=np.float64)
        self.counts = np.zeros(len(buckets) + 1, dtype=np.int64)  # the last: above every bound
        self.sum = 0.0
        registry.register(self)

    def observe_many(self, values: npt.NDArray[np.float64]) -> None:
        # side="left": a value equal to a bound belongs to that bound's bucket (le).
        where = np.searchsorted(self.bounds, values, side="left")
        self.counts += np.bincount(where, minlength=len(self.counts))
        self.sum += float(values.sum())

    def collect(self) -> Iterator[Metric]:
        cumulative = np.cumsum(self.counts).tolist()
        labels = [repr(float(b)) for b in self.bounds] + ["+Inf"]
        yield HistogramMetricFamily(
            self.name,
            self.doc,
            buckets=list(zip(labels, cumulative, strict=True)),
            sum_value=self.sum,
        )


class ServeMetrics:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        reg = self.registry = CollectorRegistry()
        self.ttft = Histogram(
            "kairos_ttft_seconds", "Time to first token", buckets=_LATENCY, registry=reg
        )
        self.tpot = Histogram(
            "kairos_tpot_seconds", "Time per output token", buckets=_STEP, registry=reg
        )
        self.itl = BulkHistogram("kairos_itl_seconds", "Inter-token latency", _STEP, reg)
        self.e2e = Histogram(
            "kairos_e2e_seconds", "End-to-end latency", buckets=_LATENCY, registry=reg
        )
        self.requests = Counter("kairos_requests", "Ended requests", ["status"], registry=reg)
        self.slo_met = Counter(
            "kairos_slo_met", "Finished requests meeting their SLO", ["slo"], registry=reg
        )
        self.queue = Gauge(
            "kairos_prefill_queue_length", "Requests waiting for prefill", registry=reg
        )
        self.in_flight = Gauge("kairos_requests_in_flight", "Requests not yet ended", registry=reg)
        self.prefill_kv = Gauge(
            "kairos_prefill_kv_used_tokens",
            "Prompt KV held (worker report)",
            ["instance"],
            registry=reg,
        )
        self.decode_waiting = Gauge(
            "kairos_decode_waiting", "Requests placed, not admitted", ["instance"], registry=reg
        )
        self.decode_running = Gauge(
            "kairos_decode_running", "Running batch size", ["instance"], registry=reg
        )
        self.decode_kv = Gauge(
            "kairos_decode_kv_reserved_tokens",
            "KV reserved (worker report)",
            ["instance"],
            registry=reg,
        )
        self.alive = Gauge("kairos_worker_alive", "1 if the worker lives", ["worker"], registry=reg)
        self.mape = Gauge(
            "kairos_predictor_mape",
            "Predictor mean absolute percentage error",
            ["model"],
            registry=reg,
        )
        self.correction = Gauge(
            "kairos_predictor_correction", "Online correction factor", ["model"], registry=reg
        )

    def observe(self, job: Job) -> None:
        rec = record(job)
        self.requests.labels(job.status).inc()
        if not rec.finished:
            return
        ttft, tpot, e2e = rec.ttft, rec.tpot, rec.e2e
        if ttft is not None:
            self.ttft.observe(ttft)
        if tpot is not None and rec.output_tokens > 1:
            self.tpot.observe(tpot)
        if e2e is not None:
            self.e2e.observe(e2e)
        self.itl.observe_many(rec.itl)
        for slo, met in (("ttft", rec.ttft_met), ("tpot", rec.tpot_met), ("joint", rec.slo_met)):
            if met:
                self.slo_met.labels(slo).inc()

    def render(self) -> bytes:
        proxy = self.proxy
        self.queue.set(len(proxy.queue))
        self.in_flight.set(len(proxy.jobs))
        for p in proxy.prefill:
            self.prefill_kv.labels(str(p.instance_id)).set(p.reported_kv_used)
            self.alive.labels(f"prefill-{p.instance_id}").set(p.alive)
        for d in proxy.decode:
            i = str(d.instance_id)
            self.decode_waiting.labels(i).set(len(d.waiting))
            self.decode_running.labels(i).set(len(d.running))
            self.decode_kv.labels(i).set(d.reserved)
            self.alive.labels(f"decode-{d.instance_id}").set(d.alive)
        pred = proxy.predictor
        for model, value in pred.mape().items():
            if value is not None:
                self.mape.labels(model).set(value)
        self.correction.labels("prefill").set(pred.prefill_correction.factor)
        self.correction.labels("decode").set(pred.decode_correction.factor)
        return generate_latest(self.registry)
