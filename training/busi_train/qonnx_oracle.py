"""qonnx as the oracle: the real qonnx library (cleanup, ModelWrapper, execute_onnx
with onnxruntime for the standard nodes) runs a QONNX file on the same
pre-processed images as cpu_int runs its package. Needs the .venv interpreter
(requirements/python.txt) and the busi_infer bindings on PYTHONPATH.

  PYTHONPATH=build/bindings/python .venv/bin/python -m busi_train.qonnx_oracle \
      ../models/busi-w2a4.qonnx.onnx ../models/busi-w2a4.bqnn [--stride 1]

Prints how many images agree on top-1 (where cpu_int's int32 logits tie at the
top, any tied class agrees; top1_ties counts those images) and how many have
logits equal to cpu_int's int32 logits times the package's logit_scale
(relative tolerance 1e-5 of the largest logit: qonnx computes in float32).

One deviation from a bare execute_onnx: the input's UINT8 annotation is checked
here, once per batch (every pixel an integer in 0..255), and the tensor is then
marked FLOAT32 for execution, because qonnx's own check (sanitize_quant_values)
tests each of the 65,025 pixels of each image in a Python loop (0.37 s of the 0.4
s an image costs). Nothing else is changed: the arithmetic is qonnx's.
"""
import argparse
import time

import numpy as np
import onnx

LOGIT_RTOL = 1e-5


class qonnx_runner:
    def __init__(self, path, batch=54):
        from qonnx.core.datatype import DataType
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.util.cleanup import cleanup_model
        m = onnx.load(str(path))
        del m.graph.value_info[:]  # shapes recorded for batch 1 (Brevitas) are inferred anew
        consts = {t.name for t in m.graph.initializer}
        for v in [v for v in m.graph.input if v.name not in consts] + list(m.graph.output):
            v.type.tensor_type.shape.dim[0].dim_value = batch
        self.model = cleanup_model(ModelWrapper(m))
        self.batch = batch
        self.input = next(v.name for v in self.model.graph.input
                          if self.model.get_initializer(v.name) is None)
        self.input_type = self.model.get_tensor_datatype(self.input)
        self.model.set_tensor_datatype(self.input, DataType["FLOAT32"])
        self.output = self.model.graph.output[0].name
        last = self.model.find_producer(self.output)
        self.top1 = last.op_type in ("TopK", "ArgMax")
        self.logits = last.input[0] if self.top1 else self.output

    def run(self, images):
        """images: uint8 [n][H][W] -> (top-1 indices, logits [n][classes]) as qonnx computes them."""
        import qonnx.core.onnx_exec as oxe
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError("images must be uint8 pixels")
        if self.input_type.name != "FLOAT32":
            lo, hi = self.input_type.min(), self.input_type.max()
            assert lo <= 0 and hi >= 255, f"input annotated {self.input_type.name}"
        tops, logits = [], []
        for start in range(0, len(images), self.batch):
            chunk = images[start:start + self.batch]
            n = len(chunk)
            x = np.zeros((self.batch, 1) + chunk.shape[1:], np.float32)
            x[:n, 0] = chunk
            ctx = oxe.execute_onnx(self.model, {self.input: x}, return_full_exec_context=True)
            lg = np.asarray(ctx[self.logits])[:n]
            logits.append(lg)
            tops.append(np.asarray(ctx[self.output]).reshape(self.batch, -1)[:n, 0].astype(np.int64)
                        if self.top1 else lg.argmax(axis=1))
        return np.concatenate(tops), np.concatenate(logits)


def compare(qonnx_path, package_path, images, busi_infer):
    """Top-1 and logits of qonnx on qonnx_path against cpu_int on package_path."""
    clf = busi_infer.Classifier("cpu_int", model=str(package_path))
    scale = _logit_scale(package_path)
    t = time.time()
    runner = qonnx_runner(qonnx_path)
    q_top, q_logits = runner.run(images)
    q_time = time.time() - t
    preds = [clf.classify(img) for img in images]
    c_top = np.array([p.class_index for p in preds])
    c_logits = np.array([p.logits for p in preds], np.float64) * scale
    tol = LOGIT_RTOL * max(1.0, float(np.abs(q_logits).max()))
    logit_ok = np.all(np.abs(q_logits - c_logits) <= tol, axis=1)
    # Where cpu_int's int32 logits tie at the top, it reports the first class
    # (ArgMax's rule, checked here too); qonnx's float32 products may order the
    # tied ones either way, so any of the tied classes agrees.
    c_best = c_logits.max(axis=1)
    top1_ok = (c_top == c_logits.argmax(axis=1)) & (c_logits[np.arange(len(c_top)), q_top] == c_best)
    return {"images": len(images), "top1_equal": int(top1_ok.sum()),
            "top1_ties": int((np.sum(c_logits == c_best[:, None], axis=1) > 1).sum()),
            "logits_equal": int(logit_ok.sum()),
            "max_logit_error": float(np.abs(q_logits - c_logits).max()),
            "qonnx_seconds": q_time, "top1_disagreements": np.nonzero(~top1_ok)[0].tolist(),
            "logit_differences": np.nonzero(~logit_ok)[0].tolist(), "logits_tensor": runner.logits,
            "qonnx_logits": q_logits, "cpu_int_logits": c_logits}


def _logit_scale(package_path):
    from .int_reference import read_package
    return read_package(package_path)[0]["logit_scale"]


def busi_images(root, stride=1):
    import busi_infer
    from . import data
    items = data.list_images(root)[::stride]
    return [rel for rel, _ in items], np.stack([busi_infer.load_image(str(root / rel)) for rel, _ in items])


def main(argv=None):
    import busi_infer
    from . import data
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("qonnx")
    p.add_argument("package")
    p.add_argument("--stride", type=int, default=1, help="every n-th BUSI image")
    args = p.parse_args(argv)
    names, images = busi_images(data.data_root(), args.stride)
    r = compare(args.qonnx, args.package, images, busi_infer)
    for key in ("top1_disagreements", "logit_differences"):
        r[key] = [names[i] for i in r[key]]
    print({k: v for k, v in r.items() if not k.endswith("_logits")})


if __name__ == "__main__":
    main()
