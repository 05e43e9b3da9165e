"""Bar chart of benchmark medians (run by benchmarks/run.py with the peers venv's matplotlib)."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"pip": "#4c72b0", "uv": "#dd8452", "wheelstream": "#55a868", "wheelstream-hardlink": "#8fd18f"}


def main(spec_path: str, out: str) -> None:
    with open(spec_path) as handle:
        spec = json.load(handle)
    scenarios = list(spec["titles"])
    tools = spec["tools"]
    fig, axes = plt.subplots(1, len(scenarios), figsize=(3.6 * len(scenarios), 3.8), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        names = [t for t in tools if f"{scenario}|{t}" in spec["values"]]
        values = [spec["values"][f"{scenario}|{t}"] for t in names]
        bars = ax.bar(range(len(names)), values, color=[COLORS.get(n, "grey") for n in names])
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(
            range(len(names)), [n.replace("wheelstream-", "ws-") for n in names], rotation=25, fontsize=8
        )
        ax.set_title(spec["titles"][scenario], fontsize=9)
        ax.set_ylabel("seconds (median, lower is better)", fontsize=8)
        ax.margins(y=0.15)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
