"""Which events the plugins of a plan declare, and who handles them: ``ksi-host events``."""

from __future__ import annotations

from collections.abc import Collection

from pydantic import BaseModel, ConfigDict

from ksi_host._plan import LoadPlan

__all__ = ["EventCatalog", "EventEntry", "event_catalog", "render_catalog"]


class EventEntry(BaseModel):
    """One declared command (``system:health``) or whole namespace (``system:*``)."""

    model_config = ConfigDict(frozen=True)

    event: str
    plugin: str
    description: str


class EventCatalog(BaseModel):
    """Declared events sorted by name; ``catch_all`` plugins declare nothing and see everything."""

    model_config = ConfigDict(frozen=True)

    events: list[EventEntry]
    catch_all: list[str]


def event_catalog(plan: LoadPlan, *, only: Collection[str] | None = None) -> EventCatalog:
    """Read the catalog off the plugins that will load; nothing is imported or started.

    ``only`` keeps the plugins with these keys (a running host passes the ones that run).
    """
    entries: list[EventEntry] = []
    catch_all: list[str] = []
    for spec in plan.order:
        if only is not None and spec.key not in only:
            continue
        caps = spec.capabilities
        if caps.routes_everything and "ksi_handle_event" in spec.hooks:
            catch_all.append(spec.name)
        declared = [*caps.commands, *(f"{namespace}:*" for namespace in caps.event_namespaces)]
        entries.extend(
            EventEntry(event=event, plugin=spec.name, description=spec.metadata.description)
            for event in declared
        )
    return EventCatalog(
        events=sorted(entries, key=lambda e: (e.event, e.plugin)), catch_all=catch_all
    )


def render_catalog(catalog: EventCatalog) -> str:
    """One line per event: name, then the plugin that handles it."""
    width = max((len(entry.event) for entry in catalog.events), default=0)
    lines = [f"{entry.event:<{width}}  {entry.plugin}" for entry in catalog.events]
    if catalog.catch_all:
        lines.append(f"every event is also offered to: {', '.join(catalog.catch_all)}")
    return "\n".join(lines) if lines else "no plugin declares any event"
