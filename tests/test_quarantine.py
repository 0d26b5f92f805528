"""Crash-safe start, against a real daemon: a plugin that killed it while loading is skipped."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timezone

import pytest

from ksi_host._quarantine import _since
from tests.conftest import error_code
from tests.containment import FAULTY, Prober, ask, contained_daemon, stop_cleanly
from tests.dists import install_recorded, recorded_manifest

pytestmark = pytest.mark.slow

SEGFAULT_AT_IMPORT = "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"
HANG_AT_IMPORT = "import time\ntime.sleep(1000)\n"
SEGFAULT_AT_STARTUP = FAULTY.format(
    name="startcrash", startup="os.kill(os.getpid(), 11)", shutdown="return None"
)


def _listed(daemon) -> dict:
    return {p["name"]: p for p in ask(daemon.socket_path, "plugin:list")["plugins"]}


def test_a_segfault_at_import_is_skipped_on_the_next_start_until_the_plugin_changes():
    with contained_daemon({}, files={"crasher.py": SEGFAULT_AT_IMPORT}) as daemon:
        crashed = daemon.start(wait=False)
        assert crashed.wait(30) == -signal.SIGSEGV
        log = daemon.log()
        assert "Fatal Python error: Segmentation fault" in log
        assert "crasher.py" in log  # faulthandler's stack names the plugin's file

        daemon.start()
        with Prober(daemon.socket_path) as prober:
            reason = _listed(daemon)["crasher"]["reason"]
            assert reason["code"] == "quarantined"
            assert "died while it was being imported" in reason["message"]
            assert "ksi-host reenable crasher" in reason["hint"]
        prober.check()
        assert "the last daemon on this socket died while crasher was being imported" in (
            daemon.log()
        )
        plan = json.loads(
            daemon.cli("plugins", "--json", "--config", str(daemon.config_path)).stdout
        )
        [entry] = [p for p in plan["plugins"] if p["name"] == "crasher"]
        assert entry["reason"]["code"] == "quarantined"
        doctor = daemon.cli("doctor", "--json", "--config", str(daemon.config_path), timeout=60)
        [problem] = [p for p in json.loads(doctor.stdout)["problems"] if p["plugin"] == "crasher"]
        assert problem["fix"] == "ksi-host reenable crasher"
        stop_cleanly(daemon, deadline=1.0 + 8.0)

        folder = daemon.root / "plugins"
        (folder / "crasher.py").write_text(
            FAULTY.format(name="crasher", startup="return None", shutdown="return None")
        )
        daemon.start()
        assert _listed(daemon)["crasher"]["status"] == "running"
        assert ask(daemon.socket_path, "crasher:ping")["pong"] == "crasher"
        stop_cleanly(daemon, deadline=1.0 + 8.0)


def test_a_segfault_in_startup_is_skipped_until_the_operator_reenables_it():
    with contained_daemon({}, files={"startcrash.py": SEGFAULT_AT_STARTUP}) as daemon:
        assert daemon.start(wait=False).wait(30) == -signal.SIGSEGV
        daemon.start()
        reason = _listed(daemon)["startcrash"]["reason"]
        assert reason["code"] == "quarantined"
        assert "died while it was in ksi_startup" in reason["message"]
        stop_cleanly(daemon, deadline=1.0 + 8.0)

        reenabled = daemon.cli("reenable", "startcrash")
        assert reenabled.returncode == 0, reenabled.stderr
        assert "startcrash will be loaded again" in reenabled.stdout
        again = daemon.cli("reenable", "startcrash")
        assert again.returncode == 1
        assert "startcrash is not quarantined (quarantined: none)" in again.stderr
        plan = json.loads(
            daemon.cli("plugins", "--json", "--config", str(daemon.config_path)).stdout
        )
        assert [p["status"] for p in plan["plugins"] if p["name"] == "startcrash"] == ["loadable"]


def test_a_hang_at_import_stopped_by_sigterm_is_skipped_on_the_next_start():
    with contained_daemon({}, files={"hangs.py": HANG_AT_IMPORT}, grace=2.0) as daemon:
        proc = daemon.start(wait=False)
        marker = daemon.socket_path.with_name("ksi.sock.starting")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if marker.exists() and '"hangs"' in marker.read_text():
                break
            time.sleep(0.05)
        else:
            raise AssertionError(daemon.log())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(1.0 + 2.0 + 5) == 1
        assert not daemon.socket_path.exists()
        daemon.start()
        with Prober(daemon.socket_path) as prober:
            assert _listed(daemon)["hangs"]["reason"]["code"] == "quarantined"
        prober.check()
        stop_cleanly(daemon, deadline=1.0 + 8.0)


def test_the_quarantine_forgets_a_plugin_that_changed_and_reenable_removes_it(tmp_path):
    from ksi_host._plan import Candidate, Origin
    from ksi_host._quarantine import Quarantine, StartMarker

    plugin = tmp_path / "flaky.py"
    plugin.write_text("x = 1\n")
    candidate = Candidate("flaky", Origin("path", str(plugin)), file=plugin)
    quarantine = Quarantine(tmp_path / "data" / "quarantine.json")
    marker = StartMarker(tmp_path / "ksi.sock.starting", quarantine)
    marker.importing(candidate)  # ... and the daemon dies here
    assert [entry.name for entry in marker.recover()] == ["flaky"]
    assert not marker.path.exists()
    assert marker.recover() == []

    loadable, skipped = quarantine.split([candidate])
    assert loadable == []
    [(_, exclusion)] = skipped
    assert exclusion.reason.code == "quarantined"

    plugin.write_text("x = 2  # fixed\n")
    assert quarantine.split([candidate]) == ([candidate], [])

    assert [entry.name for entry in quarantine.reenable("flaky")] == ["flaky"]
    assert quarantine.entries() == []
    (tmp_path / "data" / "quarantine.json").write_text("{not json")
    assert quarantine.entries() == []  # unreadable: logged, and nothing is skipped


def test_a_lazy_plugin_that_kills_the_daemon_on_its_first_event_is_quarantined(tmp_path):
    site = tmp_path / "site"
    install_recorded(
        site, "lz_crash", manifest=recorded_manifest("lz_crash"), source=SEGFAULT_AT_IMPORT
    )
    install_recorded(site, "lz_fine", manifest=recorded_manifest("lz_fine"))
    with contained_daemon({}) as daemon:
        daemon.env.update(PYTHONPATH=str(site), KSI_TEST_IMPORTS=str(tmp_path / "imports.log"))
        daemon.start()
        sock = daemon.socket_path
        assert ask(sock, "lz_fine:go") == {"from": "lz_fine", "event": "lz_fine:go"}
        with pytest.raises((OSError, ValueError)):  # the daemon dies answering
            ask(sock, "lz_crash:go")
        assert daemon.proc.wait(30) == -signal.SIGSEGV

        daemon.start()
        with Prober(sock) as prober:
            listed = _listed(daemon)
            reason = listed["lz_crash"]["reason"]
            assert reason["code"] == "quarantined"
            assert "being imported, activated lazily by 'lz_crash:go'" in reason["message"]
            assert "ksi-host reenable lz_crash" in reason["hint"]
            assert listed["lz_fine"]["status"] == "lazy"  # activated fine last time: not blamed
            assert ask(sock, "lz_fine:go") == {"from": "lz_fine", "event": "lz_fine:go"}
            refused = ask(sock, "lz_crash:go")  # not imported again, and says why
            assert error_code(refused) == "NO_HANDLER"
            assert "plugin 'lz_crash' declares it but is excluded" in refused["error"]["message"]
            assert "activated lazily by 'lz_crash:go'" in refused["error"]["message"]
        prober.check()
        log = daemon.log()
        assert "died while lz_crash was being imported, activated lazily by 'lz_crash:go'" in log
        assert "died while plugin 'lz_crash' in import on 'lz_crash:go' was running" in log
        plan = json.loads(
            daemon.cli("plugins", "--json", "--config", str(daemon.config_path)).stdout
        )
        [entry] = [p for p in plan["plugins"] if p["name"] == "lz_crash"]
        assert entry["reason"]["code"] == "quarantined"
        stop_cleanly(daemon, deadline=1.0 + 8.0)
        assert not sock.with_name("ksi.sock.starting").exists()  # lz_fine's start is over

        assert daemon.cli("reenable", "lz_crash").returncode == 0
        plan = json.loads(
            daemon.cli("plugins", "--json", "--config", str(daemon.config_path)).stdout
        )
        [entry] = [p for p in plan["plugins"] if p["name"] == "lz_crash"]
        assert entry["reason"] is None or entry["reason"]["code"] != "quarantined"


def test_of_several_starts_under_way_the_one_the_crash_record_names_is_blamed(tmp_path):
    from ksi_host._plan import Origin, PluginSpec
    from ksi_host._quarantine import Quarantine, StartMarker
    from ksi_host.plugin_types import PluginCapabilities, PluginMetadata

    def spec(name: str) -> PluginSpec:
        file = tmp_path / f"{name}.py"
        file.write_text("x = 1\n")
        return PluginSpec(
            plugin=object(),
            metadata=PluginMetadata(name=name),
            capabilities=PluginCapabilities(),
            origin=Origin("path", str(file)),
        )

    waits, crashes, done = spec("waits"), spec("crashes"), spec("done")
    quarantine = Quarantine(tmp_path / "data" / "quarantine.json")
    path = tmp_path / "ksi.sock.starting"

    def died(running: str | None) -> list[str]:
        """A daemon dies while ``waits`` awaits in ksi_startup and ``crashes`` activates."""
        marker = StartMarker(path, quarantine)
        marker.starting(done, "ksi_startup")
        marker.finished(done)
        marker.starting(waits, "ksi_startup", "waits:go")
        marker.starting(crashes, "import", "crashes:go")
        return sorted(entry.name for entry in StartMarker(path, quarantine).recover(running))

    assert died(running="crashes") == ["crashes"]
    assert [entry.name for entry in quarantine.entries()] == ["crashes"]
    assert died(running=None) == ["crashes", "waits"]  # the record names neither: both
    reasons = {entry.name: entry.reason().message for entry in quarantine.entries()}
    assert "while it was in ksi_startup, activated lazily by 'waits:go'" in reasons["waits"]

    marker = StartMarker(path, quarantine)
    marker.starting(waits, "ksi_startup", "waits:go")
    marker.finished(waits)
    marker.done()
    assert not path.exists()


def test_the_marker_is_rewritten_in_place_and_a_shorter_one_reads_back_whole(tmp_path):
    from ksi_host._plan import Candidate, Origin
    from ksi_host._quarantine import Quarantine, StartMarker

    def candidate(name: str) -> Candidate:
        file = tmp_path / f"{name}.py"
        file.write_text("x = 1\n")
        return Candidate(name, Origin("path", str(file)), file=file)

    marker = StartMarker(tmp_path / "ksi.sock.starting", Quarantine(tmp_path / "q.json"))
    marker.importing(candidate("a_plugin_with_a_much_longer_name"))
    marker.importing(candidate("short"))  # ... and the daemon dies here
    [entry] = StartMarker(marker.path, marker.quarantine).recover()
    assert (entry.name, entry.stage) == ("short", "import")

    marker.importing(candidate("again"))  # the file it held was removed: written anew
    [entry] = StartMarker(marker.path, marker.quarantine).recover()
    assert entry.name == "again"
    marker.done()
    assert not marker.path.exists()


def test_a_markers_since_is_the_local_time_to_the_second():
    def now() -> str:
        return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")

    _since()  # a second converted before this one is not served again
    while True:
        before, since, after = now(), _since(), now()
        if before == after:  # not across a second's edge
            assert since == before
            return
