"""Collects the bit-width study's runs into markdown: validation accuracy per
weight x activation width beside the paper's Table V, and the confusion matrix
with normal-versus-abnormal figures for a chosen run.

  /usr/bin/python3 -m busi_train.study runs
  /usr/bin/python3 -m busi_train.study runs w2a4 w2a4-distill   # named runs side by side
"""
import json
import sys
from pathlib import Path

from .data import CLASSES

# The paper's Table V (seeds/000): accuracy (%) by weight (rows)
# and activation (columns) width, checkpoints chosen on its test set.
PAPER_TABLE_V = {(8, 8): 83.3, (8, 4): 88.4, (8, 2): 84.6,
                 (4, 8): 84.6, (4, 4): 89.7, (4, 2): 88.4,
                 (2, 8): 85.8, (2, 4): 91.0, (2, 2): 78.2}
PAPER_FLOAT = 89.0
BITS = (8, 4, 2)


def load_runs(root):
    """Per run folder: the selected checkpoint's epoch and validation figures
    (best.pt), the epochs actually run (log.jsonl: a run stopped by a time limit
    has fewer than planned) and its configuration."""
    import torch
    runs = {}
    for best in sorted(Path(root).glob("*/best.pt")):
        ck = torch.load(best, map_location="cpu")
        c = ck["config"]
        log = (best.parent / "log.jsonl").read_text().splitlines()
        s = {"best_epoch": ck["epoch"], "best_val_accuracy": ck["val"]["accuracy"],
             "best_val_confusion": ck["val"]["confusion"], "epochs": len(log),
             "planned_epochs": c["epochs"], "config": c, "run": best.parent.name}
        key = (c["wbits"], c["abits"]) if c.get("wbits") else "float"
        if best.parent.name in ("float", f"w{c.get('wbits')}a{c.get('abits')}"):
            runs[key] = s
    return runs


def normal_vs_abnormal(confusion):
    """Abnormal = benign or malignant. Sensitivity: abnormal images called abnormal;
    specificity: normal images called normal."""
    m = confusion
    normal = CLASSES.index("normal")
    abnormal = [i for i in range(len(CLASSES)) if i != normal]
    tn = m[normal][normal]
    fp = sum(m[normal][j] for j in abnormal)
    tp = sum(m[i][j] for i in abnormal for j in abnormal)
    fn = sum(m[i][normal] for i in abnormal)
    return {"sensitivity": tp / (tp + fn), "specificity": tn / (tn + fp),
            "tp": tp, "fn": fn, "tn": tn, "fp": fp}


def confusion_markdown(confusion):
    lines = ["| true \\ predicted | " + " | ".join(CLASSES) + " | recall |",
             "|---|" + "---|" * (len(CLASSES) + 1)]
    for i, name in enumerate(CLASSES):
        row = confusion[i]
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) +
                     f" | {100 * row[i] / max(1, sum(row)):.1f}% |")
    return "\n".join(lines)


def table_markdown(runs):
    def cell(key):
        s = runs.get(key)
        if not s:
            return "not run"
        acc = 100 * s["best_val_accuracy"]
        n = sum(map(sum, s["best_val_confusion"]))
        return f"{acc:.1f} ({round(acc * n / 100)}/{n}, ep {s['best_epoch']}/{s['epochs']})"

    lines = ["| weights \\ activations | " + " | ".join(f"{a} bits: ours (paper)" for a in BITS) + " |",
             "|---|" + "---|" * len(BITS)]
    for w in BITS:
        lines.append(f"| {w} bits | " + " | ".join(
            f"{cell((w, a))} ({PAPER_TABLE_V[(w, a)]})" for a in BITS) + " |")
    lines.append(f"| float | {cell('float')} ({PAPER_FLOAT}) | | |")
    return "\n".join(lines)


def compare_markdown(root, names, tail=10):
    """Named run folders side by side: the selected epoch (best.pt), the last one and the
    mean of the last `tail` (log.jsonl; less optimistic than the selected one), with
    normal-versus-abnormal figures, then each selected confusion matrix."""
    lines = ["| run | selected: accuracy (epoch) | sensitivity | specificity | last epoch: accuracy "
             f"| mean of last {tail} epochs: accuracy, specificity |", "|---|---|---|---|---|---|"]
    matrices = []
    for name in names:
        log = [json.loads(line) for line in (Path(root) / name / "log.jsonl").read_text().splitlines()]
        best = max(log, key=lambda r: (r["val_accuracy"], -r["val_loss"]))  # train.py's choice
        m, last = best["val_confusion"], log[-1]
        n, nva = sum(map(sum, m)), normal_vs_abnormal(m)
        correct = sum(m[i][i] for i in range(len(m)))
        last_correct = sum(last["val_confusion"][i][i] for i in range(len(m)))
        recent = log[-tail:]
        recent_acc = sum(r["val_accuracy"] for r in recent) / len(recent)
        recent_spec = sum(normal_vs_abnormal(r["val_confusion"])["specificity"] for r in recent) / len(recent)
        lines.append(f"| {name} | {100 * correct / n:.1f}% ({correct}/{n}, ep {best['epoch']}/{len(log)}) | "
                     f"{100 * nva['sensitivity']:.1f}% ({nva['tp']}/{nva['tp'] + nva['fn']}) | "
                     f"{100 * nva['specificity']:.1f}% ({nva['tn']}/{nva['tn'] + nva['fp']}) | "
                     f"{100 * last_correct / n:.1f}% ({last_correct}/{n}, ep {last['epoch']}) | "
                     f"{100 * recent_acc:.1f}%, {100 * recent_spec:.1f}% |")
        matrices.append(f"\n{name}, epoch {best['epoch']}:\n\n{confusion_markdown(m)}")
    return "\n".join(lines + matrices)


def main(argv=None):
    argv = argv if argv is not None else sys.argv[1:]
    if len(argv) > 1:
        print(compare_markdown(argv[0], argv[1:]))
        return
    runs = load_runs(argv[0] if argv else "runs")
    print(table_markdown(runs))
    for key in [(2, 4), (4, 4), "float"]:
        if key in runs:
            s = runs[key]
            name = "float" if key == "float" else f"W{key[0]}A{key[1]}"
            nva = normal_vs_abnormal(s["best_val_confusion"])
            print(f"\n{name}, epoch {s['best_epoch']} of {s['epochs']}: validation accuracy "
                  f"{100 * s['best_val_accuracy']:.1f}%\n")
            print(confusion_markdown(s["best_val_confusion"]))
            print(f"\nnormal vs abnormal: sensitivity {100 * nva['sensitivity']:.1f}% "
                  f"({nva['tp']}/{nva['tp'] + nva['fn']}), specificity "
                  f"{100 * nva['specificity']:.1f}% ({nva['tn']}/{nva['tn'] + nva['fp']})")


if __name__ == "__main__":
    main()
