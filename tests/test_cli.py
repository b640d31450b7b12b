"""python -m fusedadam: info and bench run, and their errors are clear."""
import json
import subprocess
import sys

import pytest

from fusedadam.__main__ import main


def test_info_lists_what_was_compiled(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("cpu ISA selected here", "cuda archs compiled", "backend cpu", 'backend="auto" on cpu float32'):
        assert key in out


def test_bench_writes_the_report_schema(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["bench", "--presets", "host-1000x16", "--repeats", "2", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert {"device", "ceiling_gbps", "results", "versions", "commit", "date"} <= set(report)
    impls = {r["impl"] for r in report["results"]}
    assert {"torch-forloop", "torch-foreach", "torch-fused", "fusedadam-cpu"} <= impls
    for row in report["results"]:
        assert {"impl", "preset", "dtype", "ms", "gbps", "fraction_of_ceiling"} <= set(row)
        assert row["ms"] > 0 and row["gbps"] > 0 and row["bytes_per_param"] == 28
    assert "fusedadam-cpu" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["bench", "--presets", "nope"], "unknown preset"),
    (["bench", "--impls", "nope"], "unknown implementation"),
    (["bench", "--impls", "fusedadam-cpu", "--device", "cuda", "--presets", "host-1000x16"], "cannot run here"),
])
def test_bench_argument_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "fusedadam", "bench", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--quick" in out.stdout
