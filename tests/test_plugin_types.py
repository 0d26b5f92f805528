"""Metadata validation: every bad value is reported with plugin, field, value and an example."""

from __future__ import annotations

import json

import pytest

from ksi_host import BasePlugin, InvalidPluginMetadata, hookimpl
from ksi_host.plugin_types import PluginCapabilities, PluginMetadata, canonical_name


def test_valid_metadata_is_normalised_frozen_and_serialises():
    meta = PluginMetadata(
        name="My_Plugin",
        version="1.0",
        description="d",
        author="a",
        dependencies=["database>=1.2,<2", "Auth"],
        after_dependencies=["metrics"],
    )
    assert meta.name == "My_Plugin"
    assert meta.key == "my-plugin"
    assert meta.dependencies == ("database>=1.2,<2", "Auth")
    assert [str(r.specifier) for r in meta.requirements] == ["<2,>=1.2", ""]
    with pytest.raises(Exception, match="frozen"):
        meta.name = "other"  # type: ignore[misc]
    data = json.loads(meta.model_dump_json())
    assert data["dependencies"] == ["database>=1.2,<2", "Auth"]
    assert PluginMetadata.model_validate_json(meta.model_dump_json()) == meta


def test_version_is_pep440_normalised():
    assert PluginMetadata(name="p", version="1.0.0-RC1").version == "1.0.0rc1"
    assert PluginMetadata(name="p").version is None


def test_bad_version_names_plugin_field_value_and_example():
    with pytest.raises(InvalidPluginMetadata) as info:
        PluginMetadata(name="my_plugin", version="banana")
    assert str(info.value) == (
        "error[invalid-metadata]: plugin 'my_plugin' has invalid PluginMetadata (1 problem)\n"
        "    - version = 'banana': not a valid PEP 440 version (for example: '1.0.0')\n"
        "  where: PluginMetadata(...) of plugin 'my_plugin'\n"
        "  hint: fix the values above in the plugin's metadata; each line shows a valid example"
    )
    assert info.value.plugin == "my_plugin"
    assert [(p.field, p.value) for p in info.value.problems] == [("version", "banana")]


def test_every_problem_is_reported_at_once():
    with pytest.raises(InvalidPluginMetadata) as info:
        PluginMetadata(name="bad name", version="x.y", dependencies=["ok", "db>>1"], colour="red")
    fields = [p.field for p in info.value.problems]
    assert fields == ["name", "version", "dependencies[1]", "colour"]
    assert "'db>>1' is not a requirement" in str(info.value)
    assert "(4 problems)" in str(info.value)


@pytest.mark.parametrize(
    ("dependencies", "message"),
    [
        ("database", "must be a list of strings, not one string"),
        (["db @ https://example.org/db.whl"], "names a URL"),
        (["db[extra]"], "has extras"),
        (["not a name!"], "is not a requirement"),
    ],
)
def test_bad_dependencies(dependencies, message):
    with pytest.raises(InvalidPluginMetadata, match="dependencies") as info:
        PluginMetadata(name="p", dependencies=dependencies)
    assert message in str(info.value)
    assert "['database', 'auth>=1.2,<2']" in str(info.value)


def test_capability_errors_name_the_plugin_class_being_built():
    class Broken(BasePlugin):
        def __init__(self):
            super().__init__(
                metadata=PluginMetadata(name="broken"),
                capabilities=PluginCapabilities(
                    event_namespaces=["/System"], commands=["health"], provides_services=["a b"]
                ),
            )

        @hookimpl
        def ksi_startup(self):
            return None

    with pytest.raises(InvalidPluginMetadata) as info:
        Broken()
    assert info.value.plugin == "Broken"
    assert [p.field for p in info.value.problems] == [
        "event_namespaces[0]",
        "commands[0]",
        "provides_services[0]",
    ]
    text = str(info.value)
    assert "'health' is not 'namespace:action'" in text
    assert "it has no ':' between namespace and action" in text
    assert "for example: ['system:health']" in text


def test_every_bad_item_of_a_list_field_is_reported_with_its_index():
    with pytest.raises(InvalidPluginMetadata) as meta:
        PluginMetadata(
            name="p",
            dependencies=["db>=1", "not a name!", "auth", "x @ https://e.org/x.whl"],
            after_dependencies=["-bad", "ok", "bad-"],
        )
    assert [(p.field, p.value) for p in meta.value.problems] == [
        ("dependencies[1]", "not a name!"),
        ("dependencies[3]", "x @ https://e.org/x.whl"),
        ("after_dependencies[0]", "-bad"),
        ("after_dependencies[2]", "bad-"),
    ]
    with pytest.raises(InvalidPluginMetadata) as caps:
        PluginCapabilities(
            event_namespaces=["ok", "Bad", "/fine", "a b"],
            commands=["a:b", "nope", "c:d", "E:f"],
            provides_services=["db", "a b", "-x"],
        )
    assert [p.field for p in caps.value.problems] == [
        "event_namespaces[1]",
        "event_namespaces[3]",
        "commands[1]",
        "commands[3]",
        "provides_services[1]",
        "provides_services[2]",
    ]
    assert "(6 problems)" in str(caps.value)


@pytest.mark.parametrize("field", ["event_namespaces", "commands", "provides_services"])
def test_one_string_instead_of_a_list_is_refused(field):
    with pytest.raises(InvalidPluginMetadata, match="must be a list of strings, not one string"):
        PluginCapabilities(**{field: "system"})


def test_capabilities_accept_the_guides_slash_namespaces():
    caps = PluginCapabilities(event_namespaces=["/system", "state"], commands=["system:health"])
    assert caps.event_namespaces == ("system", "state")
    assert not caps.routes_everything
    assert PluginCapabilities().routes_everything


def test_canonical_name():
    assert canonical_name("Foo.Bar__baz") == "foo-bar-baz"
    with pytest.raises(ValueError, match="ASCII letters"):
        canonical_name("-bad")


def test_base_plugin_rejects_wrong_types():
    with pytest.raises(TypeError, match="metadata must be a PluginMetadata"):
        BasePlugin(metadata={"name": "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="capabilities must be a PluginCapabilities"):
        BasePlugin(metadata=PluginMetadata(name="x"), capabilities=["a:b"])  # type: ignore[arg-type]
