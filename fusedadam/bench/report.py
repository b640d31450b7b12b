"""The benchmark report for people: a table (rich when installed) and a PNG chart (matplotlib)."""
from __future__ import annotations

from pathlib import Path

COLUMNS = ("preset", "dtype", "implementation", "median ms", "p20..p80 ms", "GB/s", "of ceiling", "vs torch-fused")
_LEFT = 3  # the first three columns are names


def _cells(row: dict) -> tuple[str, ...]:
    vs = f"{row['vs_torch_fused']:.2f}x" if row["vs_torch_fused"] is not None else ""
    return (row["preset"], row["dtype"], row["impl"], f"{row['ms']:.3f}", f"{row['p20_ms']:.3f}..{row['p80_ms']:.3f}",
            f"{row['gbps']:.1f}", f"{row['fraction_of_ceiling']:.1%}", vs)


def noise_lines(report: dict) -> list[str]:
    """One line per preset whose numbers the run could not trust (bench.run.distrust), after every measurement."""
    noisy = {(r["preset"], r["dtype"]): r["noise"] for r in report["results"] if r.get("noise")}
    return [f"NOT TRUSTWORTHY, the machine was too noisy: {preset} {dtype}: {why}"
            for (preset, dtype), why in noisy.items()]


def format_table(report: dict) -> str:
    """Plain text, for logs and files."""
    rows = [COLUMNS] + [_cells(r) for r in report["results"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = [f"device: {report['device']}"]
    for index, cells in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < _LEFT else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))
        if index == 0:
            lines.append("-" * len(lines[-1]))
    return "\n".join(lines + noise_lines(report))


def print_table(report: dict) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(format_table(report))
        return
    table = Table(title=f"AdamW step, {report['device']}", title_justify="left")
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i < _LEFT else "right")
    previous = None
    for row in report["results"]:
        if previous is not None and (row["preset"], row["dtype"]) != previous:
            table.add_section()
        previous = (row["preset"], row["dtype"])
        style = "bold" if row["impl"].startswith("fusedadam") else ("dim" if row["impl"].startswith("ceiling") else None)
        table.add_row(*_cells(row), style=style)
    console = Console()
    console.print(table)
    for line in noise_lines(report):
        console.print(line, style="bold red")


def plot(report: dict, path: str) -> None:
    """Fraction of the ceiling per preset and implementation, as grouped bars."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise SystemExit(f"--plot needs matplotlib ({error}); pip install matplotlib") from error
    rows = [r for r in report["results"] if not r["impl"].startswith("ceiling")]
    multiple_dtypes = len({r["dtype"] for r in rows}) > 1
    for r in rows:
        r["group"] = f"{r['preset']}\n{r['dtype']}" if multiple_dtypes else r["preset"]
    presets = list(dict.fromkeys(r["group"] for r in rows))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    width = 0.8 / max(1, len(impls))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(presets) * max(1, len(impls)) / 3), 4.5))
    for k, impl in enumerate(impls):
        values = {r["group"]: r["fraction_of_ceiling"] for r in rows if r["impl"] == impl}
        xs = [i + (k - (len(impls) - 1) / 2) * width for i in range(len(presets))]
        ax.bar(xs, [100 * values.get(p, 0.0) for p in presets], width, label=impl)
    ax.axhline(100, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(presets)), presets)
    ax.set_ylabel("% of the bandwidth ceiling (same run)")
    ax.set_title(f"AdamW step, {report['device']}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
