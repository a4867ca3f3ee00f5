"""The registry of domains: a new source is its folder plus one line here.

Everything that needs the list of domains reads it from `DOMAINS`: the code location
(`definitions.py`), the CLI's row counts and demo, alert redaction, and the tests that check
dagster.yaml's limits and README's settings table against it (`sync_assets_tests/test_domains.py`).
"""

from sync_assets import football, stats, steam, streams, torn
from sync_assets.core.domain import Domain

DOMAINS: tuple[Domain, ...] = (
    football.DOMAIN,
    stats.DOMAIN,
    steam.DOMAIN,
    streams.DOMAIN,
    torn.DOMAIN,
)
