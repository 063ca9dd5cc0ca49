"""One short epoch on a few BUSI images, float then W2A4 from it, exported to a
package the C++ side loads and runs with the numpy reference's logits."""
import json

import numpy as np
import pytest

from busi_train import data, export, int_reference, train


def test_train_one_epoch_export_and_load_in_cpp(busi_root, tmp_path):
    common = ["--epochs", "1", "--limit", "8", "--threads", "1", "--cache", ""]
    float_run = train.main(["--out", str(tmp_path / "float")] + common)
    assert float_run["epochs"] == 1 and 0 <= float_run["best_val_accuracy"] <= 1
    train.main(["--out", str(tmp_path / "q"), "--wbits", "2", "--abits", "4", "--lr", "1e-4",
                "--init", str(tmp_path / "float" / "best.pt")] + common)
    export.main([str(tmp_path / "q" / "best.pt"), "--name", "smoke-w2a4",
                 "--bqnn", str(tmp_path / "q.bqnn"), "--onnx", str(tmp_path / "q.onnx")])
    export.main([str(tmp_path / "float" / "best.pt"), "--name", "smoke-float",
                 "--bqnn", str(tmp_path / "f.bqnn"), "--onnx", str(tmp_path / "f.onnx")])
    header, layers = int_reference.read_package(tmp_path / "q.bqnn")
    assert header["provenance"]["training_config"]["wbits"] == 2

    busi_infer = pytest.importorskip("busi_infer", reason="busi_infer bindings not on PYTHONPATH")
    model = busi_infer.Model.load(str(tmp_path / "q.bqnn"))
    assert model.kind == "quantized" and model.name == "smoke-w2a4"
    assert json.loads(model.provenance_json)["selected_epoch"] == 1
    rel = data.read_split("val")[0][0]
    p = busi_infer.Classifier("cpu_int", model=model).classify(str(busi_root / rel))
    _, logits = int_reference.predict(header, layers, data.load_image(busi_root / rel))
    assert list(p.logits) == logits.tolist()
    assert busi_infer.Model.load(str(tmp_path / "f.bqnn")).kind == "float"
