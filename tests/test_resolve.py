"""The resolver is pure: specs in, plan out; tested directly, by example and by property."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ksi_host._plan import Exclusion, LoadPlan, PluginSpec, Reason
from ksi_host._resolve import resolve
from tests.strategies import broken_exclusion, make_spec, plugin_sets


def _order(plan: LoadPlan) -> list[str]:
    return [spec.key for spec in plan.order]


def _reasons(plan: LoadPlan) -> dict[str, Reason]:
    return {exclusion.name: exclusion.reason for exclusion in plan.excluded}


def test_dependencies_start_first_and_ties_go_by_name() -> None:
    plan = resolve(
        [
            make_spec("charlie", dependencies=["alpha"]),
            make_spec("bravo"),
            make_spec("alpha", dependencies=["delta>=1"]),
            make_spec("delta", version="1.2"),
        ]
    )
    assert _order(plan) == ["bravo", "delta", "alpha", "charlie"]
    assert dict(plan.requires) == {
        "bravo": (),
        "delta": (),
        "alpha": ("delta",),
        "charlie": ("alpha",),
    }
    assert plan.excluded == ()
    assert plan.dependents("delta") == ("alpha", "charlie")


def test_missing_dependency_says_what_is_missing() -> None:
    plan = resolve([make_spec("web", dependencies=["storage>=1"]), make_spec("other")])
    assert _order(plan) == ["other"]
    assert _reasons(plan)["web"] == Reason(
        "missing-dependency",
        "web needs storage>=1, but no plugin is named or provides 'storage'",
        "install a plugin that provides 'storage', or disable web",
    )


def test_version_conflict_names_wanted_and_found_with_its_source() -> None:
    plan = resolve([make_spec("db", version="1.4"), make_spec("app", dependencies=["db>=2,<3"])])
    assert _order(plan) == ["db"]
    assert _reasons(plan)["app"] == Reason(
        "version-conflict",
        "app needs db>=2,<3, but found db 1.4 from path db.py",
        "install a version of db that matches '<3,>=2', or disable app",
    )


def test_a_provider_without_a_version_conflicts_with_any_specifier() -> None:
    plan = resolve(
        [
            make_spec("db"),
            make_spec("app", dependencies=["db>=1"]),
            make_spec("x", dependencies=["db"]),
        ]
    )
    assert _order(plan) == ["db", "x"]
    reason = _reasons(plan)["app"]
    assert reason.message == "app needs db>=1, but found db with no version from path db.py"
    assert reason.hint.startswith("give db a version; ")


def test_an_installed_prerelease_satisfies_a_range_as_pip_check_has_it() -> None:
    plan = resolve(
        [
            make_spec("db", version="2.0rc1"),
            make_spec("strict", dependencies=["db>=1.0"]),
            make_spec("capped", dependencies=["db<3"]),
            make_spec("eager", dependencies=["db>=2.0a1"]),
            make_spec("old", dependencies=["db<2"]),
        ]
    )
    assert _order(plan) == ["db", "capped", "eager", "strict"]
    assert _reasons(plan)["old"].requirement == "db<2"


def test_services_resolve_to_their_provider_and_check_its_version() -> None:
    sql = make_spec("sql", version="1.0", services=["storage"])
    plan = resolve(
        [
            sql,
            make_spec("app", dependencies=["storage>=1"]),
            make_spec("old", dependencies=["storage>=5"]),
        ]
    )
    assert _order(plan) == ["sql", "app"]
    assert plan.requires["app"] == ("sql",)
    assert _reasons(plan)["old"].message == (
        "old needs storage>=5, but found sql 1.0 (provides 'storage') from path sql.py"
    )


def test_two_providers_need_a_choice() -> None:
    specs = [
        make_spec("sql", services=["storage"]),
        make_spec("kv", services=["storage"]),
        make_spec("app", dependencies=["storage"]),
    ]
    ambiguous = resolve(specs)
    chosen = resolve(specs, service_choices={"Storage": "SQL"})
    wrong = resolve(specs, service_choices={"storage": "nope"})

    assert _reasons(ambiguous)["app"] == Reason(
        "ambiguous-service",
        "app needs service 'storage', which 2 plugins provide: kv, sql",
        "choose one in the service choices (storage = 'kv'), or disable all but one of them",
    )
    assert _order(chosen) == ["kv", "sql", "app"]
    assert chosen.requires["app"] == ("sql",)
    assert _reasons(wrong)["app"].message.endswith(
        "; the configured choice 'nope' is not one of them"
    )


def test_a_provider_that_cannot_load_does_not_make_a_service_ambiguous() -> None:
    plan = resolve(
        [
            make_spec("sql", version="1.0", services=["storage"]),
            make_spec("kv", services=["storage"], dependencies=["absent"]),
            make_spec("app", dependencies=["storage>=1"]),
        ]
    )
    assert _order(plan) == ["sql", "app"]
    assert plan.requires["app"] == ("sql",)
    assert _reasons(plan)["kv"].code == "missing-dependency"


def test_the_one_provider_left_still_has_its_version_checked() -> None:
    plan = resolve(
        [
            make_spec("sql", version="0.5", services=["storage"]),
            make_spec("kv", services=["storage"], dependencies=["absent"]),
            make_spec("app", dependencies=["storage>=1"]),
        ]
    )
    assert _order(plan) == ["sql"]
    assert _reasons(plan)["app"].message == (
        "app needs storage>=1, but found sql 0.5 (provides 'storage') from path sql.py"
    )


def test_a_service_whose_providers_all_fail_leads_to_the_first_ones_reason() -> None:
    plan = resolve(
        [
            make_spec("sql", services=["storage"], dependencies=["broken"]),
            make_spec("kv", services=["storage"], dependencies=["absent"]),
            make_spec("app", dependencies=["storage"]),
        ],
        excluded=[broken_exclusion()],
    )
    assert plan.order == ()
    app = _reasons(plan)["app"]
    assert app.message == (
        "app needs storage (provided by kv, sql), which will not load (missing-dependency)"
    )
    assert app.cause == _reasons(plan)["kv"]


def test_a_provider_ruled_out_before_resolving_is_named_not_missing() -> None:
    disabled = make_spec("sql", services=["storage"])
    reason = Reason("disabled", "sql is disabled by KSI_DISABLE_PLUGINS")
    plan = resolve(
        [make_spec("app", dependencies=["storage"])],
        excluded=[Exclusion("sql", disabled.origin, reason, disabled)],
    )
    app = _reasons(plan)["app"]
    assert app.message == "app needs storage (provided by sql), which will not load (disabled)"
    assert app.cause is reason


def test_an_ambiguous_provider_drops_out_of_another_service() -> None:
    # "front" provides "web" but itself needs the ambiguous "storage"; so "web" has one
    # provider left that can load, and "site" loads with it.
    plan = resolve(
        [
            make_spec("sql", services=["storage"]),
            make_spec("kv", services=["storage"]),
            make_spec("front", services=["web"], dependencies=["storage"]),
            make_spec("static", services=["web"]),
            make_spec("site", dependencies=["web"]),
        ]
    )
    assert _order(plan) == ["kv", "sql", "static", "site"]
    assert plan.requires["site"] == ("static",)
    assert _reasons(plan)["front"].code == "ambiguous-service"


def test_a_cycle_is_printed_whole_and_its_dependents_point_at_it() -> None:
    plan = resolve(
        [
            make_spec("a", dependencies=["b"]),
            make_spec("b", dependencies=["c"]),
            make_spec("c", dependencies=["a"]),
            make_spec("d", dependencies=["b"]),
            make_spec("e"),
            make_spec("self", dependencies=["self"]),
        ]
    )
    reasons = _reasons(plan)
    assert _order(plan) == ["e"]
    assert reasons["a"] == Reason(
        "cycle",
        "a is in a dependency cycle: a -> b -> c -> a",
        "break the cycle: drop one of these dependencies or after_dependencies",
    )
    assert reasons["c"].message == "c is in a dependency cycle: c -> a -> b -> c"
    assert reasons["self"].message == "self is in a dependency cycle: self -> self"
    assert reasons["d"].code == "dependency-excluded"
    assert reasons["d"].message == "d needs b, which will not load (cycle)"
    assert reasons["d"].cause == reasons["b"]


def test_dependents_of_a_broken_import_carry_the_chain_to_the_root_cause() -> None:
    broken = broken_exclusion("driver")
    plan = resolve(
        [make_spec("db", dependencies=["driver"]), make_spec("app", dependencies=["db"])],
        excluded=[broken],
    )
    assert plan.order == ()
    assert plan.excluded[0] is broken
    app = _reasons(plan)["app"]
    assert app == Reason(
        "dependency-excluded",
        "app needs db, which will not load (dependency-excluded)",
        "fix db (see the cause), or disable app",
        cause=Reason(
            "dependency-excluded",
            "db needs driver, which will not load (import-error)",
            "fix driver (see the cause), or disable db",
            cause=broken.reason,
        ),
    )
    assert app.root is broken.reason


def test_after_dependencies_only_order() -> None:
    plan = resolve(
        [
            make_spec("a_first", after=["z_last", "absent"]),
            make_spec("z_last"),
            make_spec("m", after=["bad", "broken"], dependencies=[]),
            make_spec("bad", dependencies=["nothing"]),
        ],
        excluded=[broken_exclusion()],
    )
    assert _order(plan) == ["m", "z-last", "a-first"]
    assert plan.requires["a-first"] == ("z-last",)
    assert [(w.code, w.message, w.plugins) for w in plan.warnings] == [
        (
            "after-dependency-excluded",
            "m starts after bad when present, but bad will not load (missing-dependency); "
            "m loads anyway",
            ("m",),
        ),
        (
            "after-dependency-excluded",
            "m starts after broken when present, but broken will not load (import-error); "
            "m loads anyway",
            ("m",),
        ),
    ]


def test_an_after_dependency_can_close_a_cycle() -> None:
    plan = resolve([make_spec("a", after=["b"]), make_spec("b", dependencies=["a"])])
    assert plan.order == ()
    assert _reasons(plan)["a"].message == "a is in a dependency cycle: a -> b -> a"


def test_environment_markers_decide_whether_a_dependency_counts() -> None:
    specs = [make_spec("app", dependencies=['winonly; sys_platform == "win32"'])]
    assert _order(resolve(specs, marker_environment={"sys_platform": "linux"})) == ["app"]
    windows = resolve(specs, marker_environment={"sys_platform": "win32"})
    assert _reasons(windows)["app"].message == (
        "app needs winonly, but no plugin is named or provides 'winonly'"
    )


def test_the_same_plugin_twice_keeps_the_first() -> None:
    first, second = make_spec("twin", version="1.0"), make_spec("Twin", version="2.0")
    plan = resolve([first, second])
    assert plan.order == (first,)
    [shadowed] = plan.excluded
    assert (shadowed.spec, shadowed.reason.code) == (second, "shadowed")


def test_the_reporter_hears_new_exclusions_only() -> None:
    heard: list[str] = []

    class Reporter:
        def found(self, candidate: object) -> None: ...

        def importing(self, candidate: object) -> None: ...

        def described(self, spec: PluginSpec) -> None: ...

        def excluded(self, exclusion: Exclusion) -> None:
            heard.append(exclusion.name)

    resolve(
        [make_spec("x", dependencies=["broken"])],
        excluded=[broken_exclusion()],
        reporter=Reporter(),
    )
    assert heard == ["x"]


# --- properties ---


def _summary(plan: LoadPlan) -> tuple[list[str], list[tuple[str, Reason]]]:
    excluded = sorted((e.name, e.reason) for e in plan.excluded if e.reason.code != "import-error")
    return _order(plan), excluded


@settings(max_examples=200, deadline=None)
@given(plugin_sets())
def test_every_edge_is_respected_and_every_plugin_accounted_for(specs: list[PluginSpec]) -> None:
    plan = resolve(specs, excluded=[broken_exclusion()])
    position = {key: index for index, key in enumerate(_order(plan))}
    for key, before in plan.requires.items():
        assert all(position[dep] < position[key] for dep in before)
    for spec in plan.order:
        wanted = {r.name for r in spec.metadata.requirements} & set(position)
        assert wanted <= set(plan.requires[spec.key])
    excluded_keys = {e.spec.key for e in plan.excluded if e.spec is not None}
    assert set(position) | excluded_keys == {spec.key for spec in specs}
    assert not set(position) & excluded_keys


@settings(max_examples=200, deadline=None)
@given(plugin_sets(), st.randoms(use_true_random=False))
def test_order_does_not_depend_on_input_order(specs: list[PluginSpec], rnd: random.Random) -> None:
    shuffled = list(specs)
    rnd.shuffle(shuffled)
    broken = [broken_exclusion()]
    assert _summary(resolve(shuffled, excluded=broken)) == _summary(resolve(specs, excluded=broken))


_ROOT_CAUSES = {
    "missing-dependency",
    "version-conflict",
    "cycle",
    "ambiguous-service",
    "import-error",
}


@settings(max_examples=200, deadline=None)
@given(plugin_sets())
def test_every_exclusion_chain_ends_in_a_root_cause(specs: list[PluginSpec]) -> None:
    plan = resolve(specs, excluded=[broken_exclusion()])
    for exclusion in plan.excluded:
        reason, depth = exclusion.reason, 0
        while reason.cause is not None:
            assert reason.code == "dependency-excluded"
            reason, depth = reason.cause, depth + 1
            assert depth <= len(specs) + 1
        assert reason.code in _ROOT_CAUSES


@settings(max_examples=200, deadline=None)
@given(plugin_sets(), st.sampled_from(["aaa", "mmm", "zzz"]))
def test_an_unrelated_plugin_never_reorders_the_others(specs: list[PluginSpec], name: str) -> None:
    broken = [broken_exclusion()]
    before = resolve(specs, excluded=broken)
    after = resolve([*specs, make_spec(name, version="1.0")], excluded=broken)
    assert [key for key in _order(after) if key != name] == _order(before)
    assert _summary(after)[1] == _summary(before)[1]


def test_each_reason_keeps_its_evidence_as_data() -> None:
    """Doctor builds its fixes from these fields, never by parsing the message."""
    reasons = _reasons(
        resolve(
            [
                make_spec("db", version="1.4"),
                make_spec("app", dependencies=["db>=2,<3; python_version > '3'"]),
                make_spec("web", dependencies=["storage>=1"]),
                make_spec("ui", dependencies=["web"]),
                make_spec("sql", services=["cache"]),
                make_spec("kv", services=["cache"]),
                make_spec("user", dependencies=["Cache"]),
                make_spec("a", dependencies=["b"]),
                make_spec("b", after=["a"]),
            ]
        )
    )
    evidence = {
        name: (reason.requirement, reason.providers, reason.cycle)
        for name, reason in reasons.items()
    }
    assert evidence == {
        "app": ("db>=2,<3", ("db",), ()),
        "web": ("storage>=1", (), ()),
        "ui": ("web", (), ()),
        "user": ("Cache", ("kv", "sql"), ()),
        "a": (None, (), ("a", "b", "a")),
        "b": (None, (), ("b", "a", "b")),
    }


def test_a_service_choice_that_chooses_nothing_is_a_warning() -> None:
    plan = resolve(
        [make_spec("store", services=["db"]), make_spec("app", dependencies=["db"])],
        service_choices={"db": "nobody", "cache": "redis"},
    )
    assert [spec.name for spec in plan.order] == ["store", "app"]
    assert [str(warning) for warning in plan.warnings] == [
        "[host] services chooses 'redis' for service 'cache', but no plugin found provides it; "
        "fix the name or remove the choice",
        "[host] services chooses 'nobody' for service 'db', but it is provided by store; "
        "fix the name or remove the choice",
    ]
    assert {warning.code for warning in plan.warnings} == {"choice-unused"}


def test_requirements_are_quoted_as_written_for_excluded_plugins_too() -> None:
    plan = resolve(
        [
            make_spec("db", version="1.0", dependencies=["nothing"]),
            make_spec("app", dependencies=["db >=1.0, <2"]),
            make_spec("web", dependencies=["app>=0"]),
            make_spec("old_app", dependencies=["db<1 , >0.1"]),
        ]
    )
    reasons = _reasons(plan)
    assert reasons["app"].requirement == "db >=1.0, <2"
    assert reasons["app"].message.startswith("app needs db >=1.0, <2, which will not load")
    assert reasons["web"].requirement == "app>=0"
    assert reasons["old_app"].requirement == "db<1 , >0.1"
