"""The deployed shape, on loopback: a gRPC code server, and a webserver and a daemon that load
it through deploy/workspace.yaml, all on one Postgres-backed instance. A run submitted to the
webserver is queued, dequeued by the daemon and executed from the code server."""

from __future__ import annotations

import subprocess

import dagster as dg
import requests
from dagster import DagsterEventType
from dagster_graphql import DagsterGraphQLClient

from sync_assets_tests.conftest import create_database
from sync_assets_tests.processes import (
    BIN,
    REPO,
    free_port,
    instance_environment,
    running,
    wait_for,
    webserver_up,
)

LOCATIONS_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus
    locationOrLoadError { __typename ... on RepositoryLocation {
        repositories { jobs { name } } } } } } } }
"""


def test_code_server_webserver_and_daemon(server_url, tmp_path, monkeypatch):
    grpc_port, web_port = free_port(), free_port()
    env = instance_environment(tmp_path / "home", create_database(server_url, "dagster"))
    env |= {
        "SYNC_ASSETS_CODE_SERVER_HOST": "127.0.0.1",
        "SYNC_ASSETS_CODE_SERVER_PORT": str(grpc_port),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    workspace = str(REPO / "deploy" / "workspace.yaml")
    web = f"http://127.0.0.1:{web_port}"

    with running(tmp_path, env) as processes:
        processes.start(
            "code-server",
            "dagster",
            "api",
            "grpc",
            "-m",
            "sync_assets",
            "-h",
            "127.0.0.1",
            "-p",
            str(grpc_port),
        )
        health_check = [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(grpc_port)]
        wait_for(
            lambda: (
                subprocess.run(health_check, env=processes.env, capture_output=True).returncode == 0
            ),
            120,
            "the gRPC code server",
            every=1,
        )
        processes.start(
            "webserver",
            "dagster-webserver",
            "-w",
            workspace,
            "-h",
            "127.0.0.1",
            "-p",
            str(web_port),
        )
        processes.start("daemon", "dagster-daemon", "run", "-w", workspace)
        wait_for(lambda: webserver_up(web), 120, "the webserver's /server_info", every=1)

        entries = requests.post(
            f"{web}/graphql", json={"query": LOCATIONS_QUERY}, timeout=30
        ).json()["data"]["workspaceOrError"]["locationEntries"]
        (entry,) = entries
        assert entry["name"] == "sync_assets" and entry["loadStatus"] == "LOADED"
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation"
        jobs = {job["name"] for repo in location["repositories"] for job in repo["jobs"]}
        assert {"all_syncs_job", "run_retention_job", "steam_sync_job"} <= jobs

        client = DagsterGraphQLClient("127.0.0.1", port_number=web_port)
        run_id = client.submit_job_execution(
            "run_retention_job",
            repository_location_name="sync_assets",
            run_config={"ops": {"prune_old_runs": {"config": {"dry_run": True}}}},
        )
        status = wait_for(lambda: _finished(client, run_id), 180, "the queued run", every=1)
        processes.assert_alive()
        assert status == dg.DagsterRunStatus.SUCCESS, processes.output("daemon")[-3000:]

        liveness = subprocess.run(
            [str(BIN / "dagster-daemon"), "liveness-check"],
            env=processes.env,
            capture_output=True,
            text=True,
        )
        assert liveness.returncode == 0, liveness.stdout + liveness.stderr

    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags.get("sync_assets/domain") == "operations"
        started = instance.all_logs(run_id, of_type=DagsterEventType.RUN_START)
        assert started, "the run never started in a run worker"


def _finished(client: DagsterGraphQLClient, run_id: str) -> dg.DagsterRunStatus | None:
    status = client.get_run_status(run_id)
    terminal = {
        dg.DagsterRunStatus.SUCCESS,
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    }
    return status if status in terminal else None
