"""The README's architecture table names every module a newcomer may need to change."""

from __future__ import annotations

import re

from conftest import REPO

TABLE_ROW = re.compile(r"^\| (`[^|]+`) \|", re.MULTILINE)


def architecture_entries() -> set[str]:
    """Every path the README's architecture table names in its first column."""
    section = (REPO / "README.md").read_text().split("## Architecture", 1)[1].split("\n## ", 1)[0]
    return {name for cell in TABLE_ROW.findall(section) for name in re.findall(r"`([^`]+)`", cell)}


def test_every_package_module_is_in_the_architecture_table():
    entries = architecture_entries()
    modules = {
        str(path.relative_to(REPO))
        for path in (REPO / "lindyn").glob("*.py")
        if path.stem not in {"__init__", "__main__"}
    }
    packages = {f"lindyn/{path.parent.name}/" for path in (REPO / "lindyn").glob("*/__init__.py")}
    assert modules | packages <= entries, sorted((modules | packages) - entries)


def test_the_architecture_table_names_only_files_that_exist():
    for entry in architecture_entries():
        assert (REPO / entry).exists(), entry
