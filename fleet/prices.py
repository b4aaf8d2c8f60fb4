"""Model prices: ``$FLEETFORGE_HOME/prices.toml``, what a run's usage costs when the worker
reports tokens but no cost (issue 23, run-level budgets).

.. code-block:: toml

    # US dollars per 1,000 tokens, by model name as the provider reports it
    [models."gpt-4o-mini"]
    input_per_1k = 0.00015
    output_per_1k = 0.0006

    [models."claude-sonnet-4"]
    input_per_1k = 0.003
    output_per_1k = 0.015

``FLEETFORGE_PRICES`` names another file. No file: no prices (every cost the worker does not
report is unknown). A usage whose model is not in the table has an unknown cost too: it counts
as 0 against a run's ``max_cost_usd`` and the run's budget status counts such attempts
(``cost_unknown``), so a person can see that the cost figure is a lower bound.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetforge.contracts import FleetUsage
from fleetforge.errors import ContractError, ErrorDetail
from fleetforge.fleet.settings import fleet_home, read_toml

__all__ = ["ModelPrice", "PriceTable", "load_prices", "parse_prices", "prices_path"]

_FIELDS = ("input_per_1k", "output_per_1k")


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per 1,000 input and output tokens of one model."""

    input_per_1k: float
    output_per_1k: float

    def cost(self, usage: FleetUsage) -> float:
        """What ``usage``'s input and output tokens cost (rounded to 1e-9 dollars)."""
        dollars = usage.input_tokens * self.input_per_1k + usage.output_tokens * self.output_per_1k
        return round(dollars / 1000, 9)


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name."""

    models: Mapping[str, ModelPrice] = field(default_factory=dict)
    source: str = ""

    def cost(self, usage: FleetUsage) -> float | None:
        """The cost of ``usage`` from its model's price; None when the model is unknown, or
        when tokens were counted only as a total (input and output are priced apart: a total
        alone has no known price)."""
        if usage.total_tokens > usage.input_tokens + usage.output_tokens:
            return None
        price = self.models.get(usage.model or "")
        return None if price is None else price.cost(usage)


def prices_path(environ: Mapping[str, str] | None = None) -> Path:
    """``FLEETFORGE_PRICES`` if set, else ``$FLEETFORGE_HOME/prices.toml``."""
    env = os.environ if environ is None else environ
    if env.get("FLEETFORGE_PRICES"):
        return Path(env["FLEETFORGE_PRICES"])
    return fleet_home(env) / "prices.toml"


def load_prices(path: Path | None = None) -> PriceTable:
    """The table in ``path`` (default :func:`prices_path`); an empty one when there is no
    file. ContractError naming the file and the key path of each problem otherwise."""
    path = prices_path() if path is None else path
    document = read_toml(path)
    if document is None:
        return PriceTable(source=str(path))
    return parse_prices(document, source=str(path))


def parse_prices(document: Mapping[str, Any], *, source: str) -> PriceTable:
    """A table from a parsed document; every problem is a detail with its key path."""
    problems: list[ErrorDetail] = [
        ErrorDetail(f"/{_escape(k)}", "unknown section (only [models.NAME] tables)")
        for k in sorted(document)
        if k != "models"
    ]
    models = document.get("models", {})
    if not isinstance(models, dict):
        problems.append(ErrorDetail("/models", "must be a table of models"))
        models = {}
    found: dict[str, ModelPrice] = {}
    for name, body in models.items():
        where = f"/models/{_escape(name)}"
        if not isinstance(body, dict):
            problems.append(ErrorDetail(where, "must be a table with input_per_1k, output_per_1k"))
            continue
        problems += [
            ErrorDetail(f"{where}/{_escape(k)}", f"unknown key; use {' and '.join(_FIELDS)}")
            for k in sorted(body)
            if k not in _FIELDS
        ]
        values: dict[str, float] = {}
        for key in _FIELDS:
            value = body.get(key)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is None:
                problems.append(ErrorDetail(f"{where}/{key}", "is missing"))
            elif not number or not math.isfinite(value) or value < 0:
                problems.append(
                    ErrorDetail(f"{where}/{key}", f"must be a number >= 0, got {value!r}")
                )
            else:
                values[key] = float(value)
        if len(values) == len(_FIELDS):
            found[name] = ModelPrice(**values)
    if problems:
        raise ContractError(f"{source}: the price table is not valid", details=problems)
    return PriceTable(models=found, source=source)


def _escape(key: str) -> str:
    """A key as a JSON pointer token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")
