"""A domain's declaration of itself, and the checks that say what a declared domain forgot.

Each domain folder's `__init__.py` builds one `Domain`; `sync_assets/domains.py` lists them.
Everything that used to repeat the list of domains (the code location's definitions, the CLI's
row counts, alert redaction, the instance's run and pool limits, the demo, the README's settings
table) reads it from there, and `registry_problems` names whatever a new domain left out.
"""

from __future__ import annotations

import importlib
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

DOMAIN_TAG = "sync_assets/domain"
PROVIDER_TAG = "sync_assets/provider"
TABLE_TAG = "sync_assets/table"
DEFAULT_OWNERS = ("team:sync-assets",)
NAME = re.compile(r"[a-z][a-z0-9_]*")
SANDBOX_HOOKS = ("providers", "environment", "seed_app_tables")


def asset_tags(*, table: str, provider: str | None = None) -> dict[str, str]:
    """Catalog tags of an asset: the table (or object) it writes and the provider it calls.

    The domain tag and the owners are added from the domain's declaration (`Domain.annotated`).
    """
    tags = {TABLE_TAG: table}
    if provider is not None:
        tags[PROVIDER_TAG] = provider
    return tags


def check_metadata(*, domain: str, table: str, provider: str | None = None) -> dict[str, str]:
    """What an asset check shows in the catalog beside its description (checks carry no tags)."""
    return {
        "owners": ", ".join(DEFAULT_OWNERS),
        DOMAIN_TAG: domain,
        TABLE_TAG: table,
        **({PROVIDER_TAG: provider} if provider else {}),
    }


@dataclass(frozen=True)
class Domain:
    """Everything the rest of the project needs to know about one source system."""

    name: str
    defs: dg.Definitions
    schema: str = ""
    owners: tuple[str, ...] = DEFAULT_OWNERS
    # Settings the domain reads (README's settings table must list each); the secret ones are
    # also redacted from alerts.
    settings: tuple[str, ...] = ()
    secret_settings: tuple[str, ...] = ()
    # Runs at once with tag `sync_assets/domain: <name>` (dagster.yaml's tag_concurrency_limits).
    run_limit: int = 1
    # provider pool -> steps at once across the instance (dagster.yaml's concurrency.pools).
    pools: Mapping[str, int] = field(default_factory=dict)
    demo_run_config: Mapping[str, Any] = field(default_factory=dict)
    demo_extra_jobs: tuple[str, ...] = ()
    # Module of the provider stand-ins and app-table seeds (see sync_assets/sandbox/registry.py).
    sandbox: str | None = None

    @property
    def schema_name(self) -> str:
        return self.schema or self.name

    def annotated(self) -> dg.Definitions:
        """The domain's Definitions with its owners and domain tag on every asset."""

        def annotate(spec: dg.AssetSpec) -> dg.AssetSpec:
            return spec.replace_attributes(
                owners=list(dict.fromkeys([*spec.owners, *self.owners])),
                tags={**spec.tags, DOMAIN_TAG: self.name},
            )

        # map_asset_specs is marked preview since 1.10; its behaviour here (specs replaced, ops
        # kept) is what the registry test checks, so the warning is noise on every import.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return self.defs.map_asset_specs(func=annotate)


def build_definitions(domains: Sequence[Domain], *others: dg.Definitions) -> dg.Definitions:
    """One code location: every domain's (annotated) Definitions merged with the others."""
    return dg.Definitions.merge(*(domain.annotated() for domain in domains), *others)


def secret_settings(domains: Iterable[Domain]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s for domain in domains for s in domain.secret_settings))


def demo_ops_config(domains: Iterable[Domain]) -> dict[str, Any]:
    """The domains' demo run config ops, merged (for a job that runs them all)."""
    ops: dict[str, Any] = {}
    for domain in domains:
        ops.update(domain.demo_run_config.get("ops", {}))
    return ops


def registry_problems(
    domains: Sequence[Domain], *, instance_config: Mapping[str, Any], documented: set[str]
) -> list[str]:
    """What each domain forgot, one line each naming the domain and the fix.

    `instance_config` is the parsed dagster.yaml; `documented` the settings the README's
    settings table lists.
    """
    problems: list[str] = []
    names = [domain.name for domain in domains]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"domain {name!r} is registered twice in sync_assets/domains.py")
    for domain in domains:
        problems.extend(f"domain {domain.name!r}: {p}" for p in _declaration_problems(domain))
        problems.extend(f"domain {domain.name!r}: {p}" for p in _asset_problems(domain))
        problems.extend(
            f"domain {domain.name!r}: {p}" for p in _instance_problems(domain, instance_config)
        )
        for setting in dict.fromkeys((*domain.settings, *domain.secret_settings)):
            if setting not in documented:
                problems.append(
                    f"domain {domain.name!r}: setting `{setting}` is not in README.md's"
                    " Settings table (add a row: setting, domain, meaning)"
                )
    return problems


def _declaration_problems(domain: Domain) -> list[str]:
    problems = []
    if not NAME.fullmatch(domain.name) or not NAME.fullmatch(domain.schema_name):
        problems.append("name and schema must be lower-case identifiers")
    for setting in domain.secret_settings:
        if setting not in domain.settings:
            problems.append(f"secret setting `{setting}` is not among its settings")
    jobs = {job.name: job for job in domain.defs.jobs or ()}
    for name, job in jobs.items():
        tags = job.tags if isinstance(job, dg.JobDefinition) else job.tags or {}
        if (tags or {}).get(DOMAIN_TAG) != domain.name:
            problems.append(f"job {name!r} lacks the tag {DOMAIN_TAG}: {domain.name}")
    for job in domain.demo_extra_jobs:
        if job not in jobs:
            problems.append(f"demo_extra_jobs names {job!r}, which is not one of its jobs")
    for name, resource in (domain.defs.resources or {}).items():
        schema = getattr(resource, "schema_name", None)
        if isinstance(schema, str) and schema != domain.schema_name:
            problems.append(
                f"resource {name!r} writes schema {schema!r}, not {domain.schema_name!r}"
            )
    problems.extend(_sandbox_problems(domain))
    return problems


def _sandbox_problems(domain: Domain) -> list[str]:
    if domain.sandbox is None:
        return ["declares no sandbox module (the provider stand-ins the demo and tests use)"]
    try:
        module = importlib.import_module(domain.sandbox)
    except ImportError as exc:
        return [f"sandbox module {domain.sandbox!r} does not import: {exc}"]
    if not any(hasattr(module, hook) for hook in SANDBOX_HOOKS):
        return [f"sandbox module {domain.sandbox!r} defines none of {', '.join(SANDBOX_HOOKS)}"]
    return []


def _asset_problems(domain: Domain) -> list[str]:
    problems = []
    assets = list(domain.annotated().assets or ())
    if not assets:
        problems.append("defines no asset")
    used_pools: set[str] = set()
    for assets_def in assets:
        if isinstance(assets_def, dg.AssetSpec):
            specs, pool, executable = [assets_def], None, False
        elif isinstance(assets_def, dg.AssetsDefinition):
            executable = assets_def.is_executable
            specs, pool = list(assets_def.specs), assets_def.op.pool if executable else None
        else:
            problems.append(f"{assets_def!r} is neither an AssetSpec nor an AssetsDefinition")
            continue
        for spec in specs:
            where = f"asset {spec.key.to_user_string()!r}"
            if spec.group_name != domain.name:
                problems.append(f"{where} is in group {spec.group_name!r}, not {domain.name!r}")
            if not spec.description:
                problems.append(f"{where} has no description (a one-line docstring)")
            if not spec.kinds:
                problems.append(f"{where} has no kinds")
            if TABLE_TAG not in spec.tags:
                problems.append(f"{where} has no {TABLE_TAG} tag (core.domain.asset_tags)")
            provider = spec.tags.get(PROVIDER_TAG)
            if provider is not None and executable:
                if pool is None:
                    problems.append(f"{where} calls {provider!r} but declares no pool=")
                elif pool not in domain.pools:
                    problems.append(
                        f"{where} uses pool {pool!r}, which the domain does not declare"
                    )
            if pool:
                used_pools.add(pool)
    for pool in set(domain.pools) - used_pools:
        problems.append(f"pool {pool!r} is declared but no asset uses it")
    return problems


def _instance_problems(domain: Domain, instance_config: Mapping[str, Any]) -> list[str]:
    problems = []
    concurrency = instance_config.get("concurrency") or {}
    limits = {
        (entry.get("key"), entry.get("value")): entry.get("limit")
        for entry in (concurrency.get("runs") or {}).get("tag_concurrency_limits") or ()
    }
    limit = limits.get((DOMAIN_TAG, domain.name))
    if limit != domain.run_limit:
        problems.append(
            f"dagster.yaml's concurrency.runs.tag_concurrency_limits has limit {limit} for it, not"
            f" {domain.run_limit} (add `- key: {DOMAIN_TAG}` / `value: {domain.name}` /"
            f" `limit: {domain.run_limit}`)"
        )
    default_limit = (concurrency.get("pools") or {}).get("default_limit")
    for pool, pool_limit in domain.pools.items():
        if pool_limit != default_limit:
            problems.append(
                f"pool {pool!r} has limit {pool_limit} but dagster.yaml's"
                f" concurrency.pools.default_limit is {default_limit} (dagster.yaml sets one limit"
                " for every pool; a different one needs `dagster instance concurrency set`)"
            )
    return problems
