"""The socket server over a real Unix socket, with a small real dispatch coroutine."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import LineClient, connect_as_uid, error_code
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import WIRE_LIMIT, replies_owed, strict_json, wire_stream

from ksi_host._server import SocketServer
from ksi_host._server_config import ServerConfig
from ksi_host.errors import ConfigError
from ksi_host.replies import error_reply


@pytest.fixture(scope="module", params=["asyncio", "uvloop"], autouse=True)
def event_loop_kind(request: pytest.FixtureRequest) -> Any:
    """Every test here runs on asyncio's loop and on uvloop (the daemon's default)."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop does not build on this platform")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    yield request.param
    asyncio.set_event_loop_policy(None)


class Dispatcher:
    """A real dispatch coroutine: echo, sleep, raise, a non-dict answer, or NO_HANDLER."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self.calls: list[str] = []

    async def __call__(self, event: str, data: dict[str, Any]) -> Any:
        self.calls.append(event)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            if event == "test:echo":
                return {"echo": data}
            if event == "test:later_echo":
                await asyncio.sleep(0)
                return {"echo": data}
            if event == "test:sleep":
                await asyncio.sleep(data["seconds"])
                return {"slept": data["seconds"]}
            if event == "test:raise":
                raise RuntimeError("boom")
            if event == "test:list":
                return [1, 2]
            return error_reply("NO_HANDLER", f"no plugin handles {event!r}")
        finally:
            self.running -= 1


def serve(
    sock_path: Path,
    body: Callable[[SocketServer, Dispatcher], Awaitable[None]],
    **limits: Any,
) -> Dispatcher:
    dispatcher = Dispatcher()

    async def main() -> None:
        config = ServerConfig(socket_path=sock_path, **limits)
        async with SocketServer(dispatcher, config) as server:
            await body(server, dispatcher)

    asyncio.run(main())
    return dispatcher


def test_a_request_gets_a_reply_with_its_event_and_id(sock_path):
    async def body(server, _):
        client = await LineClient.connect(sock_path)
        await client.send("test:echo", {"x": 1}, correlation_id="abc")
        assert await client.reply() == {
            "event": "test:echo",
            "correlation_id": "abc",
            "data": {"echo": {"x": 1}},
        }
        await client.close()

    serve(sock_path, body)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b'{"event": "test:echo"', "INVALID_JSON"),
        (b'\xff{"event": "test:echo"}', "INVALID_ENCODING"),
        (b"[1]", "NOT_AN_OBJECT"),
        (b'{"data": {}, "correlation_id": "9"}', "INVALID_REQUEST"),
        (b'{"event": "test:echo", "data": 5}', "INVALID_REQUEST"),
        (b'{"event": "TEST", "correlation_id": "9"}', "INVALID_EVENT_NAME"),
    ],
)
def test_a_bad_line_gets_an_error_reply_and_the_connection_stays_usable(sock_path, line, code):
    async def body(server, dispatcher):
        client = await LineClient.connect(sock_path)
        await client.send_raw(line + b"\n")
        reply = await client.reply()
        assert error_code(reply["data"]) == code
        assert reply["data"]["status"] == "error"
        assert reply["data"]["error"]["message"]
        await client.send("test:echo", {"after": True}, correlation_id="next")
        assert (await client.reply())["data"] == {"echo": {"after": True}}
        await client.close()
        assert dispatcher.calls == ["test:echo"]

    serve(sock_path, body)


def test_an_error_reply_carries_the_correlation_id_it_could_read(sock_path):
    async def body(server, _):
        client = await LineClient.connect(sock_path)
        await client.send_raw(b'{"event": "Nope", "correlation_id": "c9"}\n')
        reply = await client.reply()
        assert (reply["correlation_id"], reply["event"]) == ("c9", "Nope")
        await client.close()

    serve(sock_path, body)


def test_an_unknown_event_gets_what_dispatch_answers(sock_path):
    async def body(server, _):
        client = await LineClient.connect(sock_path)
        await client.send("nobody:home")
        assert error_code((await client.reply())["data"]) == "NO_HANDLER"
        await client.close()

    serve(sock_path, body)


def test_a_raising_handler_costs_only_its_own_reply(sock_path):
    async def body(server, _):
        client = await LineClient.connect(sock_path)
        await client.send("test:raise", correlation_id="r")
        reply = await client.reply()
        assert reply["correlation_id"] == "r"
        assert error_code(reply["data"]) == "INTERNAL_ERROR"
        assert "RuntimeError: boom" in reply["data"]["error"]["message"]
        await client.send("test:list", correlation_id="l")
        assert "not a dict" in (await client.reply())["data"]["error"]["message"]
        await client.send("test:echo", correlation_id="e")
        assert (await client.reply())["data"] == {"echo": {}}
        assert server.stats()["errors"]["INTERNAL_ERROR"] == 1
        await client.close()

    serve(sock_path, body)


def test_blank_lines_are_skipped_crlf_is_accepted_and_a_last_line_needs_no_newline(sock_path):
    async def body(server, _):
        client = await LineClient.connect(sock_path)
        await client.send_raw(b'\n\r\n{"event": "test:echo", "correlation_id": 1}\r\n')
        assert (await client.reply())["correlation_id"] == 1
        await client.send_raw(b'{"event": "test:echo", "correlation_id": 2}')
        client.writer.write_eof()
        assert (await client.reply())["correlation_id"] == 2
        assert await client.at_eof()
        await client.close()

    serve(sock_path, body)


def test_an_over_long_line_gets_an_error_then_the_connection_closes_unparsed(sock_path):
    async def body(server, dispatcher):
        client = await LineClient.connect(sock_path)
        # Past the limit come valid requests: none of them may ever be served.
        smuggled = b'\n{"event": "test:echo", "correlation_id": "smuggled"}\n' * 20
        with contextlib.suppress(ConnectionError):
            await client.send_raw(b" " * 2000 + smuggled)
        reply = await client.reply()
        assert error_code(reply["data"]) == "LINE_TOO_LONG"
        assert "1024 bytes" in reply["data"]["error"]["message"]
        assert await client.reader.read() == b""
        assert dispatcher.calls == []
        await client.close()

    serve(sock_path, body, max_line_bytes=1024)


def test_a_line_exactly_at_the_limit_is_accepted(sock_path):
    async def body(server, _):
        client = await LineClient.connect(sock_path)
        head = b'{"event": "test:echo", "correlation_id": "edge", "data": {"p": "'
        tail = b'"}}'
        line = head + b"x" * (1024 - len(head) - len(tail)) + tail
        assert len(line) == 1024
        await client.send_raw(line + b"\n")
        assert (await client.reply())["correlation_id"] == "edge"
        await client.close()

    serve(sock_path, body, max_line_bytes=1024)


def test_replies_come_back_out_of_order_matched_by_id(sock_path):
    async def body(server, _):
        client = await LineClient.connect(sock_path)
        await client.send("test:sleep", {"seconds": 0.3}, correlation_id="slow")
        await client.send("test:echo", {}, correlation_id="fast")
        first, second = await client.reply(), await client.reply()
        assert [first["correlation_id"], second["correlation_id"]] == ["fast", "slow"]
        assert second["data"] == {"slept": 0.3}
        await client.close()

    serve(sock_path, body)


def test_many_concurrent_clients_each_get_their_own_replies(sock_path):
    async def one_client(n: int) -> None:
        client = await LineClient.connect(sock_path)
        for i in range(20):
            await client.send("test:echo", {"client": n, "i": i}, correlation_id=f"{n}-{i}")
        replies = [await client.reply() for _ in range(20)]
        assert sorted(r["correlation_id"] for r in replies) == sorted(f"{n}-{i}" for i in range(20))
        assert all(r["data"]["echo"]["client"] == n for r in replies)
        await client.close()

    async def body(server, _):
        await asyncio.gather(*(one_client(n) for n in range(16)))
        assert server.stats()["requests"] == 16 * 20

    serve(sock_path, body)


@pytest.mark.parametrize("apart", [False, True], ids=["together", "one read each"])
def test_the_inflight_limit_holds_back_requests_and_all_are_answered(sock_path, apart):
    async def body(server, dispatcher):
        client = await LineClient.connect(sock_path)
        started = time.monotonic()
        for i in range(6):
            await client.send("test:sleep", {"seconds": 0.2}, correlation_id=i)
            if apart:  # each line in a read of its own: the one-line path holds the limit too
                await asyncio.sleep(0.01)
        replies = [await client.reply() for _ in range(6)]
        assert sorted(r["correlation_id"] for r in replies) == list(range(6))
        assert dispatcher.peak == 2
        assert time.monotonic() - started >= 0.55
        await client.close()

    serve(sock_path, body, max_inflight=2)


def test_the_connection_over_the_limit_gets_an_error_reply(sock_path):
    async def body(server, _):
        first = await LineClient.connect(sock_path)
        second = await LineClient.connect(sock_path)
        await first.send("test:echo")
        await first.reply()
        await second.send("test:echo")
        await second.reply()
        extra = await LineClient.connect(sock_path)
        reply = await extra.reply()
        assert error_code(reply["data"]) == "TOO_MANY_CONNECTIONS"
        assert "max_connections" in reply["data"]["error"]["message"]
        assert await extra.at_eof()
        await first.close()
        for _ in range(100):
            if server.stats()["connections_open"] < 2:
                break
            await asyncio.sleep(0.01)
        again = await LineClient.connect(sock_path)
        await again.send("test:echo", correlation_id="again")
        assert (await again.reply())["correlation_id"] == "again"
        for client in (second, extra, again):
            await client.close()

    serve(sock_path, body, max_connections=2)


def test_an_idle_connection_is_told_and_closed(sock_path):
    async def body(server, _):
        client = await LineClient.connect(sock_path)
        reply = await client.reply(timeout=3)
        assert error_code(reply["data"]) == "IDLE_TIMEOUT"
        assert await client.at_eof()
        await client.close()

    serve(sock_path, body, idle_timeout=0.2)


def test_a_connection_waiting_for_a_slow_reply_is_not_idle(sock_path):
    async def body(server, _):
        client = await LineClient.connect(sock_path)
        await client.send("test:sleep", {"seconds": 0.5}, correlation_id="slow")
        assert (await client.reply())["data"] == {"slept": 0.5}
        await client.close()

    serve(sock_path, body, idle_timeout=0.2)


def test_shutdown_lets_inflight_requests_finish_and_removes_the_socket(sock_path):
    async def main() -> None:
        server = SocketServer(Dispatcher(), ServerConfig(socket_path=sock_path))
        await server.start()
        client = await LineClient.connect(sock_path)
        await client.send("test:sleep", {"seconds": 0.3}, correlation_id="inflight")
        await asyncio.sleep(0.05)
        await server.shutdown()
        assert (await client.reply())["data"] == {"slept": 0.3}
        assert await client.at_eof()
        assert not sock_path.exists()
        assert not sock_path.with_name("ksi.sock.lock").exists()
        with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
            await LineClient.connect(sock_path)
        await client.close()

    asyncio.run(main())


def test_shutdown_answers_requests_past_the_deadline_with_shutting_down(sock_path):
    async def main() -> None:
        config = ServerConfig(socket_path=sock_path, drain_timeout=0.1)
        server = SocketServer(Dispatcher(), config)
        await server.start()
        client = await LineClient.connect(sock_path)
        await client.send("test:sleep", {"seconds": 30}, correlation_id="late")
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await server.shutdown()
        assert time.monotonic() - started < 2
        reply = await client.reply()
        assert (reply["correlation_id"], error_code(reply["data"])) == ("late", "SHUTTING_DOWN")
        await client.close()

    asyncio.run(main())


def test_a_request_sent_while_draining_is_refused_and_inflight_ones_still_answer(sock_path, caplog):
    async def main() -> None:
        server = SocketServer(Dispatcher(), ServerConfig(socket_path=sock_path))
        await server.start()
        client = await LineClient.connect(sock_path)
        await client.send("test:sleep", {"seconds": 0.3}, correlation_id="inflight")
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(server.shutdown())
        await asyncio.sleep(0.05)
        await client.send("test:echo", {}, correlation_id="new")
        refused = await client.reply()
        assert (refused["correlation_id"], error_code(refused["data"])) == (
            "new",
            "SHUTTING_DOWN",
        )
        assert (await client.reply())["data"] == {"slept": 0.3}
        assert await client.at_eof()
        await stopping
        await client.close()

    asyncio.run(main())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_requests_cancelled_at_the_deadline_log_no_asyncio_error(sock_path, caplog):
    async def main() -> None:
        config = ServerConfig(socket_path=sock_path, drain_timeout=0.1)
        server = SocketServer(Dispatcher(), config)
        await server.start()
        client = await LineClient.connect(sock_path)
        await client.send("test:sleep", {"seconds": 30}, correlation_id="late")
        await asyncio.sleep(0.05)
        await server.shutdown()
        assert error_code((await client.reply())["data"]) == "SHUTTING_DOWN"
        assert await client.at_eof()
        await client.close()

    asyncio.run(main())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_socket_is_0600_in_a_0700_dir_from_the_start(sock_path):
    async def body(server, _):
        assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock_path.parent.stat().st_mode) == 0o700

    umask = os.umask(0o022)
    try:
        serve(sock_path, body)
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(umask)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another uid")
def test_a_peer_with_another_uid_is_refused_even_when_permissions_let_it_in(sock_path):
    async def body(server, dispatcher):
        # Loosen what the server set up, so only SO_PEERCRED stands in the way.
        sock_path.parent.parent.chmod(0o711)
        sock_path.parent.chmod(0o711)
        sock_path.chmod(0o666)
        line = await asyncio.get_running_loop().run_in_executor(
            None, connect_as_uid, 65534, sock_path
        )
        reply = json.loads(line)
        assert error_code(reply["data"]) == "PEER_REFUSED"
        assert "not uid 65534" in reply["data"]["error"]["message"]
        assert server.stats()["errors"] == {"PEER_REFUSED": 1}
        assert dispatcher.calls == []

    serve(sock_path, body)


def test_server_config_errors_name_the_section_and_the_keys(tmp_path):
    with pytest.raises(ConfigError) as info:
        ServerConfig.from_section({"max_connections": 0, "colour": "red"}, where="[unix_socket]")
    text = info.value.render()
    assert "max_connections" in text
    assert "colour" in text
    assert "[unix_socket]" in text
    assert "allowed keys: socket_path" in text


def test_a_socket_path_over_the_kernel_limit_is_a_config_error():
    with pytest.raises(ConfigError, match="at most 107 bytes"):
        ServerConfig.from_section({"socket_path": "/tmp/" + "x" * 200}, where="[unix_socket]")


@pytest.mark.parametrize(
    ("flag", "env", "section", "expected"),
    [
        ("/f/k.sock", {"KSI_SOCKET": "/e/k.sock"}, {"socket_path": "/c/k.sock"}, "/f/k.sock"),
        (None, {"KSI_SOCKET": "/e/k.sock"}, {"socket_path": "/c/k.sock"}, "/e/k.sock"),
        (None, {"KSI_SOCKET": ""}, {"socket_path": "/c/k.sock"}, "/c/k.sock"),
        (None, {"KSI_HOME": "/h"}, {}, "/h/run/ksi.sock"),
    ],
)
def test_the_socket_is_the_flag_then_ksi_socket_then_the_section_then_the_run_dir(
    flag, env, section, expected
):
    config = ServerConfig.from_section(
        section, where="[server]", socket_path=flag and Path(flag), env=env
    )
    assert config.socket_path == Path(expected)


@pytest.mark.parametrize(
    ("flag", "env", "where"),
    [("/tmp/" + "x" * 200, {}, "--socket"), (None, {"KSI_SOCKET": "/" + "x" * 200}, "KSI_SOCKET")],
)
def test_a_bad_socket_path_names_where_it_came_from(flag, env, where):
    with pytest.raises(ConfigError) as info:
        ServerConfig.from_section({}, where="[server]", socket_path=flag and Path(flag), env=env)
    assert where in info.value.render()
    assert "[server]" not in info.value.render()


def test_a_bad_value_from_a_ksi_server_variable_names_the_variable_not_the_file():
    env = {"KSI_SERVER__MAX_LINE_BYTES": "100"}
    section = {"max_line_bytes": 100, "max_connections": 0}
    with pytest.raises(ConfigError) as info:
        ServerConfig.from_section(section, where="[server] section of /c.toml", env=env)
    assert info.value.where == (
        "environment variable KSI_SERVER__MAX_LINE_BYTES; [server] section of /c.toml"
    )


# --- robustness: hostile byte streams ---


async def _pump(path: Path, chunks: list[bytes]) -> list[bytes]:
    """Send ``chunks`` as separate writes, half-close, and read every reply until EOF."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 24)
    received = asyncio.ensure_future(reader.read())
    for chunk in chunks:
        writer.write(chunk)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()
    data = await asyncio.wait_for(received, 10)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return data.splitlines(keepends=True)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(stream=wire_stream, cuts=st.lists(st.integers(0, 250_000), max_size=6))
def test_any_byte_stream_split_anywhere_gets_one_reply_per_line_and_leaks_nothing(
    stream: bytes, cuts: list[int]
) -> None:
    owed, too_long = replies_owed(stream, WIRE_LIMIT)
    bounds = [0, *sorted(c for c in cuts if c < len(stream)), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    root = Path(tempfile.mkdtemp(prefix="ksi-", dir="/tmp"))

    async def body(server: SocketServer, _: Dispatcher) -> None:
        lines = await _pump(server.socket_path, chunks)
        assert len(lines) == owed, (lines, owed)
        replies = [strict_json(line) for line in lines]
        assert all(line.endswith(b"\n") for line in lines)
        assert all(isinstance(reply["data"], dict) for reply in replies)
        if too_long:
            assert error_code(replies[-1]["data"]) == "LINE_TOO_LONG"
        for _ in range(100):
            if not server.stats()["connections_open"]:
                break
            await asyncio.sleep(0.01)
        assert server.stats()["connections_open"] == 0
        assert asyncio.all_tasks() == {asyncio.current_task()}
        client = await LineClient.connect(server.socket_path)
        await client.send("test:echo", {"after": True})
        assert (await client.reply())["data"] == {"echo": {"after": True}}
        await client.close()

    try:
        serve(root / "run" / "ksi.sock", body, max_line_bytes=WIRE_LIMIT)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_client_that_sent_its_whole_over_long_line_reads_the_reply_and_a_clean_eof(sock_path):
    async def body(server, _):
        client = await LineClient.connect(sock_path)
        await client.send("test:echo", {"first": True})
        client.writer.write(b"x" * 2_000_000 + b"\n" + b'{"event": "test:echo"}\n')
        client.writer.write_eof()
        lines = (await asyncio.wait_for(client.reader.read(), 5)).splitlines()
        assert [error_code(json.loads(line)["data"]) for line in lines] == [None, "LINE_TOO_LONG"]
        await client.close()

    serve(sock_path, body, max_line_bytes=1024)


def test_a_client_that_never_reads_its_replies_is_dropped_after_the_idle_timeout(sock_path):
    request = json.dumps({"event": "test:echo", "data": {"v": "x" * 100_000}}).encode() + b"\n"

    async def body(server, _):
        _reader, writer = await asyncio.open_unix_connection(str(sock_path))

        async def flood() -> None:
            with contextlib.suppress(ConnectionError):
                for _ in range(200):
                    writer.write(request)
                    await writer.drain()

        flooding = asyncio.ensure_future(flood())
        for _ in range(200):
            await asyncio.sleep(0.02)
            if not server.stats()["connections_open"]:
                break
        assert server.stats()["connections_open"] == 0
        assert server.stats()["errors"]["IDLE_TIMEOUT"] == 1
        await asyncio.wait_for(flooding, 5)
        writer.close()
        client = await LineClient.connect(sock_path)
        await client.send("test:echo", {"ok": 1})
        assert (await client.reply())["data"] == {"echo": {"ok": 1}}
        await client.close()

    serve(sock_path, body, max_inflight=2, idle_timeout=0.3)


@pytest.mark.parametrize("event", ["test:echo", "test:later_echo"])
def test_replies_past_the_budget_stop_the_reading_until_the_client_reads(sock_path, event):
    request = json.dumps({"event": event, "data": {"v": "x" * 100_000}}).encode() + b"\n"

    async def body(server, dispatcher):
        # The client's reader stops reading at 512 KiB; kernel buffers hold a few more
        # replies, and the daemon holds at most its 64 KiB budget.
        reader, writer = await asyncio.open_unix_connection(str(sock_path), limit=256 * 1024)
        writer.write(request * 200)
        await asyncio.sleep(0.5)
        assert len(dispatcher.calls) < 40
        replies = [json.loads(await asyncio.wait_for(reader.readline(), 5)) for _ in range(200)]
        assert all(reply["data"]["echo"]["v"] == "x" * 100_000 for reply in replies)
        assert len(dispatcher.calls) == 200
        writer.close()

    serve(sock_path, body, max_reply_buffer_bytes=64 * 1024)


def test_a_connection_closed_for_an_over_long_line_frees_its_slot_before_the_client_sees_eof(
    sock_path,
):
    async def body(server, _):
        first = await LineClient.connect(sock_path)
        await first.send_raw(b"x" * 2000 + b"\n")
        assert error_code((await first.reply())["data"]) == "LINE_TOO_LONG"
        assert await first.at_eof()
        second = await LineClient.connect(sock_path)
        await second.send("test:echo", {"n": 2})
        assert (await second.reply())["data"] == {"echo": {"n": 2}}
        await second.close()
        await first.close()

    serve(sock_path, body, max_line_bytes=1024, max_connections=1)


def test_a_context_variable_a_handler_sets_stays_its_own_across_waits(sock_path):
    """A request's handler runs in its own context, before and after its first wait."""
    marker: contextvars.ContextVar[str | None] = contextvars.ContextVar("marker", default=None)

    async def dispatch(event: str, data: dict[str, Any]) -> Any:
        before = marker.get()
        token = marker.set(event)
        await asyncio.sleep(0.01)
        marker.reset(token)  # raises if the request resumed in another context
        return {"before": before}

    async def main() -> list[Any]:
        async with SocketServer(dispatch, ServerConfig(socket_path=sock_path)):
            client = await LineClient.connect(sock_path)
            for n in range(3):
                await client.send("test:echo", correlation_id=n)
            replies = [await client.reply() for _ in range(3)]
            await client.close()
            return replies

    replies = asyncio.run(main())
    assert [reply["data"] for reply in replies] == [{"before": None}] * 3
