"""snapshot: JSON values are copied all the way down, other objects are shared."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from hypothesis import given

from ksi_host._snapshot import snapshot
from tests.strategies import json_values


@given(json_values)
def test_a_snapshot_is_equal_and_shares_no_container(value):
    copy = snapshot(value)
    assert copy == value

    def containers(v, found):
        if isinstance(v, (dict, list)):
            found.append(id(v))
            for item in v.values() if isinstance(v, dict) else v:
                containers(item, found)
        return found

    if isinstance(value, (dict, list)):
        assert not set(containers(copy, [])) & set(containers(value, []))


def test_other_objects_are_shared_and_dict_subclasses_copied():
    future = asyncio.Future  # any non-JSON object: the class object itself will do
    data = {"reply_to": future, "ordered": OrderedDict(a=[1])}
    copy = snapshot(data)
    assert copy["reply_to"] is future
    assert copy["ordered"] == {"a": [1]}
    copy["ordered"]["a"].append(2)
    assert data["ordered"]["a"] == [1]
