"""busi_infer.Classifier: paths and arrays give the runtime's exact answer."""
import threading

import numpy as np
import pytest

import busi_infer
from conftest import cli_json, synthetic_bgr

cv2 = pytest.importorskip("cv2")


def same(a, b):
    """Two predictions of an integer backend agree bit for bit."""
    return (a.class_index, a.class_name, a.logits, a.scores) == (b.class_index, b.class_name, b.logits, b.scores)


def test_prediction_fields(classifier, png_path):
    path, _ = png_path
    p = classifier.classify(path)
    assert classifier.class_names == ["normal", "benign", "malignant"]
    assert p.class_name == classifier.class_names[p.class_index]
    assert len(p.logits) == len(p.scores) == 3
    assert int(np.argmax(p.logits)) == p.class_index
    assert sum(p.scores) == pytest.approx(1.0, abs=1e-5)
    assert f"class_name='{p.class_name}'" in repr(p)
    assert classifier.backend == "cpu_int"
    assert classifier.describe()


def test_array_equals_path(classifier, png_path):
    path, image = png_path
    reference = classifier.classify(str(path))
    assert same(classifier.classify(path), reference)  # os.PathLike
    assert same(classifier.classify(image), reference)  # BGR, as cv2.imread gives it
    assert same(classifier.classify(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)), reference)
    assert same(classifier.classify(np.ascontiguousarray(image[..., ::-1]), color_order="rgb"), reference)
    bgra = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
    assert same(classifier.classify(bgra), reference)
    assert same(classifier.classify(np.ascontiguousarray(bgra[..., [2, 1, 0, 3]]), color_order="rgb"), reference)


def test_gray_and_16_bit_arrays_equal_their_files(classifier, tmp_path):
    gray = cv2.cvtColor(synthetic_bgr(300, 210, seed=3), cv2.COLOR_BGR2GRAY)
    wide = (synthetic_bgr(200, 333, seed=4).astype(np.uint16) * 257 + 100).astype(np.uint16)
    for name, image in (("gray.png", gray), ("wide16.png", wide)):
        path = tmp_path / name
        assert cv2.imwrite(str(path), image)
        assert same(classifier.classify(image), classifier.classify(path)), name
    assert same(classifier.classify(gray[..., None]), classifier.classify(gray))
    swapped = wide.astype(wide.dtype.newbyteorder(">" if wide.dtype.byteorder != ">" else "<"))
    assert not swapped.dtype.isnative and np.array_equal(swapped, wide)
    assert not busi_infer._core._wraps_without_copy(swapped)
    assert same(classifier.classify(swapped), classifier.classify(wide))


def test_same_answer_as_the_cli(classifier, tmp_path):
    paths = []
    for seed in range(3):  # no spaces: the CLI's path arguments do not take them (yet)
        paths.append(tmp_path / f"synthetic{seed}.png")
        assert cv2.imwrite(str(paths[-1]), synthetic_bgr(240 + 9 * seed, 270, seed=20 + seed))
    report = cli_json(*paths)
    if report is None:
        pytest.skip("busi-infer is not built")
    assert report["summary"]["backend"] == classifier.backend
    assert report["summary"]["model_path"] == classifier.model.source
    for entry in report["images"]:
        p = classifier.classify(cv2.imread(entry["file"]))
        assert (p.class_index, p.class_name, p.logits) == (entry["class_index"], entry["class"], entry["logits"])
        assert p.scores == pytest.approx(entry["scores"], rel=1e-6)


def test_real_images_array_equals_path(classifier, busi_images):
    for path in busi_images:
        assert same(classifier.classify(cv2.imread(path, cv2.IMREAD_UNCHANGED)), classifier.classify(path)), path


def test_preprocess_is_gray_area_v1(png_path):
    _, image = png_path
    expected = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), (255, 255), interpolation=cv2.INTER_AREA)
    assert np.array_equal(busi_infer.preprocess(image), expected)
    assert np.array_equal(busi_infer.preprocess(image[..., ::-1], color_order="rgb"), expected)
    small = busi_infer.preprocess(image, 31, 17)
    assert small.shape == (31, 17) and small.dtype == np.uint8


def test_load_image_matches_preprocess(png_path):
    path, image = png_path
    assert np.array_equal(busi_infer.load_image(path), busi_infer.preprocess(image))


@pytest.mark.parametrize("layout", ["padded_rows", "sub_window", "gray_padded"])
def test_strided_arrays_are_read_in_place(classifier, layout):
    big = synthetic_bgr(300, 280, seed=5)
    view = {
        "padded_rows": big[:, :256],       # rows 280*3 bytes apart, 256 pixels used
        "sub_window": big[10:266, 7:263],  # an offset window into a larger image
        "gray_padded": cv2.cvtColor(big, cv2.COLOR_BGR2GRAY)[5:, 3:259],
    }[layout]
    assert not view.flags.c_contiguous
    assert busi_infer._core._wraps_without_copy(view)
    assert same(classifier.classify(view), classifier.classify(np.ascontiguousarray(view)))


@pytest.mark.parametrize("layout", ["every_other", "flipped_rows", "fortran", "channels_reversed", "transposed"])
def test_other_layouts_are_copied_and_still_exact(classifier, layout):
    image = synthetic_bgr(260, 250, seed=6)
    view = {
        "every_other": image[::2, ::2],
        "flipped_rows": image[::-1],
        "fortran": np.asfortranarray(image),
        "channels_reversed": image[..., ::-1],
        "transposed": image.transpose(1, 0, 2),
    }[layout]
    assert not busi_infer._core._wraps_without_copy(view)
    assert same(classifier.classify(view), classifier.classify(np.ascontiguousarray(view)))


def test_batch_equals_single_calls(classifier, png_path):
    path, image = png_path
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    inputs = [path, image, gray, str(path), image[::-1]]
    batch = classifier.classify_batch(inputs)
    assert len(batch) == len(inputs)
    for item, p in zip(inputs, batch):
        assert same(p, classifier.classify(item))
    assert classifier.classify_batch([]) == []
    assert len(classifier.classify_batch(x for x in [gray, gray])) == 2  # any iterable


def test_shared_model_and_default_model(backend):
    first = busi_infer.Classifier(backend)
    model = first.model
    assert model.kind == "quantized" and model.input_shape == (1, 255, 255)
    second = busi_infer.Classifier(backend, model=model)  # shares it
    del first  # the Model handle keeps what it points into alive
    third = busi_infer.Classifier(backend, model=busi_infer.Model.load(model.source))
    fourth = busi_infer.Classifier(backend, model=model.source)
    image = synthetic_bgr(seed=7)
    p = second.classify(image)
    assert same(third.classify(image), p) and same(fourth.classify(image), p)
    assert model.name == second.model.name


def test_one_instance_from_many_threads(classifier):
    images = [synthetic_bgr(256, 256, seed=s) for s in range(3)]
    expected = [classifier.classify(image) for image in images]
    results, errors = {}, []

    def work(t):
        try:
            for i in range(len(images)):
                k = (i + t) % len(images)
                results[(t, k)] = classifier.classify(images[k])
        except Exception as e:  # reported below; an exception in a thread is otherwise lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 3 * len(images)
    for (_, k), p in results.items():
        assert same(p, expected[k])


def test_model_knows_its_training_images(busi_dir, png_path):
    # The shipped package records the 624 images of training/splits/train.txt.
    from conftest import SOURCE_DIR
    model = busi_infer.Model.load(SOURCE_DIR / "models" / "busi-w2a4.bqnn")
    assert model.seen_images == 624
    split = lambda name: (SOURCE_DIR / "training" / "splits" / f"{name}.txt").read_text().split("\n")
    trained, never = split("train")[0], split("val")[0]
    assert model.has_seen(busi_dir / trained)
    cv2 = pytest.importorskip("cv2")
    assert model.has_seen(cv2.imread(str(busi_dir / trained), cv2.IMREAD_UNCHANGED))  # an array, the same pixels
    assert not model.has_seen(busi_dir / never)
    assert not model.has_seen(png_path[0])
