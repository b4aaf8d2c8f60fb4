"""A run's AIBOM: a CycloneDX 1.6 JSON BOM (cyclonedx-python-lib) of what the run used.

Read from the run's events, as its workers reported them: models (receipt usage and adapter
``complete`` envelopes), frameworks and adapters with their versions (each envelope names its
adapter), tools and the tool packs / MCP servers they came from (``tool_called`` /
``tool_refused``: a tool ``pack.tool`` belongs to pack ``pack``), and FleetForge itself.
"""

from __future__ import annotations

from typing import Any

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6

from fleetforge import __version__
from fleetforge.fleet.trust.bundle import Bundle

__all__ = ["aibom", "aibom_json"]


def _used(bundle: Bundle) -> tuple[set[str], dict[str, str], dict[str, set[str]]]:
    models: set[str] = set()
    adapters: dict[str, str] = {}
    packs: dict[str, set[str]] = {}
    for event in bundle.events:
        data: dict[str, Any] = event.data
        if event.type == "receipt_recorded":
            model = (data["receipt"].get("usage") or {}).get("model")
            if model:
                models.add(str(model))
        elif event.type == "task_event":
            envelope = data.get("envelope") or {}
            adapter = envelope.get("adapter") or {}
            if adapter.get("name"):
                adapters[str(adapter["name"])] = str(adapter.get("version") or "")
            model = (envelope.get("usage") or {}).get("model")
            if model:
                models.add(str(model))
        elif event.type in ("tool_called", "tool_refused"):
            tool = str(data.get("tool") or "")
            pack, _, name = tool.partition(".")
            packs.setdefault(pack if name else "(unpacked)", set()).add(tool)
    return models, adapters, packs


def aibom(bundle: Bundle) -> Bom:
    """The BOM of ``bundle``'s run."""
    models, adapters, packs = _used(bundle)
    bom = Bom()
    bom.metadata.component = root = Component(
        name=f"fleetforge-run-{bundle.run_id}",
        type=ComponentType.APPLICATION,
        bom_ref=f"run:{bundle.run_id}",
        properties=[Property(name="fleetforge:run_id", value=bundle.run_id)],
    )
    bom.components.add(
        Component(
            name="fleetforge",
            version=__version__,
            type=ComponentType.FRAMEWORK,
            bom_ref="fleetforge",
        )
    )
    for name, version in sorted(adapters.items()):
        bom.components.add(
            Component(
                name=name,
                version=version or None,
                type=ComponentType.FRAMEWORK,
                bom_ref=f"adapter:{name}",
                properties=[Property(name="fleetforge:kind", value="adapter")],
            )
        )
    for model in sorted(models):
        bom.components.add(
            Component(
                name=model, type=ComponentType.MACHINE_LEARNING_MODEL, bom_ref=f"model:{model}"
            )
        )
    for pack, tools in sorted(packs.items()):
        bom.components.add(
            Component(
                name=pack,
                type=ComponentType.APPLICATION,
                bom_ref=f"toolpack:{pack}",
                properties=[
                    Property(name="fleetforge:kind", value="tool-pack / MCP server"),
                    *(Property(name="fleetforge:tool", value=t) for t in sorted(tools)),
                ],
            )
        )
    bom.register_dependency(root, list(bom.components))
    return bom


def aibom_json(bundle: Bundle) -> str:
    """The BOM as CycloneDX 1.6 JSON text."""
    text: str = JsonV1Dot6(aibom(bundle)).output_as_string(indent=2)
    return text
