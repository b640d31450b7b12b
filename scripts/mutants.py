"""Mutation testing: applies plausible bugs from a catalog (scripts/mutant_catalog.py) one at a time, rebuilds the native
module when the bug is in csrc/, runs the tests that should catch it, and reports each mutant as killed (a test failed)
or survived (every test passed). The source is restored after each mutant, whatever happens.

    .venv/bin/python scripts/mutants.py --list
    .venv/bin/python scripts/mutants.py cuda-tail-start cuda-pack-offset     # by id
    .venv/bin/python scripts/mutants.py --area cuda --record                 # an area; --record writes the result file
    .venv/bin/python scripts/mutants.py --sample 3 --seed 17                 # a random sample
    .venv/bin/python scripts/mutants.py --sample 3 --max-native 1           # at most one rebuild (CI)

A survivor the catalog explains as equivalent (no test can tell it from the original) is reported as such. Exit status 0
when every mutant run was killed or is equivalent, 1 when one survived (or the restored source could not be built)."""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from mutant_catalog import CATALOG, Mutant  # noqa: E402

RESULT_FILE = ROOT / "scripts" / "mutants-last-run.json"
# A mutant's CUDA code is tested as the host plays it (backend "cuda-host"); its device code never runs here. So mutant
# builds compile the device code as one architecture's unoptimized PTX (setup.py, FUSEDADAM_CUDA_DEVICE_CODE), a third
# less nvcc time, and the tests run knowing it (tests/test_native.py, tests/test_kernel_resources.py).
MUTANT_ARCHS = os.environ.get("FUSEDADAM_MUTANT_CUDA_ARCHS", "90")
MUTANT_ENV = {"FUSEDADAM_CUDA_ARCHS": MUTANT_ARCHS, "FUSEDADAM_CUDA_DEVICE_CODE": "unoptimized-ptx"}


def mutant_env(mutant_build: bool) -> dict[str, str]:
    """The environment of a build and of the tests that run against it: the mutant layout for a mutant build, the
    caller's own otherwise (so the restoring build and the Python mutants' tests agree on the module's layout)."""
    return {**os.environ, **(MUTANT_ENV if mutant_build else {})}


def build(mutant_build: bool) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "-e", "."],
                          cwd=ROOT, env=mutant_env(mutant_build), capture_output=True, text=True)


def run_tests(mutant: Mutant, timeout: int, mutant_build: bool) -> tuple[str, str]:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutant.tests]
    if mutant.select:
        cmd += ["-k", mutant.select]
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=mutant_env(mutant_build), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "killed", "timed out (a hang counts as caught)"
    tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
    if done.returncode == 0:
        return "survived", tail[0]
    if done.returncode == 5:
        return "error", "no tests were selected: fix the catalog entry"
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return "killed", (failed[0] if failed else tail[0])


def apply(mutant: Mutant) -> dict[Path, str]:
    """Applies every edit of the mutant (checking each text occurs exactly once first); returns the originals."""
    originals: dict[Path, str] = {}
    for file, find, replace in mutant.edits:
        path = ROOT / file
        text = originals.get(path, path.read_text())
        if text.count(find) != 1:
            raise SystemExit(f"mutant {mutant.id}: the text to replace occurs {text.count(find)} times in {file}, not "
                             "once; update the catalog")
        originals.setdefault(path, text)
    for file, find, replace in mutant.edits:
        path = ROOT / file
        path.write_text(path.read_text().replace(find, replace))
    return originals


def restore(originals: dict[Path, str]) -> None:
    for path, text in originals.items():
        path.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ids", nargs="*", help="mutant ids (default: all, or --area / --sample)")
    parser.add_argument("--list", action="store_true", help="list the catalog and exit")
    parser.add_argument("--area", help="only the mutants of this area")
    parser.add_argument("--sample", type=int, help="run this many mutants drawn at random")
    parser.add_argument("--seed", type=int, default=None, help="the sample's seed (default: today's date)")
    parser.add_argument("--max-native", type=int, default=None,
                        help="at most this many mutants of csrc/ in the sample (each rebuilds the module: minutes)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds of tests per mutant")
    parser.add_argument("--record", action="store_true", help=f"write the results to {RESULT_FILE.relative_to(ROOT)}")
    args = parser.parse_args(argv)

    if args.list:
        for m in CATALOG:
            print(f"{m.id:<38} {m.area:<8} {', '.join(sorted({f for f, _, _ in m.edits}))}: {m.why}")
        return 0
    chosen = [m for m in CATALOG if (not args.ids or m.id in args.ids) and (not args.area or m.area == args.area)]
    unknown = set(args.ids) - {m.id for m in CATALOG}
    if unknown:
        raise SystemExit(f"unknown mutant ids: {', '.join(sorted(unknown))} (see --list)")
    runnable = _runnable_cpu_isas()
    not_here = [m for m in chosen if m.cpu_isa and m.cpu_isa not in runnable]
    chosen = [m for m in chosen if m not in not_here]
    skipped = [{"id": m.id, "area": m.area, "status": "not-here", "seconds": 0,
                "detail": f"this CPU cannot run the {m.cpu_isa} kernel it edits"} for m in not_here]
    for r in skipped:
        print(f"{r['status']:<9} {r['id']:<34}       {r['detail']}", flush=True)
    if args.sample:
        seed = args.seed if args.seed is not None else int(time.strftime("%Y%m%d"))
        chosen = draw(chosen, args.sample, args.max_native, random.Random(seed))
        print(f"a sample of {len(chosen)} of {len(CATALOG)} mutants, seed {seed} (--seed {seed} runs it again)",
              flush=True)
    # The mutants of Python files first: a native mutant leaves its build installed until the final rebuild, and a
    # Python mutant's tests must run against the unmutated module.
    chosen.sort(key=_is_native)
    native_touched = False
    results = []
    for mutant in chosen:
        start = time.time()
        originals = apply(mutant)
        try:
            if _is_native(mutant):
                native_touched = True
                built = build(mutant_build=True)
                outcome = (("error", "does not compile: a mutant must build to test anything; fix the catalog entry")
                           if built.returncode != 0 else run_tests(mutant, args.timeout, mutant_build=True))
            else:
                outcome = run_tests(mutant, args.timeout, mutant_build=False)
        finally:
            restore(originals)
        status, detail = outcome
        if status == "survived" and mutant.equivalent:
            status, detail = "equivalent", mutant.equivalent
        results.append({"id": mutant.id, "area": mutant.area, "status": status, "detail": detail,
                        "seconds": round(time.time() - start)})
        print(f"{status:<9} {mutant.id:<34} {round(time.time() - start):>4}s  {detail}", flush=True)
    if native_touched:
        restored = build(mutant_build=False)  # the unmutated module as this environment builds it (cached objects)
        if restored.returncode != 0:
            print(restored.stdout + restored.stderr, file=sys.stderr)
            return 1
    killed = sum(r["status"] == "killed" for r in results)
    equivalent = sum(r["status"] == "equivalent" for r in results)
    print(f"\n{killed} of {len(results)} mutants killed" + (f", {equivalent} equivalent" if equivalent else "")
          + (f"; {len(skipped)} not runnable on this CPU" if skipped else ""))
    if args.record:
        RESULT_FILE.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "commit": _commit(),
                                           "results": results + skipped}, indent=2) + "\n")
    return 0 if killed + equivalent == len(results) else 1


def _runnable_cpu_isas() -> list[str]:
    """The CPU kernel variants this machine runs, asked of the installed module (built from the unmutated sources)."""
    done = subprocess.run([sys.executable, "-c", "import fusedadam._C as C; print(' '.join(C.cpu_runnable_isas()))"],
                          cwd=ROOT, capture_output=True, text=True)
    return done.stdout.split() if done.returncode == 0 else []


def draw(mutants: list[Mutant], size: int, max_native: int | None, rng: random.Random) -> list[Mutant]:
    """`size` mutants in a random order, passing over native ones once `max_native` of them are in."""
    drawn: list[Mutant] = []
    natives = 0
    for mutant in rng.sample(mutants, len(mutants)):
        if len(drawn) < size and (max_native is None or not _is_native(mutant) or natives < max_native):
            drawn.append(mutant)
            natives += _is_native(mutant)
    return drawn


def _is_native(mutant: Mutant) -> bool:
    return any(file.startswith("csrc/") for file, _, _ in mutant.edits)


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
