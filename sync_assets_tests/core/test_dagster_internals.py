"""Private Dagster imports live in the two internals modules only, so an upgrade breaks there."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ALLOWED = {
    REPO / "sync_assets" / "core" / "dagster_internals.py",
    REPO / "sync_assets_tests" / "dagster_internals.py",
}
PRIVATE_IMPORT = re.compile(r"^\s*(from|import)\s+dagster(_\w+)?\._", re.MULTILINE)


def test_private_dagster_names_are_imported_in_one_place() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{source[: match.start()].count(chr(10)) + 1}"
        for folder in ("sync_assets", "sync_assets_tests", "bench")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path not in ALLOWED
        for source in [path.read_text()]
        for match in PRIVATE_IMPORT.finditer(source)
    ]
    assert offenders == [], "import these through a dagster_internals module: " + ", ".join(
        offenders
    )


def test_every_private_name_says_why_it_is_needed() -> None:
    for module in ALLOWED:
        source = module.read_text()
        tree = ast.parse(source)
        docs_and_comments = (ast.get_docstring(tree) or "") + "\n".join(
            line for line in source.splitlines() if line.lstrip().startswith("#")
        )
        private = [
            alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dagster._")
            for alias in node.names
        ]
        assert private, module
        unexplained = [name for name in private if name not in docs_and_comments]
        assert unexplained == [], f"{module.name}: no reason given for {unexplained}"
