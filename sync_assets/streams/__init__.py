"""The streams domain (being built)."""

import dagster as dg

defs = dg.Definitions()
