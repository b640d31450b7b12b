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


def test_the_daily_sample_holds_at_most_max_native_mutants_and_is_the_same_for_a_seed():
    import random

    import mutants  # scripts/mutants.py: CI draws its sample with draw()

    for seed in range(200):
        sample = mutants.draw(list(CATALOG), 3, 1, random.Random(seed))
        assert len(sample) == 3 == len({m.id for m in sample})
        assert sum(map(mutants._is_native, sample)) <= 1
        assert sample == mutants.draw(list(CATALOG), 3, 1, random.Random(seed))
    natives_without_cap = [sum(map(mutants._is_native, mutants.draw(list(CATALOG), 3, None, random.Random(seed))))
                           for seed in range(200)]
    assert max(natives_without_cap) == 3  # the cap is what keeps them down, not the catalog
    drawn_natives = {m.id for seed in range(1000) for m in mutants.draw(list(CATALOG), 3, 1, random.Random(seed))
                     if mutants._is_native(m)}
    assert drawn_natives == {m.id for m in CATALOG if mutants._is_native(m)}  # every one still has its days
