"""The registry of domains: every registered domain is complete (its instance limits, its
settings in the README, its assets' catalog entries), a new one is added with only the
documented steps (the example domain), and a domain that forgot something is told what."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml

import sync_assets.domains
from sync_assets import cli
from sync_assets.core.domain import (
    DOMAIN_TAG,
    PROVIDER_TAG,
    TABLE_TAG,
    Domain,
    registry_problems,
    secret_settings,
)
from sync_assets.definitions import code_location, defs
from sync_assets.domains import DOMAINS
from sync_assets.sandbox.server import SandboxServer
from sync_assets_tests import example_domain
from sync_assets_tests.example_domain import sandbox as example_sandbox

REPO = Path(__file__).resolve().parents[1]


def instance_config() -> dict:
    return yaml.safe_load((REPO / "dagster.yaml").read_text())


def documented_settings(readme: str) -> set[str]:
    """The settings README.md's "Settings" table lists (first column)."""
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_every_registered_domain_is_complete():
    readme = (REPO / "README.md").read_text()
    problems = registry_problems(
        DOMAINS, instance_config=instance_config(), documented=documented_settings(readme)
    )
    assert problems == []
    assert [d.name for d in DOMAINS] == ["football", "stats", "steam", "streams", "torn"]


def test_the_project_reads_the_registry():
    assert cli.domain_schemas() == [d.schema_name for d in DOMAINS]
    assert cli.demo_jobs() == ["all_syncs_job", "stream_sync_all_job"]
    assert cli.demo_run_config("all_syncs_job")["ops"] == {
        "steam_app_details": {"config": {"batch_size": 1000}}
    }
    from sync_assets.operations.alerts import SECRET_SETTINGS

    assert set(secret_settings(DOMAINS)) <= set(SECRET_SETTINGS)
    limits = {
        entry["value"]: entry["limit"]
        for entry in instance_config()["concurrency"]["runs"]["tag_concurrency_limits"]
    }
    assert {d.name: d.run_limit for d in DOMAINS}.items() <= limits.items()


def test_every_asset_and_check_is_in_the_catalog_with_owners_tags_and_description():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners, key
        assert node.description, key
        assert node.kinds, key
        assert node.tags[DOMAIN_TAG] == node.group_name, key
        assert node.tags[TABLE_TAG], key
    rate_limited = [k for k in graph.get_all_asset_keys() if PROVIDER_TAG in graph.get(k).tags]
    assert len(rate_limited) == 7  # four football tables, two steam assets, user_data
    checks = list(graph.asset_check_keys)
    assert len(checks) > 20
    for check_key in checks:
        spec = graph.get_check_spec(check_key)
        assert spec.description, check_key
        assert spec.metadata["owners"], check_key
        assert spec.metadata[DOMAIN_TAG] == graph.get(check_key.asset_key).group_name, check_key
        assert spec.metadata[TABLE_TAG], check_key


def test_a_new_domain_is_added_with_only_the_documented_steps(
    database_url: str, monkeypatch: pytest.MonkeyPatch
):
    readme = (REPO / "README.md").read_text()
    domains = (*DOMAINS, example_domain.DOMAIN)  # the one line in sync_assets/domains.py

    # Before its dagster.yaml limit and README rows exist, the check names both.
    forgot = registry_problems(
        domains, instance_config=instance_config(), documented=documented_settings(readme)
    )
    assert len(forgot) == 4, forgot
    assert all(p.startswith("domain 'example': ") for p in forgot)
    assert "tag_concurrency_limits" in forgot[0] and "value: example" in forgot[0]
    assert [re.search(r"`(\w+)`", p)[1] for p in forgot[1:]] == [
        "EXAMPLE_DATABASE_URL",
        "QUOTES_API_BASE_URL",
        "QUOTES_API_KEY",
    ]

    # The documented steps: the tag limit in dagster.yaml and a row per setting in the README.
    config = instance_config()
    config["concurrency"]["runs"]["tag_concurrency_limits"].append(
        {"key": DOMAIN_TAG, "value": "example", "limit": 1}
    )
    readme = readme.replace(
        "| `DATABASE_URL` | all |",
        "| `EXAMPLE_DATABASE_URL`, `QUOTES_API_BASE_URL`, `QUOTES_API_KEY` | example | x |\n"
        "| `DATABASE_URL` | all |",
    )
    assert (
        registry_problems(domains, instance_config=config, documented=documented_settings(readme))
        == []
    )

    # What reads the registry now includes it.
    monkeypatch.setattr(sync_assets.domains, "DOMAINS", domains)
    assert cli.domain_schemas()[-1] == "example"
    assert cli.demo_run_config("all_syncs_job")["ops"]["quotes"] == {"config": {"min_length": 1}}
    assert {"QUOTES_API_KEY", "EXAMPLE_DATABASE_URL"} <= set(secret_settings(domains))

    # And it syncs: its job, in the code location built from the registry, against its sandbox.
    location = code_location(domains)
    dg.Definitions.validate_loadable(location)
    assert (
        dg.AssetKey("quotes")
        in location.resolve_job_def("all_syncs_job").asset_layer.executable_asset_keys
    )
    server = SandboxServer(example_sandbox.providers(1.0)).start()
    try:
        for key, value in example_sandbox.environment(server.url).items():
            monkeypatch.setenv(key, value)
        result = location.resolve_job_def("example_sync_job").execute_in_process(
            instance=dg.DagsterInstance.ephemeral()
        )
    finally:
        server.stop()
    assert result.success
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, text FROM example.quotes ORDER BY id").fetchall()
    assert rows == [(1, "quote 1"), (2, "quote 2"), (3, "quote 3")]
    assert dict(cli.row_counts())["example.quotes"] == 3


@dg.asset(group_name="other", tags={PROVIDER_TAG: "somewhere"})
def careless(): ...


def test_a_domain_that_forgot_things_is_told_which():
    careless_job = dg.define_asset_job("careless_job", selection=[careless])
    domain = Domain(
        name="careless",
        defs=dg.Definitions(assets=[careless], jobs=[careless_job]),
        settings=("CARELESS_URL",),
        secret_settings=("CARELESS_KEY",),
        pools={"unused_pool": 2},
        demo_extra_jobs=("missing_job",),
    )
    problems = registry_problems(
        [domain, domain], instance_config=instance_config(), documented=set()
    )
    text = "\n".join(problems)
    for expected in (
        "registered twice",
        "secret setting `CARELESS_KEY` is not among its settings",
        "job 'careless_job' lacks the tag sync_assets/domain: careless",
        "demo_extra_jobs names 'missing_job'",
        "declares no sandbox module",
        "asset 'careless' is in group 'other', not 'careless'",
        "asset 'careless' has no description",
        "asset 'careless' has no sync_assets/table tag",
        "asset 'careless' calls 'somewhere' but declares no pool=",
        "pool 'unused_pool' is declared but no asset uses it",
        "tag_concurrency_limits has limit None",
        "pool 'unused_pool' has limit 2",
        "setting `CARELESS_URL` is not in README.md's Settings table",
    ):
        assert expected in text, (expected, text)
