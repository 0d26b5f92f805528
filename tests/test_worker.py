"""The worker process of an isolated plugin checks its settings as the host would.

The worker finds the plugin's section by the host's rule (``[my-weather]`` is the
section of ``my_weather``), validates it against the plugin's ``config_model`` in the
worker, and a section that does not fit gets the same ``config-invalid`` verdict as
for the same plugin in-process: from the plan, and from the worker itself when the
host's config differs from the plan's.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from ksi_host._config import HostConfig, HostSection
from ksi_host._lifecycle import Host, PluginStatus
from ksi_host._pipeline import build_plan
from ksi_host._plan import LoadPlan
from tests.conftest import host_env

pytestmark = pytest.mark.slow

CONFIGURED = """
import os
from pydantic import BaseModel
from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


class Settings(BaseModel):
    city: str
    limit: int = 3


class Weather(BasePlugin):
    config_model = Settings

    @hookimpl
    def ksi_handle_event(self, event_name, data, context):
        return {"city": context.settings.city, "limit": context.settings.limit, "pid": os.getpid()}


plugin = Weather(
    PluginMetadata(name="my_weather"), PluginCapabilities(event_namespaces=["weather"])
)
"""

GOOD = {"city": "Oslo", "limit": 5}
BAD = {"city": "Oslo", "limit": "many"}


def _config(section: dict[str, Any], *, isolated: bool) -> HostConfig:
    host = HostSection(isolated=["my-weather"] if isolated else [], watchdog_threshold=0)
    return HostConfig(host=host, **{"my-weather": section})


def _plan(tmp_path: Path, config: HostConfig) -> LoadPlan:
    path = tmp_path / "my_weather.py"  # isolated names match the file (the host never imports it)
    path.write_text(CONFIGURED)
    return build_plan(
        paths=[path],
        env=host_env(tmp_path),
        builtin_package=None,
        sections=config.sections_by_key(),
        host=config.host,
    )


def _run(plan: LoadPlan, config: HostConfig) -> tuple[Any, PluginStatus]:
    async def main() -> tuple[Any, PluginStatus]:
        async with Host(plan, config) as host:
            [status] = host.status()
            return await host.dispatch("weather:get", {}), status

    return asyncio.run(main())


def test_the_worker_reads_the_section_the_host_finds_by_canonical_name(tmp_path):
    config = _config(GOOD, isolated=True)
    answer, status = _run(_plan(tmp_path, config), config)
    assert status.status == "running"
    assert answer["pid"] != os.getpid()  # validated and answered in the worker
    assert {key: answer[key] for key in GOOD} == GOOD


def test_a_bad_section_gets_the_same_verdict_isolated_as_in_process(tmp_path):
    reasons = []
    for isolated in (False, True):
        plan = _plan(tmp_path, _config(BAD, isolated=isolated))
        [excluded] = plan.excluded
        reasons.append(excluded.reason)
    in_process, apart = reasons
    assert apart.code == in_process.code == "config-invalid"
    assert (apart.message, apart.hint, apart.key) == (
        in_process.message,
        in_process.hint,
        in_process.key,
    )
    assert "limit" in apart.message


def test_the_worker_itself_refuses_a_section_the_plan_did_not_check(tmp_path):
    statuses = []
    for isolated in (False, True):
        plan = _plan(tmp_path, _config(GOOD, isolated=isolated))  # vetted with a good section
        answer, status = _run(plan, _config(BAD, isolated=isolated))  # run with a bad one
        assert answer["error"]["code"] == "NO_HANDLER"
        statuses.append(status)
    in_process, apart = statuses
    assert apart.status == in_process.status == "failed"
    assert apart.reason is not None
    assert in_process.reason is not None
    assert apart.reason.code == in_process.reason.code == "config-invalid"
    assert apart.reason.message == in_process.reason.message
    assert apart.reason.key == in_process.reason.key == "limit"
