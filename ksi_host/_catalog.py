"""Which events the plugins of a plan declare, and who handles them: ``ksi-host events``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ksi_host._plan import LoadPlan
from ksi_host._schema import PluginEntry, Report, plugin_entries, warning_reports

__all__ = ["EventCatalog", "EventEntry", "event_catalog", "render_catalog"]


class EventEntry(BaseModel):
    """One declared command (``system:health``) or whole namespace (``system:*``)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    event: str
    plugin: str
    description: str


class EventCatalog(Report):
    """Declared events sorted by name; ``catch_all`` plugins declare nothing and see everything.

    ``plugins`` is every plugin's verdict, as ``ksi-host plugins --json`` gives it.
    """

    command: Literal["events"] = "events"
    events: list[EventEntry] = []
    catch_all: list[str] = []


def event_catalog(
    plan: LoadPlan, verdicts: list[PluginEntry] | None = None, daemon: str | None = None
) -> EventCatalog:
    """Read the catalog off the plugins that will load; nothing is imported or started.

    ``verdicts`` are the plugins' verdicts when not the plan's own (merged with a
    daemon's, whose socket is ``daemon``): a plugin that failed there is left out.
    A command ``[host] commands`` gives to one plugin is listed for that plugin only.
    """
    verdicts = plugin_entries(plan) if verdicts is None else verdicts
    status = {entry.name: entry.status for entry in verdicts}
    entries: list[EventEntry] = []
    catch_all: list[str] = []
    for spec in plan.order:
        if status.get(spec.name) not in ("loadable", "running", "pending"):
            continue
        caps = spec.capabilities
        if caps.routes_everything and "ksi_handle_event" in spec.hooks:
            catch_all.append(spec.name)
        commands = [c for c in caps.commands if plan.commands.get(c, spec.name) == spec.name]
        declared = [*commands, *(f"{namespace}:*" for namespace in caps.event_namespaces)]
        entries.extend(
            EventEntry(event=event, plugin=spec.name, description=spec.metadata.description)
            for event in declared
        )
    return EventCatalog(
        plugins=verdicts,
        daemon=daemon,
        warnings=warning_reports(plan.warnings),
        events=sorted(entries, key=lambda e: (e.event, e.plugin)),
        catch_all=catch_all,
    )


def render_catalog(catalog: EventCatalog) -> str:
    """One line per event: name, then the plugin that handles it."""
    width = max((len(entry.event) for entry in catalog.events), default=0)
    lines = [f"{entry.event:<{width}}  {entry.plugin}" for entry in catalog.events]
    if catalog.catch_all:
        lines.append(f"every event is also offered to: {', '.join(catalog.catch_all)}")
    return "\n".join(lines) if lines else "no plugin declares any event"
