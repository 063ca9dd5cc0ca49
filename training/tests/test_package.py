"""The package writer, the threshold folding and the independent numpy reference."""
from pathlib import Path

import numpy as np
import pytest
import torch

from busi_train import data, export, fold, int_reference, package
from busi_train.model import busi_net
from busi_train.package import pack_signed

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_packing_round_trips_through_the_independent_unpacker(bits):
    rng = np.random.default_rng(bits)
    q = package.WEIGHT_RANGE[bits]
    for count in (1, 3, 7, 13, 100):
        v = rng.integers(-q, q + 1, count)
        blob = pack_signed(v, bits)
        assert len(blob) == (count * bits + 7) // 8
        assert np.array_equal(int_reference.unpack_signed(blob, bits, count), v)


def test_packing_bit_order_is_finns():
    # int2 [1, -1, 0, 1]: codes 01, 11, 00, 01 from bit 0 up -> 0b01_00_11_01
    assert pack_signed([1, -1, 0, 1], 2) == bytes([0b01001101])
    # int4 [-7, 3]: low nibble 1001, high nibble 0011
    assert pack_signed([-7, 3], 4) == bytes([0x39])


def test_packing_rejects_out_of_range():
    with pytest.raises(ValueError, match="narrow int2"):
        pack_signed([2], 2)
    with pytest.raises(ValueError, match="narrow int8"):
        pack_signed([-128], 8)


def random_trained_like(wbits, abits, seed, ends_wbits=None, weight_quant="uniform", act_quant="uniform"):
    """A quantized network with random weights, BatchNorm statistics and some
    negative and zero BatchNorm scales, calibrated on random images (and, for the
    quantizers that change per epoch, taken through a last QAT epoch's start, so
    inq-pow2 has frozen every weight)."""
    torch.manual_seed(seed)
    model = busi_net(wbits, abits, ends_wbits, weight_quant, act_quant)
    with torch.no_grad():
        for layer in model.layers():
            if layer.last:
                continue
            n = layer.bn.num_features
            layer.bn.weight.copy_(torch.randn(n))
            layer.bn.weight[0] = 0.0  # a constant channel
            layer.bn.bias.copy_(torch.randn(n) * 0.5)
    x = torch.randint(0, 256, (8, 1, 255, 255)).float() / 255
    model.train()
    with torch.no_grad():
        for _ in range(3):  # running statistics that fit the data
            model(x)
    model.eval()
    model.init_quantizers(x)
    if model.calibrates_every_epoch:
        model.epoch_start_quantizers(x, epoch=4, n_epochs=4)
    return model


@pytest.mark.parametrize("wbits,abits,ends_wbits,weight_quant,act_quant", [
    (2, 4, None, "uniform", "uniform"), (4, 2, None, "uniform", "uniform"), (8, 8, None, "uniform", "uniform"),
    (2, 4, 8, "uniform", "uniform"),
    # The seed papers' quantizers (quant.py): power-of-two weights at 4 bits (at 2
    # they equal the uniform grid), quantile steps, k-means activation boundaries.
    (4, 4, None, "inq-pow2", "uniform"), (2, 4, None, "heq", "heq"), (2, 4, None, "uniform", "kmeans")])
def test_integer_reference_equals_the_pytorch_quantized_forward(wbits, abits, ends_wbits, weight_quant, act_quant):
    model = random_trained_like(wbits, abits, seed=wbits * 10 + abits, ends_wbits=ends_wbits,
                                weight_quant=weight_quant, act_quant=act_quant)
    layers, scale = fold.quantized_layers(model)
    weighted = [l for l in layers if l["type"] != "maxpool"]
    ends = ends_wbits or wbits
    assert [l["weight_bits"] for l in weighted] == [ends] + [wbits] * (len(weighted) - 2) + [ends]
    assert any((l.get("thresholds") is not None) and
               (l["thresholds"] == fold.INT32_MIN).any() for l in layers)
    blob = package.build_package("t", "quantized", layers, {"test": True}, logit_scale=scale)
    header, ref_layers = int_reference.read_package(blob)
    images = np.random.default_rng(0).integers(0, 256, (4, 1, 255, 255)).astype(np.uint8)
    with torch.no_grad():
        expected = model(torch.from_numpy(images).float() / 255).double().numpy()
    for img, exp in zip(images, expected):
        logits = int_reference.forward(header, ref_layers, img)
        assert logits.dtype == np.int64
        np.testing.assert_allclose(logits * header["logit_scale"], exp, rtol=1e-4,
                                   atol=1e-6 * np.abs(exp).max())


def test_float_package_equals_the_float_network():
    torch.manual_seed(3)
    model = busi_net()
    x = torch.rand(4, 1, 255, 255)
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    blob = package.build_package("f", "float", fold.float_layers(model), {})
    header, layers = int_reference.read_package(blob)
    assert header["kind"] == "float" and "logit_scale" not in header
    images = (x * 255).round().to(torch.uint8)
    with torch.no_grad():
        expected = model(images.float() / 255).double().numpy()
    for img, exp in zip(images.numpy(), expected):
        np.testing.assert_allclose(int_reference.forward(header, layers, img), exp,
                                   rtol=1e-4, atol=1e-5 * np.abs(exp).max())


def test_container_is_checked():
    model = random_trained_like(2, 4, seed=5)
    layers, scale = fold.quantized_layers(model)
    blob = bytearray(package.build_package("t", "quantized", layers, {}, logit_scale=scale))
    header, _ = int_reference.read_package(bytes(blob))
    assert header["format"] == "busi-qnn" and header["input"]["preprocess"] == "gray-area-v1"
    assert [l["type"] for l in header["layers"]] == \
        ["conv", "maxpool"] * 5 + ["conv", "dense", "dense", "dense"]
    blob[100] ^= 1
    with pytest.raises(int_reference.package_error, match="CRC"):
        int_reference.read_package(bytes(blob))


def test_qonnx_graph_predicts_like_the_quantized_network():
    import onnx
    from busi_train import qonnx_numpy
    model = random_trained_like(2, 4, seed=7)
    m = export.qonnx_model(model, "t")
    quants = [n for n in m.graph.node if n.op_type == "Quant"]
    assert len(quants) == 9 + 8 and all(n.domain == export.QONNX_DOMAIN for n in quants)
    assert m.graph.node[0].op_type == "Div" and m.graph.node[-1].op_type == "TopK"
    images = np.random.default_rng(1).integers(0, 256, (3, 1, 255, 255)).astype(np.float64)
    env = qonnx_numpy.run(onnx.load_from_string(m.SerializeToString()), images)
    with torch.no_grad():
        expected = model(torch.from_numpy(images).float() / 255).double().numpy()
    assert env["global_out"].ravel().tolist() == expected.argmax(axis=1).tolist()
    last_acc = [n for n in m.graph.node if n.op_type == "MatMul"][-1].output[0]
    np.testing.assert_allclose(env[last_acc], expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())


def test_float_onnx_runs_in_opencv_like_pytorch(tmp_path):
    cv2 = pytest.importorskip("cv2")
    torch.manual_seed(4)
    model = busi_net()
    model.train()
    with torch.no_grad():
        model(torch.rand(4, 1, 255, 255))
    model.eval()
    export.float_onnx(model, tmp_path / "f.onnx")
    net = cv2.dnn.readNetFromONNX(str(tmp_path / "f.onnx"))
    x = np.random.default_rng(2).integers(0, 256, (2, 1, 255, 255)).astype(np.float32)
    net.setInput(x)
    with torch.no_grad():
        expected = model(torch.from_numpy(x) / 255).numpy()
    np.testing.assert_allclose(net.forward(), expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_input_hashes_are_fnv1a64():
    # FNV-1a 64's published vectors; the C++ side (busi::fnv1a64) is checked on the same.
    as_tensor = lambda s: np.frombuffer(s, np.uint8).reshape(1, len(s))
    assert int(package.input_hashes(as_tensor(b"a"))[0]) == 0xaf63dc4c8601ec8c
    assert int(package.input_hashes(as_tensor(b"foobar"))[0]) == 0x85944171f73967e8
    # N images at once give what each gives alone, row-major.
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (5, 7, 9), dtype=np.uint8)
    assert [int(package.input_hashes(im)[0]) for im in batch] == [int(h) for h in package.input_hashes(batch)]


def test_with_seen_images_adds_the_block_and_changes_nothing_else():
    import json
    import struct
    model = busi_net(2, 4)
    layers, scale = fold.quantized_layers(model)
    original = package.build_package("m", "quantized", layers, {"note": "x"}, logit_scale=scale)

    def split(b):
        n = struct.unpack("<I", b[12:16])[0]
        return json.loads(b[16:16 + n]), b[16 + n:-4]

    hashes = np.array([9, 3, 3, 2**64 - 1], dtype=np.uint64)
    added = package.with_seen_images(original, hashes)
    head0, payload0 = split(original)
    head1, payload1 = split(added)
    block = head1.pop("seen_images")
    assert head1 == head0 and payload1[:len(payload0)] == payload0
    assert block["hash"] == "fnv1a64-gray-area-v1" and block["count"] == 3
    blob = payload1[block["hashes"]["offset"]:][:block["hashes"]["size"]]
    assert np.frombuffer(blob, "<u8").tolist() == [3, 9, 2**64 - 1]
    # Writing it again replaces the block; build_package writes the same bytes.
    assert package.with_seen_images(added, hashes) == added
    assert package.build_package("m", "quantized", layers, {"note": "x"}, logit_scale=scale,
                                 seen_hashes=hashes) == added


def test_seen_refuses_a_package_trained_on_another_split(tmp_path):
    from busi_train import seen
    model = busi_net(2, 4)
    layers, scale = fold.quantized_layers(model)
    other = tmp_path / "other.bqnn"
    other.write_bytes(package.build_package("m", "quantized", layers, {"split_sha256": {"train": "abc"}},
                                            logit_scale=scale))
    with pytest.raises(SystemExit, match="names training split abc, not train.txt"):
        seen.main([str(other)])
    assert seen.training_split_of(other.read_bytes()) == "abc"  # untouched


def test_the_two_site_model_records_every_development_image_as_seen(busi_root):
    """busi-w2a4-2site was trained by busi_train.cv --final on all of BUSI and
    BUS-BRA: its package says so and records them all, so busi-infer never
    reports an accuracy on images it trained on."""
    header, body = package.read_container((REPO / "models" / "busi-w2a4-2site.bqnn").read_bytes())
    prov = header["provenance"]
    assert prov["training_config"]["recipe"] == "robust-noseg-crops" and prov["training_config"]["eval_images"] == 0
    assert prov["training_config"]["train_images"] == 2052 and "split_sha256" not in prov
    assert "BUS-BRA" in prov["dataset"] and prov["selection"].startswith("none")
    blob = header["seen_images"]["hashes"]
    seen = set(np.frombuffer(body[blob["offset"]:blob["offset"] + blob["size"]], "<u8").tolist())
    assert header["seen_images"]["count"] == len(seen) > 2000
    busi = [data.load_image(busi_root / rel) for rel, _ in data.list_images(busi_root)[::50]]
    bra_root = busi_root.parent / "busbra" / "images"
    if not bra_root.is_dir():
        pytest.skip(f"BUS-BRA not found at {bra_root}")
    bra = [data.load_image(p) for p in sorted(bra_root.glob("*.png"))[::150]]
    assert all(int(h) in seen for h in package.input_hashes(np.stack(busi + bra)))
