"""The WebSocket transport: a real client against a real daemon subprocess, both transports on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import DaemonProcess, LineClient, error_code, write_config

from ksi_host._limits import RESERVED_FILES
from ksi_host._websocket.config import TOKEN_FILE_NAME, WebSocketConfig, client_token, write_token
from ksi_host.errors import ConfigError

websockets = pytest.importorskip("websockets", reason='needs pip install "ksi-host[websocket]"')
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

ORIGIN = "https://allowed.example"
WEBSOCKET = f"""max_connections = 256

[websocket]
enabled = true
port = 0
allowed_origins = ["{ORIGIN}"]
"""


def start_daemon(root: Path, extra: str = WEBSOCKET) -> DaemonProcess:
    write_config(root / "ksi.toml", state=root / "state.db", extra=extra)
    daemon = DaemonProcess(root)
    daemon.start()
    return daemon


def url_of(daemon: DaemonProcess) -> str:
    found = re.search(r"listening on (ws://\S+)", daemon.log())
    assert found, daemon.log()
    return found.group(1)


def token_file(daemon: DaemonProcess) -> Path:
    return Path(daemon.env["KSI_HOME"]) / "run" / TOKEN_FILE_NAME


def bearer(daemon: DaemonProcess, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or token_file(daemon).read_text().strip()}"}


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    """One daemon with both transports for the tests that do not stop it."""
    root = Path(tempfile.mkdtemp(prefix="ksi-", dir="/tmp"))
    daemon = start_daemon(root)
    yield daemon
    daemon.stop()
    shutil.rmtree(root, ignore_errors=True)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def ask(ws: Any, event: str, data: Any = None, correlation_id: Any = "1") -> dict[str, Any]:
    await ws.send(
        json.dumps({"event": event, "data": data or {}, "correlation_id": correlation_id})
    )
    return json.loads(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[no-any-return]


# --- config and token, no daemon ---


def test_the_section_is_off_by_default_on_localhost_port_8765() -> None:
    config = WebSocketConfig()
    assert (config.enabled, config.host, config.port, config.allowed_origins) == (
        False,
        "127.0.0.1",
        8765,
        (),
    )


def test_the_token_file_is_0600_from_the_start_and_random_each_time(tmp_path: Path) -> None:
    path = tmp_path / "run" / TOKEN_FILE_NAME
    first = write_token(path, None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert write_token(path, None) != first
    assert write_token(path, "x" * 20) == "x" * 20
    assert path.read_text().strip() == "x" * 20


def test_send_without_any_token_says_where_it_looked(
    ksi_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as info:
        client_token(None, {})
    assert info.value.file == ksi_home / "run" / TOKEN_FILE_NAME
    assert info.value.keys == ("websocket.token",)
    assert str(ksi_home / "run" / TOKEN_FILE_NAME) in info.value.render()
    assert "--token" in info.value.render()
    assert client_token("given", {}) == "given"
    assert client_token(None, {"token": "t" * 16}) == "t" * 16


# --- a real daemon ---


@pytest.mark.slow
def test_a_request_gets_its_reply_and_the_token_file_is_0600(daemon: DaemonProcess) -> None:
    assert stat.S_IMODE(token_file(daemon).stat().st_mode) == 0o600

    async def main() -> None:
        async with connect(url_of(daemon), additional_headers=bearer(daemon)) as ws:
            reply = await ask(ws, "test:echo", {"x": 1}, "abc")
            assert reply == {
                "event": "test:echo",
                "correlation_id": "abc",
                "data": {"echo": {"x": 1}},
            }
            health = await ask(ws, "system:health")
            assert health["data"]["status"] == "healthy"

    run(main())


@pytest.mark.slow
def test_pipelined_requests_are_answered_as_they_finish_matched_by_id(
    daemon: DaemonProcess,
) -> None:
    async def main() -> None:
        async with connect(url_of(daemon), additional_headers=bearer(daemon)) as ws:
            await ws.send(
                json.dumps(
                    {"event": "test:sleep", "data": {"seconds": 0.5}, "correlation_id": "slow"}
                )
            )
            for i in range(20):
                await ws.send(
                    json.dumps({"event": "test:echo", "data": {"i": i}, "correlation_id": i})
                )
            replies = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(21)]
            assert [r["correlation_id"] for r in replies[:20]] == list(range(20))
            assert replies[-1]["correlation_id"] == "slow"
            assert all(r["data"]["echo"] == {"i": r["correlation_id"]} for r in replies[:20])

    run(main())


@pytest.mark.slow
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": "Basic eDp5"}],
)
def test_without_the_right_token_the_handshake_is_refused_with_401(
    daemon: DaemonProcess, headers: dict[str, str]
) -> None:
    async def main() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(url_of(daemon), additional_headers=headers):
                pass
        assert info.value.response.status_code == 401
        body = info.value.response.body.decode()
        assert "Authorization: Bearer <token>" in body
        assert TOKEN_FILE_NAME in body

    run(main())


@pytest.mark.slow
def test_a_page_from_an_origin_not_allowed_is_refused_with_403_even_with_the_token(
    daemon: DaemonProcess,
) -> None:
    async def main() -> None:
        with pytest.raises(InvalidStatus) as info:
            async with connect(
                url_of(daemon), origin="https://evil.example", additional_headers=bearer(daemon)
            ):
                pass
        assert info.value.response.status_code == 403
        assert "allowed_origins" in info.value.response.body.decode()

    run(main())


@pytest.mark.slow
def test_an_allowed_page_sends_the_token_as_its_first_message(daemon: DaemonProcess) -> None:
    token = token_file(daemon).read_text().strip()

    async def main() -> None:
        async with connect(url_of(daemon), origin=ORIGIN) as ws:
            await ws.send(json.dumps({"token": token}))
            assert json.loads(await ws.recv())["data"] == {"status": "authenticated"}
            assert (await ask(ws, "test:echo", {"b": 1}))["data"] == {"echo": {"b": 1}}
        async with connect(url_of(daemon), origin=ORIGIN) as ws:
            await ws.send(json.dumps({"token": "not-the-token"}))
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1008

    run(main())


@pytest.mark.slow
def test_malformed_json_gets_the_unix_sockets_error_and_the_connection_stays_usable(
    daemon: DaemonProcess,
) -> None:
    async def main() -> None:
        async with connect(url_of(daemon), additional_headers=bearer(daemon)) as ws:
            for raw, code in [
                ('{"event": "test:echo"', "INVALID_JSON"),
                ("[1]", "NOT_AN_OBJECT"),
                ('{"event": "TEST", "correlation_id": "9"}', "INVALID_EVENT_NAME"),
                ('{"event": "nobody:home"}', "NO_HANDLER"),
            ]:
                await ws.send(raw)
                data = json.loads(await ws.recv())["data"]
                assert error_code(data) == code
                assert "line" not in data["error"]["message"]  # a WebSocket client sends messages
            await ws.send(b'\xff{"event": "test:echo"}')  # a binary message that is not UTF-8
            data = json.loads(await ws.recv())["data"]
            assert error_code(data) == "INVALID_ENCODING"
            assert data["error"]["message"].startswith("the message is not UTF-8")
            assert (await ask(ws, "test:echo", {"after": True}))["data"] == {
                "echo": {"after": True}
            }

    run(main())


@pytest.mark.slow
@pytest.mark.parametrize("fragmented", [False, True], ids=["one frame", "fragments"])
def test_a_message_over_max_line_bytes_is_answered_line_too_long_then_closed(
    daemon: DaemonProcess, fragmented: bool
) -> None:
    """As on the Unix socket: the reply says why, then the connection closes (1009)."""
    big = json.dumps({"event": "test:echo", "data": {"v": "x" * 1_100_000}})

    async def main() -> None:
        async with connect(url_of(daemon), additional_headers=bearer(daemon), max_size=None) as ws:
            assert (await ask(ws, "test:echo", {"before": 1}))["data"] == {"echo": {"before": 1}}
            if fragmented:  # each fragment is under the limit, the message is not
                await ws.send([big[i : i + 300_000] for i in range(0, len(big), 300_000)])
            else:
                await ws.send(big)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["event"] is None
            assert error_code(reply["data"]) == "LINE_TOO_LONG"
            assert reply["data"]["error"]["message"].startswith(
                "a message is longer than 1048576 bytes; the connection is closed"
            )
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == 1009
        async with connect(url_of(daemon), additional_headers=bearer(daemon)) as ws:
            assert (await ask(ws, "test:echo"))["data"] == {"echo": {}}

    run(main())


@pytest.mark.slow
def test_100_clients_on_each_transport_at_once_each_get_their_own_replies(
    daemon: DaemonProcess,
) -> None:
    async def over_websocket(n: int) -> None:
        async with connect(url_of(daemon), additional_headers=bearer(daemon)) as ws:
            for i in range(5):
                await ws.send(
                    json.dumps(
                        {
                            "event": "test:echo",
                            "data": {"n": n, "i": i},
                            "correlation_id": f"w{n}-{i}",
                        }
                    )
                )
            replies = [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(5)]
            assert sorted(r["correlation_id"] for r in replies) == [f"w{n}-{i}" for i in range(5)]
            assert all(r["data"]["echo"]["n"] == n for r in replies)

    async def over_unix(n: int) -> None:
        client = await LineClient.connect(daemon.socket_path)
        for i in range(5):
            await client.send("test:echo", {"n": n, "i": i}, correlation_id=f"u{n}-{i}")
        replies = [await client.reply(timeout=30) for _ in range(5)]
        assert sorted(r["correlation_id"] for r in replies) == [f"u{n}-{i}" for i in range(5)]
        assert all(r["data"]["echo"]["n"] == n for r in replies)
        await client.close()

    async def main() -> None:
        await asyncio.gather(
            *(over_websocket(n) for n in range(100)), *(over_unix(n) for n in range(100))
        )

    run(main())


@pytest.mark.slow
def test_a_slow_request_on_one_transport_does_not_hold_up_the_other(
    daemon: DaemonProcess,
) -> None:
    async def main() -> None:
        unix = await LineClient.connect(daemon.socket_path)
        await unix.send("test:sleep", {"seconds": 1.0}, correlation_id="slow")
        slow = asyncio.ensure_future(unix.reply())
        async with connect(url_of(daemon), additional_headers=bearer(daemon)) as ws:
            assert (await ask(ws, "test:echo", {"fast": 1}))["data"] == {"echo": {"fast": 1}}
            assert not slow.done()
        assert (await slow)["correlation_id"] == "slow"
        await unix.close()

    run(main())


@pytest.mark.slow
def test_send_over_websocket_reads_the_token_file_or_takes_one(daemon: DaemonProcess) -> None:
    url = url_of(daemon)
    done = daemon.cli("send", "test:echo", "--data", '{"k": 1}', "--websocket", url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"echo": {"k": 1}}
    wrong = daemon.cli("send", "system:health", "--websocket", url, "--token", "nope" * 5)
    assert wrong.returncode == 1
    assert "HTTP 401" in wrong.stderr
    assert "--token" in wrong.stderr
    missing = daemon.cli("send", "system:health", "--websocket", "ws://127.0.0.1:1", "--token", "t")
    assert missing.returncode == 1
    assert "[websocket] enabled = true" in missing.stderr


@pytest.mark.slow
def test_the_websocket_transport_reports_its_counters_in_system_metrics(
    daemon: DaemonProcess,
) -> None:
    async def main() -> dict[str, Any]:
        async with connect(url_of(daemon), additional_headers=bearer(daemon)) as ws:
            return (await ask(ws, "system:metrics"))["data"]

    metrics = run(main())["metrics"]
    assert metrics["websocket"]["url"] == url_of(daemon)
    assert metrics["websocket"]["requests"] >= 1
    assert "unix_socket" in metrics


@pytest.mark.slow
def test_sigterm_finishes_inflight_requests_then_closes_both_transports_cleanly(
    short_dir: Path,
) -> None:
    daemon = start_daemon(short_dir)
    url, headers, tokens = url_of(daemon), bearer(daemon), token_file(daemon)

    async def main() -> None:
        unix = await LineClient.connect(daemon.socket_path)
        async with connect(url, additional_headers=headers) as ws:
            idle = await connect(url, additional_headers=headers)
            await ws.send(
                json.dumps({"event": "test:sleep", "data": {"seconds": 0.5}, "correlation_id": "w"})
            )
            await unix.send("test:sleep", {"seconds": 0.5}, correlation_id="u")
            await asyncio.sleep(0.2)
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGTERM)
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["data"]["slept"] == 0.5
            assert (await unix.reply())["data"]["slept"] == 0.5
            for connection in (ws, idle):
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(connection.recv(), 10)
                assert info.value.rcvd is not None
                assert info.value.rcvd.code == 1001
            assert await unix.at_eof()
        await unix.close()

    try:
        run(main())
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=20) == 0
        assert not tokens.exists()
        assert "stopped listening on ws://" in daemon.log()
    finally:
        daemon.stop()


@pytest.mark.slow
def test_a_client_that_does_not_read_holds_back_only_itself_and_may_vanish(
    short_dir: Path,
) -> None:
    daemon = start_daemon(short_dir, extra="max_reply_buffer_bytes = 65536\n" + WEBSOCKET)
    url, headers = url_of(daemon), bearer(daemon)
    request = json.dumps({"event": "test:echo", "data": {"v": "x" * 100_000}})

    async def main() -> int:
        # The client's own reader stops after max_queue messages; the daemon's replies
        # then wait, past its reply budget, so it stops reading this client.
        flooder = await connect(url, additional_headers=headers, max_size=None, max_queue=4)

        async def send_all() -> None:
            for _ in range(200):
                await flooder.send(request)

        flood = asyncio.get_running_loop().create_task(send_all())
        await asyncio.sleep(1.0)
        async with connect(url, additional_headers=headers) as other:
            answered = (await ask(other, "system:metrics"))["data"]["metrics"]["websocket"]
        flooder.transport.abort()  # gone without a close frame, replies unread
        flood.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await flood
        async with connect(url, additional_headers=headers) as again:
            assert (await ask(again, "test:echo", {"after": 1}))["data"] == {"echo": {"after": 1}}
        return int(answered["requests"])

    try:
        assert run(main()) < 100  # it was held back, not all 200 answered into memory
        assert "Traceback" not in daemon.log()
    finally:
        daemon.stop()


@pytest.mark.slow
def test_an_idle_connection_is_told_and_closed_but_not_one_with_a_request_in_flight(
    short_dir: Path,
) -> None:
    daemon = start_daemon(short_dir, extra="idle_timeout = 1\n" + WEBSOCKET)
    url, headers = url_of(daemon), bearer(daemon)

    async def idle() -> None:
        async with connect(url, additional_headers=headers) as ws:
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert error_code(reply["data"]) == "IDLE_TIMEOUT"
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 10)
            assert info.value.rcvd is not None
            assert (info.value.rcvd.code, info.value.rcvd.reason) == (1000, "IDLE_TIMEOUT")

    async def busy() -> None:
        async with connect(url, additional_headers=headers) as ws:
            slept = await ask(ws, "test:sleep", {"seconds": 2})  # twice idle_timeout
            assert slept["data"]["slept"] == 2
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert error_code(reply["data"]) == "IDLE_TIMEOUT"

    async def main() -> None:
        await asyncio.gather(idle(), busy())

    try:
        run(main())
    finally:
        daemon.stop()


@pytest.mark.slow
def test_draining_and_the_drain_deadline_answer_shutting_down_alike_on_both_transports(
    short_dir: Path,
) -> None:
    """One helper serves both transports: the same replies while draining and at the deadline."""
    write_config(short_dir / "ksi.toml", state=short_dir / "state.db", drain=1.5, extra=WEBSOCKET)
    daemon = DaemonProcess(short_dir)
    daemon.start()
    url, headers = url_of(daemon), bearer(daemon)

    async def main() -> tuple[list[Any], list[Any]]:
        unix = await LineClient.connect(daemon.socket_path)
        async with connect(url, additional_headers=headers) as ws:
            sleep = {"event": "test:sleep", "data": {"seconds": 30}, "correlation_id": "slow"}
            await ws.send(json.dumps(sleep))
            await unix.send("test:sleep", {"seconds": 30}, correlation_id="slow")
            await asyncio.sleep(0.2)
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)  # draining: in-flight requests may still finish
            await ws.send(json.dumps({"event": "test:echo", "correlation_id": "new"}))
            await unix.send("test:echo", correlation_id="new")
            over_ws = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
            over_unix = [await unix.reply(timeout=10) for _ in range(2)]
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert await unix.at_eof()
        await unix.close()
        return over_ws, over_unix

    try:
        over_ws, over_unix = run(main())
        assert over_ws == over_unix
        assert [(r["correlation_id"], error_code(r["data"])) for r in over_ws] == [
            ("new", "SHUTTING_DOWN"),
            ("slow", "SHUTTING_DOWN"),
        ]
        assert over_ws[0]["data"]["error"]["message"] == "the daemon is stopping; retry later"
        assert over_ws[1]["data"]["error"]["message"] == (
            "the daemon stopped before this request finished; retry it"
        )
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=20) == 0
    finally:
        daemon.stop()


@pytest.mark.slow
def test_without_the_extra_enabling_it_fails_that_plugin_and_the_unix_socket_serves(
    short_dir: Path,
) -> None:
    shadow = short_dir / "no_websockets"
    (shadow / "websockets").mkdir(parents=True)
    (shadow / "websockets" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'websockets'\")\n"
    )
    write_config(short_dir / "ksi.toml", state=short_dir / "state.db", extra=WEBSOCKET)
    daemon = DaemonProcess(short_dir)
    daemon.env["PYTHONPATH"] = str(shadow)
    try:
        daemon.start()
        log = daemon.log()
        assert 'pip install "ksi-host[websocket]"' in log
        where = ("--socket", str(daemon.socket_path))
        listing = json.loads(daemon.cli("send", "plugin:list", *where).stdout)
        assert "websocket" in json.dumps(listing)
        assert daemon.cli("send", "system:health", *where).returncode == 0
        send = daemon.cli("send", "system:health", "--websocket", "ws://127.0.0.1:8765")
        assert send.returncode == 1
        assert 'pip install "ksi-host[websocket]"' in send.stderr
    finally:
        daemon.stop()


@pytest.mark.slow
def test_the_open_files_limit_fits_the_connections_of_both_transports(short_dir: Path) -> None:
    extra = "max_connections = 300\n\n[websocket]\nenabled = true\nport = 0\n"
    write_config(short_dir / "ksi.toml", state=short_dir / "state.db", extra=extra)
    daemon = DaemonProcess(short_dir)
    daemon.start(soft_files=256, wait=False)
    try:
        daemon.wait_ready()
        limits = Path(f"/proc/{daemon.proc.pid}/limits").read_text()
        [soft] = re.findall(r"Max open files\s+(\d+)", limits)
        assert int(soft) == 300 + 300 + RESERVED_FILES
        assert "raised the open-files limit from 364 to 664" in daemon.log()
    finally:
        daemon.stop()
