"""'Did you mean' for unknown event names."""

from __future__ import annotations

import asyncio

import pytest

from ksi_host._lifecycle import Host
from ksi_host._suggest import close_matches, did_you_mean


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("sytem:health", "did you mean 'system:health'?"),
        ("state:gte", "did you mean 'state:get'?"),
        ("state:zet", "did you mean 'state:get' or 'state:set'?"),
        ("weather:forecast", None),
    ],
)
def test_did_you_mean_names_the_closest_known_names(word, expected):
    known = ["system:health", "state:get", "state:set", "plugin:list", "state:get"]
    assert did_you_mean(word, known) == expected


def test_at_most_three_matches_best_first():
    assert close_matches("a:b", ["a:bb", "a:bc", "a:bd", "a:be", "zz:zz"]) == [
        "a:bb",
        "a:bc",
        "a:bd",
    ]


def test_an_unknown_event_gets_no_handler_with_the_closest_declared_events(
    scripted_plugin, make_plan
):
    commands = scripted_plugin("cmds", commands=["system:health", "plugin:list"])
    spaces = scripted_plugin("spaces", namespaces=["state"])

    async def main() -> list[str]:
        async with Host(make_plan(commands, spaces)) as host:
            names = ("sytem:health", "stat:get", "plugin:lsit", "zzz:qqq")
            return [(await host.dispatch(name))["error"]["message"] for name in names]

    assert asyncio.run(main()) == [
        "no plugin handles 'sytem:health'; did you mean 'system:health'?",
        "no plugin handles 'stat:get'; did you mean 'state:get'?",
        "no plugin handles 'plugin:lsit'; did you mean 'plugin:list'?",
        "no plugin handles 'zzz:qqq'",
    ]
