"""study.py's side-by-side table of named runs, on a hand-written log."""
import json

from busi_train import study


def test_compare_picks_train_py_epoch_and_reports_last(tmp_path):
    epochs = [  # (accuracy, loss, confusion); epochs 2 and 3 tie on accuracy, 3 has the lower loss
        (0.5, 1.0, [[1, 1, 0], [0, 1, 1], [0, 0, 0]]),
        (0.75, 0.9, [[1, 1, 0], [0, 2, 0], [0, 0, 0]]),
        (0.75, 0.8, [[2, 0, 0], [1, 1, 0], [0, 0, 0]]),
        (0.25, 1.2, [[0, 2, 0], [0, 1, 1], [0, 0, 0]]),
    ]  # mean of the last 3: accuracy 0.575, specificity (0.5 + 1 + 0) / 3
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "log.jsonl").write_text("".join(
        json.dumps({"epoch": i + 1, "val_accuracy": a, "val_loss": l, "val_confusion": m}) + "\n"
        for i, (a, l, m) in enumerate(epochs)))
    row = study.compare_markdown(tmp_path, ["r"], tail=3).splitlines()[2]
    assert row == ("| r | 75.0% (3/4, ep 3/4) | 50.0% (1/2) | 100.0% (2/2) | 25.0% (1/4, ep 4) | 58.3%, 50.0% |"), row
