"""python -m fusedadam: info, bench and profile run, write what they promise, and fail clearly."""
import json
import subprocess
import sys

import pytest
import torch

from fusedadam.__main__ import main
from fusedadam.bench import run as bench_run
from fusedadam.bench.presets import PRESETS, get
from fusedadam.bench.report import format_table
from fusedadam.bench.run import CEILING, Row, distrust


def test_info_lists_what_was_compiled(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for key in ("cpu ISA selected here", "cuda archs compiled", "triton", "TRITON_INTERPRET", "backend cpu",
                'backend="auto" on cpu float32', "peer deepspeed-cpuadam"):
        assert key in out


def test_bench_writes_the_report_schema(tmp_path, capsys):
    path = tmp_path / "report.json"
    assert main(["bench", "--presets", "host-1000x16", "flat-100k", "--repeats", "2", "--json", str(path)]) == 0
    report = json.loads(path.read_text())
    assert {"device", "ceiling_gbps", "results", "versions", "commit", "date"} <= set(report)
    assert {"torch", "fusedadam", "python"} <= set(report["versions"])
    impls = {r["impl"] for r in report["results"]}
    assert {"torch-forloop", "torch-foreach", "torch-fused", "fusedadam-cpu", "ceiling (4R+3W probe)"} <= impls
    assert "torch-compiled" not in impls  # opt-in on the CPU: compiling takes minutes
    for row in report["results"]:
        assert {"impl", "preset", "dtype", "ms", "p20_ms", "p80_ms", "gbps", "fraction_of_ceiling"} <= set(row)
        assert 0 < row["p20_ms"] <= row["ms"] <= row["p80_ms"] and row["gbps"] > 0
        assert row["bytes_per_param"] == 28 and row["dtype"] == "float32"
    # The headline ceiling is the largest preset's.
    assert report["ceiling_gbps"] == next(r["ceiling_gbps"] for r in report["results"] if r["preset"] == "flat-100k")
    assert "fusedadam-cpu" in capsys.readouterr().out


def test_bytes_per_param_follow_dtype_and_amsgrad(tmp_path):
    path = tmp_path / "report.json"
    assert main(["bench", "--presets", "flat-10k", "--impls", "fusedadam-cpu", "--repeats", "1", "--dtype", "bf16",
                 "--amsgrad", "--json", str(path)]) == 0
    rows = json.loads(path.read_text())["results"]
    assert all(r["bytes_per_param"] == 18 and r["dtype"] == "bfloat16" for r in rows)  # 9 accesses x 2 bytes


def test_precision_mode_rows_count_the_bytes_their_mode_moves(tmp_path, capsys):
    path = tmp_path / "report.json"
    impls = ["fusedadam-cpu", "fusedadam-cpu+master", "fusedadam-cpu+bf16-states", "fusedadam-cpu+stochastic",
             "fusedadam-cpu+kahan"]
    assert main(["bench", "--presets", "flat-10k", "--impls", *impls, "--repeats", "1", "--dtype", "bf16", "fp32",
                 "--json", str(path)]) == 0
    moved = {(r["impl"], r["dtype"]): r["bytes_per_param"] for r in json.loads(path.read_text())["results"]}
    assert moved == {("fusedadam-cpu", "bfloat16"): 14, ("fusedadam-cpu+master", "bfloat16"): 28,
                     ("fusedadam-cpu+stochastic", "bfloat16"): 14, ("fusedadam-cpu+kahan", "bfloat16"): 18,
                     ("fusedadam-cpu", "float32"): 28, ("fusedadam-cpu+bf16-states", "float32"): 20,
                     ("ceiling (4R+3W probe)", "bfloat16"): 14, ("ceiling (4R+3W probe)", "float32"): 28}
    # bf16 states on bf16 parameters, and the bf16-only modes on fp32 ones, would repeat a plain row: left out, said so.
    err = capsys.readouterr().err
    assert "fusedadam-cpu+bf16-states skipped for bfloat16: its options change nothing" in err
    assert "fusedadam-cpu+master skipped for float32" in err


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="--plot needs matplotlib")
    path = tmp_path / "chart.png"
    assert main(["bench", "--presets", "flat-10k", "--impls", "torch-fused", "fusedadam-cpu", "--repeats", "1",
                 "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_runs_the_readme_command():
    out = subprocess.run([sys.executable, "-m", "fusedadam", "bench", "--quick"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    for preset in ("flat-50m", "many-small-5000x1000", "host-1000x16"):
        assert preset in out.stdout


def test_profile_reports_ops_and_writes_a_trace(tmp_path, capsys):
    trace = tmp_path / "trace.json"
    assert main(["profile", "--preset", "resnet50", "--steps", "2", "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    for text in ("host time per step", "op calls per step", "achieved bandwidth", "fusedadam::adam_step_cpu"):
        assert text in out
    assert "traceEvents" in json.loads(trace.read_text())


@pytest.mark.parametrize("argv, message", [
    (["bench", "--presets", "nope"], "unknown preset 'nope'"),
    (["bench", "--impls", "nope"], "unknown implementation 'nope'"),
    (["bench", "--impls", "fusedadam-cpu", "--device", "cuda", "--presets", "host-1000x16"], "cannot run here"),
    (["bench", "--impls", "deepspeed-cpuadam", "--presets", "host-1000x16"], "deepspeed is not installed"),
    (["profile", "--preset", "flat-x"], "unknown preset 'flat-x'"),
])
def test_argument_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["bench", "--repeats", "0"], ["profile", "--steps", "0"], ["bench", "--dtype", "x"]])
def test_argument_errors_from_argparse(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2


def test_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "fusedadam", "bench", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--quick" in out.stdout and "--plot" in out.stdout


def test_presets_have_the_published_sizes():
    assert get("gpt2-124m").numel == 124_439_808
    assert get("resnet50").numel == 25_557_032 and len(get("resnet50").shapes) == 161
    assert get("flat-50m").numel == 50_000_000 and get("flat-2k").numel == 2_000
    assert set(PRESETS) >= {"flat-50m", "gpt2-124m", "llama-1b", "resnet50", "many-small-5000x1000"}


def _row(impl, fraction, p20, ms, p80):
    return Row(impl=impl, preset="flat-10k", dtype="float32", ms=ms, p20_ms=p20, p80_ms=p80, gbps=1.0,
               fraction_of_ceiling=fraction, ceiling_gbps=1.0, vs_torch_fused=None, numel=10_000, tensors=1,
               bytes_per_param=28)


def test_distrust_names_a_step_faster_than_the_ceiling_and_a_wide_spread():
    trusted = [_row(CEILING, 1.0, 0.95, 1.0, 1.05), _row("torch-fused", 1.04, 0.95, 1.0, 1.09),
               _row("torch-forloop", 0.3, 1.0, 3.0, 9.0)]  # allocating peers are not judged
    assert distrust(trusted) == []
    reasons = distrust(trusted + [_row("fusedadam-cpu", 1.22, 0.95, 1.0, 1.05), _row("torch-foreach", 2.0, 1, 1, 1),
                                  _row("torch-fused", 0.9, 0.9, 1.0, 1.2)])
    assert reasons == ["fusedadam-cpu at 122% of the ceiling", "torch-fused's p20..p80 spread 30% of its median"]


@pytest.mark.parametrize("noisy_measurements", [1, 3])
def test_a_noisy_preset_is_measured_again_and_then_reported(monkeypatch, noisy_measurements):
    """Distrusted numbers make the preset measure more rounds (the allocating peers are not re-run); numbers still
    distrusted after the last measurement are marked, and the table says so."""
    verdicts = iter([["torch-fused at 130% of the ceiling"]] * noisy_measurements + [[]])
    monkeypatch.setattr(bench_run, "distrust", lambda rows: next(verdicts))
    log, rounds = [], []
    report = bench_run.run(["flat-10k"], ["torch-forloop", "torch-fused", "fusedadam-cpu"], [torch.float32],
                           torch.device("cpu"), repeats=2, warmup=1, log=log.append, on_round=lambda: rounds.append(1))
    measured = min(noisy_measurements + 1, bench_run.MEASUREMENTS)
    assert len(rounds) == 2 * (1 + measured)  # the for-loop phase once, the others once per measurement
    again = [line for line in log if "measuring 2 more rounds" in line]
    assert len(again) == measured - 1
    noise = {r["noise"] for r in report["results"]}
    if noisy_measurements < bench_run.MEASUREMENTS:
        assert noise == {None} and "NOT TRUSTWORTHY" not in format_table(report)
    else:
        assert noise == {"torch-fused at 130% of the ceiling"}
        assert any("too noisy" in line for line in log)
        assert "NOT TRUSTWORTHY, the machine was too noisy: flat-10k float32" in format_table(report)
