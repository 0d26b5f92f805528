"""The client and ``ksi-host send`` against a real server on a real socket."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ksi_host._cli import cli
from ksi_host._client import request, request_sync
from ksi_host._server import SocketServer
from ksi_host._server_config import ServerConfig
from ksi_host.errors import DaemonNotRunning, ProtocolError, RequestTimeout
from ksi_host.replies import error_reply

# ``ksi-host send`` reads the config as ``run`` does: never the real home's.
pytestmark = pytest.mark.usefixtures("ksi_home")


async def dispatch(event: str, data: dict[str, Any]) -> dict[str, Any]:
    if event == "test:sleep":
        await asyncio.sleep(data["seconds"])
        return {"slept": data["seconds"]}
    if event == "test:echo":
        return {"echo": data}
    return error_reply("NO_HANDLER", f"no plugin handles {event!r}")


@pytest.fixture
def server_thread(sock_path: Path) -> Iterator[Path]:
    """A server on its own loop in a thread, so sync clients and the CLI can talk to it."""
    loop = asyncio.new_event_loop()
    server = SocketServer(dispatch, ServerConfig(socket_path=sock_path, drain_timeout=0.1))
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield sock_path
    asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_request_returns_the_answer(server_thread):
    assert request_sync(server_thread, "test:echo", {"a": 1}) == {"echo": {"a": 1}}


def test_an_error_answer_is_returned_not_raised(server_thread):
    answer = request_sync(server_thread, "nobody:home")
    assert answer["error"]["code"] == "NO_HANDLER"


def test_no_daemon_says_how_to_start_one(sock_path):
    with pytest.raises(DaemonNotRunning) as info:
        request_sync(sock_path, "system:health")
    assert "ksi-host run" in info.value.render()


def test_a_stale_socket_file_means_no_daemon(sock_path):
    sock_path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(sock_path))
    dead.close()
    with pytest.raises(DaemonNotRunning, match="Connection refused"):
        request_sync(sock_path, "system:health")


def test_no_reply_in_time_is_a_timeout(server_thread):
    with pytest.raises(RequestTimeout, match=r"within 0\.2s"):
        request_sync(server_thread, "test:sleep", {"seconds": 5}, timeout=0.2)


def test_something_else_on_the_socket_is_a_protocol_error(sock_path):
    async def main() -> None:
        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello, I am not ksi\n")
            await writer.drain()
            writer.close()

        sock_path.parent.mkdir(mode=0o700)
        server = await asyncio.start_unix_server(garbage, path=str(sock_path))
        async with server:
            with pytest.raises(ProtocolError, match="not a valid reply"):
                await request(sock_path, "system:health")

    asyncio.run(main())


def test_send_prints_the_answer_as_json(runner, server_thread):
    result = runner.invoke(
        cli, ["send", "test:echo", "--data", '{"k": [1]}', "--socket", str(server_thread)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"echo": {"k": [1]}}


def test_send_reads_the_socket_from_ksi_socket(runner, server_thread):
    result = runner.invoke(cli, ["send", "test:echo"], env={"KSI_SOCKET": str(server_thread)})
    assert result.exit_code == 0, result.output


def test_send_exits_non_zero_on_an_error_answer(runner, server_thread):
    result = runner.invoke(cli, ["send", "nobody:home", "--socket", str(server_thread)])
    assert result.exit_code == 1
    assert json.loads(result.output)["error"]["code"] == "NO_HANDLER"


def test_send_without_a_daemon_says_how_to_start_one(runner, sock_path):
    result = runner.invoke(cli, ["send", "system:health", "--socket", str(sock_path)])
    assert result.exit_code == 1
    assert "no ksi-host daemon is running" in result.output
    assert "ksi-host run" in result.output


@pytest.mark.parametrize(
    ("data", "message"), [("{oops", "not JSON"), ("[1]", "must be a JSON object")]
)
def test_send_rejects_bad_data_before_connecting(runner, sock_path, data, message):
    result = runner.invoke(
        cli, ["send", "system:health", "--data", data, "--socket", str(sock_path)]
    )
    assert result.exit_code == 2
    assert message in result.output
