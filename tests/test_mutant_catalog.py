"""scripts/mutant_catalog.py stays applicable: CI runs a random sample of it, so an entry whose text a refactor changed
would fail only on the day it is drawn. Each edit's text must occur exactly once in its file, and each id once."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from mutant_catalog import CATALOG  # noqa: E402


def test_every_edit_of_every_mutant_finds_its_text_once():
    misplaced = [(m.id, file, (ROOT / file).read_text().count(find)) for m in CATALOG for file, find, _ in m.edits
                 if (ROOT / file).read_text().count(find) != 1]
    assert not misplaced, f"(mutant, file, occurrences) whose text is not in its file exactly once: {misplaced}"


def test_ids_are_unique_and_every_mutant_names_tests_that_exist():
    ids = [m.id for m in CATALOG]
    assert len(ids) == len(set(ids))
    missing = [(m.id, t) for m in CATALOG for t in m.tests if not (ROOT / t.split("::")[0]).exists()]
    assert not missing, missing
