"""The example trains a real model with torch.optim.AdamW and with FusedAdamW: the curves must agree (a
wrong bias correction or decay separates them by more than 1e-2 within a few steps) and the loss fall."""
import importlib.util
import json
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "char_transformer.py"


def test_char_transformer_loss_curves_agree(tmp_path):
    spec = importlib.util.spec_from_file_location("char_transformer", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "losses.json"
    assert example.main(["--steps", "12", "--batch", "8", "--json", str(out), "--out", str(tmp_path / "c.png")]) == 0
    result = json.loads(out.read_text())
    torch_losses, fused_losses = result["curves"].values()
    assert len(torch_losses) == len(fused_losses) == 12
    assert result["max_abs_difference"] < 1e-4
    assert fused_losses[-1] < fused_losses[0] - 0.5
    assert (tmp_path / "c.png").stat().st_size > 0


def test_precision_modes_example_trains_in_every_mode(tmp_path):
    spec = importlib.util.spec_from_file_location("precision_modes", EXAMPLE.with_name("precision_modes.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "losses.json"
    chart = tmp_path / "modes.png"
    assert example.main(["--steps", "8", "--batch", "4", "--json", str(out), "--out", str(chart)]) == 0
    assert chart.stat().st_size > 0
    curves = json.loads(out.read_text())["curves"]
    assert set(curves) == set(example.RUNS)
    for label, losses in curves.items():
        assert len(losses) == 8 and losses[-1] < losses[0] - 0.3, label
