"""The crash record names the plugin, hook and event that were running when the daemon died."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from ksi_host import _crash_record as crash_record
from tests.containment import Prober, ask, contained_daemon, stop_cleanly

LATE_CRASH = """
import asyncio, os
from ksi_host import BasePlugin, PluginCapabilities, PluginMetadata, hookimpl


class Late(BasePlugin):
    @hookimpl
    async def ksi_handle_event(self, event_name, data, context):
        await asyncio.sleep(0.2)  # others run meanwhile; then it crashes
        os.kill(os.getpid(), 11)


plugin = Late(PluginMetadata(name="late"), PluginCapabilities(event_namespaces=["late"]))
"""


def _crash(daemon, event: str) -> str:
    """Send ``event``, which kills the daemon; its log."""
    with pytest.raises((OSError, ValueError)):  # the daemon dies answering
        ask(daemon.socket_path, event)
    assert daemon.proc.wait(30) == -signal.SIGSEGV
    return daemon.log()


@pytest.mark.slow
def test_the_next_start_names_the_plugin_hook_and_event_a_segfault_killed_the_daemon_in():
    with contained_daemon({"crashy": {}}, files={"late.py": LATE_CRASH}) as daemon:
        record = daemon.socket_path.with_name("ksi.sock.running")
        daemon.start()
        assert ask(daemon.socket_path, "crashy:ping")["pong"] == "crashy"
        assert "Fatal Python error: Segmentation fault" in _crash(daemon, "crashy:segv")
        assert record.exists()

        daemon.start()
        assert (
            "died while plugin 'crashy' in ksi_handle_event on 'crashy:segv' was running"
            in daemon.log()
        )
        with Prober(daemon.socket_path) as prober:  # a crash at run time quarantines nobody
            assert ask(daemon.socket_path, "crashy:ping")["pong"] == "crashy"
            for _ in range(3):
                ask(daemon.socket_path, "test:echo")
        prober.check()
        _crash(daemon, "late:go")  # crashes in a later step, after other events ran

        daemon.start()
        assert "died while plugin 'late' in ksi_handle_event on 'late:go' was running" in (
            daemon.log()
        )
        stop_cleanly(daemon, deadline=1.0 + 8.0)
        assert not record.exists()  # a clean stop leaves no record

        daemon.start()
        assert "did not stop cleanly" not in daemon.log()
        stop_cleanly(daemon, deadline=1.0 + 8.0)


def test_a_record_names_the_running_call_until_the_loop_is_idle(tmp_path: Path):
    path = tmp_path / "ksi.sock.running"
    record = crash_record.RECORD
    assert crash_record.recover(path) is None  # the last daemon stopped cleanly
    site = record.claim("weather", "ksi_validate_event", "weather:get")

    async def calls() -> crash_record.Crash | None:
        crash_record.attach(path)  # claimed before: written into the new file too
        assert record.ids is not None
        record.ids[0] = site
        return crash_record.recover(path)

    try:
        crash = asyncio.run(calls())
        assert crash is not None
        assert (crash.plugin, crash.hook, crash.event) == (
            "weather",
            "ksi_validate_event",
            "weather:get",
        )
        assert not path.exists()

        async def idle() -> None:
            crash_record.attach(path)
            assert record.ids is not None
            record.ids[0] = site
            await asyncio.sleep(crash_record.IDLE_TICK * 3)  # the loop is free: idle

        asyncio.run(idle())
        assert crash_record.recover(path) is None
        crash_record.attach(path)
        record.write(crash_record.line("weather", "ksi_startup", None))
        started = crash_record.recover(path)
        assert started is not None
        assert (started.hook, started.event) == ("ksi_startup", None)
        assert len(crash_record.line("p" * 300, "ksi_handle_event", "e:x")) == crash_record.LINE
    finally:
        record.release(site)
        crash_record.detach()
    assert not path.exists()


def test_call_sites_past_the_tables_size_are_named_as_unnamed():
    record = crash_record.RECORD
    sites = [record.claim("p", "ksi_handle_event", f"e:{n}") for n in range(crash_record.LINES)]
    try:
        assert len(set(sites)) < len(sites)  # the last ones share the "unnamed" line
        record.release(sites[0])
        again = record.claim("p", "ksi_handle_event", "e:again")
        assert again == sites[0]
        sites[0] = again
    finally:
        for site in set(sites):
            record.release(site)
