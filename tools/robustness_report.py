"""The ROI-jitter figure and the per-cue table of issue 18, from `evaluate --roi-jitter N` runs.

    python tools/robustness_report.py --run NAME=runs/eval-x/metrics.json [--run ...] --png OUT.png [--md OUT.md]

Each run is one `dvt-staging evaluate --split all --roi-jitter N` on a phantom dataset (its metrics.json holds
`roi_jitter` and `cues`).  The figure shows, per run, how the redrawn boxes were answered: the same stage,
indeterminate, or another stage (the failure).  The markdown gives the headline figures, the reliance on each
drawn cue (rank correlation of P(acute) - P(chronic) with the cue within a true stage) and the confidently
wrong ROIs with their cues.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(spec: str) -> tuple[str, dict]:
    name, _, path = spec.partition("=")
    return name, json.loads(Path(path).read_text(encoding="utf-8"))


def figure(runs: list[tuple[str, dict]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.9 * len(runs)), dpi=110)
    for row, (name, m) in enumerate(runs):
        j = m["roi_jitter"]
        other = 1.0 - j["stable_rate"]          # a stage other than the original ROI's
        same = j["stable_rate"] - j["indeterminate_rate"]
        left = 0.0
        parts = ((same, "#2b8cbe", "same stage"), (j["indeterminate_rate"], "#bdbdbd", "indeterminate"),
                 (other, "#e34a33", "another stage"))
        for value, colour, label in parts:
            ax.barh(row, value, left=left, color=colour, label=label if row == 0 else None)
            if value >= 0.08:
                ax.text(left + value / 2, row, f"{value:.0%}", ha="center", va="center", fontsize=9)
            left += value
    ax.set_yticks(range(len(runs)), [f"{n}\n{m['roi_jitter']['rois']} ROIs, {m['roi_jitter']['redraws']} redraws, "
                                     f"{m['roi_jitter']['stable_rate']:.1%} stable" for n, m in runs], fontsize=8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of redrawn ROIs (centre moved up to 4 mm, sides x0.8-1.4)")
    ax.axvline(0.9, color="k", ls=":", lw=1)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False, fontsize=8)
    fig.tight_layout()
    fig.savefig(png, bbox_inches="tight")
    plt.close(fig)


def markdown(runs: list[tuple[str, dict]]) -> str:
    lines = ["| run | ROIs | macro F1 | indeterminate | confidently wrong | redraws stable | redraws indeterminate |",
             "|---|---|---|---|---|---|---|"]
    for name, m in runs:
        s, j = m["staging"], m["roi_jitter"]
        lines.append(f"| {name} | {s['n']} | {s['macro_f1']:.3f} | {s['indeterminate_rate']:.1%} | "
                     f"{s['confidently_wrong_rate']:.1%} | {j['stable_rate']:.1%} | {j['indeterminate_rate']:.1%} |")
    cues = sorted({c for _, m in runs for c in (m.get("cues") or {}).get("reliance", {})})
    lines += ["", "Reliance: Spearman correlation of P(acute) - P(chronic) with each drawn cue, within a true stage, "
              "pooled over stages (weights: ROIs per stage).", "",
              "| cue | " + " | ".join(n for n, _ in runs) + " |", "|---|" + "---|" * len(runs)]
    for cue in cues:
        cells = []
        for _, m in runs:
            value = ((m.get("cues") or {}).get("reliance", {}).get(cue) or {}).get("pooled")
            cells.append("—" if value is None else f"{value:+.2f}")
        lines.append(f"| {cue} | " + " | ".join(cells) + " |")
    for name, m in runs:
        wrong = (m.get("cues") or {}).get("confidently_wrong", [])
        lines += ["", f"Confidently wrong ROIs, {name}: {len(wrong)}", ""]
        if wrong:
            keys = ["truth", "answer", "ratio", "vein_scale", "edema_mm", "channels", "wall_thickening_mm", "small"]
            lines += ["| case | roi | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
            for w in wrong:
                cells = [f"{w[k]:.2f}" if isinstance(w[k], float) else str(w[k]) for k in keys]
                lines.append(f"| {w['case']} | {w['roi']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="NAME=path/to/metrics.json")
    ap.add_argument("--png", type=Path, required=True)
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args()
    runs = [_load(spec) for spec in args.run]
    figure(runs, args.png)
    text = markdown(runs)
    if args.md:
        args.md.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
