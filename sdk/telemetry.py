"""OpenTelemetry spans, with the API only (``opentelemetry-api``); exporting is opt-in.

Spans FleetForge records (names and attributes follow the GenAI semantic conventions):

- ``run {name}`` — the client submitting a run; its W3C trace context is stored with the run and
  handed to every task, so a worker's spans in another process join the submitter's trace;
- ``step {step_id}`` and ``task {task_id}`` — a Worker handling one leased attempt;
- ``invoke_agent {agent}`` — an adapter from ``start`` to ``complete``/``error``, with
  ``gen_ai.operation.name``, ``gen_ai.agent.name``, ``gen_ai.request.model`` and
  ``gen_ai.usage.input_tokens`` / ``output_tokens``;
- ``execute_tool {tool}`` — from an adapter's ``tool_call`` emit to its ``tool_result``.

Each carries ``fleet.run_id``, ``fleet.step_id``, ``fleet.task_id`` and ``fleet.attempt``.
Step, task and armory tool spans also carry the trust attributes (:func:`trust_attributes`):
``trust.semconv.version``, ``trust.capability_token_id`` (the task's capability token),
``trust.policy.decision`` (``allow``/``deny``, when a Cedar policy decided a tool call) and
``trust.attestation_id`` (when the receipt's attestation is known); an unknown one is left out
(OpenTelemetry attributes cannot be null).
Without an SDK nothing is recorded. :func:`configure` installs the OpenTelemetry SDK with an OTLP
exporter when ``fleetforge[otel]`` is installed and the standard ``OTEL_*`` variables ask for it
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, or
``OTEL_TRACES_EXPORTER=otlp|console``); the CLI's long-running commands call it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from fleetforge import __version__
from fleetforge.contracts import TraceContext

__all__ = [
    "TRUST_SEMCONV_VERSION",
    "configure",
    "context_from",
    "current_trace_context",
    "tracer",
    "trust_attributes",
]

TRUST_SEMCONV_VERSION = "0.1"
"""Version of FleetForge's ``trust.*`` span attributes."""


def trust_attributes(
    *,
    capability_token_id: str | None = None,
    attestation_id: str | None = None,
    policy_decision: str | None = None,
) -> dict[str, str]:
    """The ``trust.*`` attributes of a span; the unknown ones are left out."""
    values = {
        "trust.semconv.version": TRUST_SEMCONV_VERSION,
        "trust.capability_token_id": capability_token_id,
        "trust.attestation_id": attestation_id,
        "trust.policy.decision": policy_decision,
    }
    return {k: v for k, v in values.items() if v is not None}


tracer = trace.get_tracer("fleetforge", __version__)
_PROPAGATOR = TraceContextTextMapPropagator()


def current_trace_context() -> TraceContext:
    """The active span's W3C trace context (empty when there is none)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return TraceContext.model_validate(carrier)


def context_from(trace_context: TraceContext | None) -> otel_context.Context:
    """An OpenTelemetry context whose parent is ``trace_context`` (none: a new trace)."""
    carrier = {} if trace_context is None else trace_context.model_dump(exclude_none=True)
    return _PROPAGATOR.extract(carrier)


def configure(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Install the SDK and an exporter when the ``OTEL_*`` environment asks for one.

    Returns True when it did; False when nothing is asked for, the SDK is missing
    (``pip install "fleetforge[otel]"``), or a tracer provider is already set.
    """
    env = os.environ if environ is None else environ
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if exporter_name == "none" or not (exporter_name or endpoint):
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError:
        return False
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return False
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    name = env.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True
