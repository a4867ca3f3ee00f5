"""The Dagster UI in headless Chromium, against `sync-assets dev` (embedded Postgres, sandbox,
webserver and daemon): materialize the football group with a click, then read a stats asset's
metadata and checks. Rows are checked through SQL, not the page; screenshots are kept in
test-artifacts/ui/."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from dagster_graphql import DagsterGraphQLClient
from playwright.sync_api import Page, sync_playwright

from sync_assets_tests.processes import BIN, REPO, free_port, running, wait_for, webserver_up

ARTIFACTS = REPO / "test-artifacts" / "ui"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# No network but loopback here: keep Chromium from dialling out (and being refused) at start.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
LOCATION_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { loadStatus
    locationOrLoadError { __typename } } } } }"""


def location_loaded(web: str) -> bool:
    try:
        reply = requests.post(f"{web}/graphql", json={"query": LOCATION_QUERY}, timeout=10).json()
    except requests.RequestException:
        return False
    entries = reply["data"]["workspaceOrError"].get("locationEntries") or []
    return any(
        e["loadStatus"] == "LOADED"
        and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        for e in entries
    )


def dismiss_first_visit_popup(page: Page) -> None:
    """Skip the community sign-up dialog Dagster shows on a first visit, whenever it appears."""
    page.add_locator_handler(
        page.get_by_text("Join the Dagster community"),
        lambda: page.get_by_role("button", name="Skip").click(),
    )


def launch_from_group(page: Page, web: str, group: str) -> str:
    """Click "Materialize all" on a group's graph; return the launched run's id prefix."""
    page.goto(f"{web}/locations/sync_assets/asset-groups/{group}", wait_until="networkidle")
    page.get_by_role("button", name="Materialize all").click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}"))
    toast.wait_for(timeout=60_000)
    page.screenshot(path=ARTIFACTS / f"{group}-launched.png")
    return re.search(r"Launched run ([0-9a-f]{8})", toast.inner_text()).group(1)


def wait_for_run(client: DagsterGraphQLClient, web: str, prefix: str) -> tuple[str, str]:
    query = "{ runsOrError(limit: 20) { ... on Runs { results { runId status } } } }"

    def finished() -> tuple[str, str] | None:
        runs = requests.post(f"{web}/graphql", json={"query": query}, timeout=10).json()
        for run in runs["data"]["runsOrError"]["results"]:
            if run["runId"].startswith(prefix) and run["status"] in TERMINAL:
                return run["runId"], run["status"]
        return None

    return wait_for(finished, 240, f"run {prefix} to finish", every=2)


def sql(env: dict[str, str], statement: str) -> list[dict[str, str]]:
    done = subprocess.run(
        [str(BIN / "sync-assets"), "sql", "--csv", statement],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(csv.DictReader(io.StringIO(done.stdout)))


@pytest.mark.timeout(900)
def test_materialize_football_and_read_stats_in_the_browser(tmp_path: Path) -> None:
    assert CHROMIUM, "Chromium is missing: `make test` installs it (apt-get install chromium)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    web = f"http://127.0.0.1:{port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DAGSTER_HOME", "DAGSTER_PG_URL", "SYNC_ASSETS_COMPUTE_LOGS"}
    }
    env["SYNC_ASSETS_HOME"] = str(tmp_path / "home")
    try:
        with running(tmp_path, env, inherit=False) as processes:
            processes.start("dev", "sync-assets", "dev", "--port", str(port), "--scale", "0.2")
            wait_for(lambda: webserver_up(web), 240, "the webserver", every=1)
            wait_for(lambda: location_loaded(web), 240, "the code location", every=1)
            client = DagsterGraphQLClient("127.0.0.1", port_number=port)

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                dismiss_first_visit_popup(page)

                football = launch_from_group(page, web, "football")
                run_id, status = wait_for_run(client, web, football)
                page.goto(f"{web}/runs/{run_id}", wait_until="networkidle")
                page.screenshot(path=ARTIFACTS / "football-run.png")
                assert status == "SUCCESS", processes.output("dev")[-4000:]

                counts = sql(
                    env,
                    "SELECT (SELECT count(*) FROM football.countries) AS countries, "
                    "(SELECT count(*) FROM football.leagues) AS leagues, "
                    "(SELECT count(*) FROM football.seasons) AS seasons, "
                    "(SELECT count(*) FROM football.season_coverage) AS coverage",
                )[0]
                assert all(int(value) > 0 for value in counts.values()), counts

                stats = launch_from_group(page, web, "stats")
                _, status = wait_for_run(client, web, stats)
                assert status == "SUCCESS", processes.output("dev")[-4000:]

                page.goto(f"{web}/assets/season_stats", wait_until="networkidle")
                for label in ("Latest materialization", "player_match_rows_used", "revalidation"):
                    page.get_by_text(label, exact=True).first.wait_for(timeout=30_000)
                page.screenshot(path=ARTIFACTS / "season_stats-overview.png", full_page=True)

                page.goto(f"{web}/assets/season_stats?view=checks", wait_until="networkidle")
                page.get_by_text("cache_revalidated").first.wait_for(timeout=30_000)
                page.get_by_text("Passed", exact=True).first.wait_for(timeout=30_000)
                page.screenshot(path=ARTIFACTS / "season_stats-checks.png", full_page=True)
                browser.close()
    finally:
        subprocess.run(
            [
                str(BIN / "python"),
                "-c",
                "from sync_assets.core import embedded; embedded.stop_embedded_server()",
            ],
            env=env,
            timeout=60,
        )
