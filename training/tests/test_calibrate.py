"""The "calibration" block: the Python writer's checks (the C++ reader's twin),
replacing a block without touching the rest of a package, and the fit's
operating points (busi_train.calibrate, docs/safety.md)."""
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from busi_train import calibrate, data, int_reference, negatives, package
from conftest import tool

REPO = Path(__file__).resolve().parents[2]


def synthetic_features(n=400, seed=0):
    """14 image statistics and 3 logits per image, labels 0/1/2, lesions with
    higher abnormal logits."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    stats = rng.normal(0, 1, (n, package.IMAGE_STATISTICS))
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), labels] += 2.0
    return np.hstack([stats, logits]), labels


def test_fit_gives_a_block_the_writer_and_the_runtime_rules_accept():
    features, labels = synthetic_features()
    block = calibrate.fit(features, labels, np.full(len(labels), "one"), np.full(len(labels), "one"), "synthetic")
    assert package.check_calibration(block) is block
    assert block["temperature"] > 0
    assert block["gate"]["accepted_rate"] == pytest.approx(calibrate.ACCEPT, abs=0.01)
    for name, target in (("referral", calibrate.REFERRAL_SENSITIVITY), ("suspicious", calibrate.SUSPICIOUS_SENSITIVITY)):
        point = block[name]
        curve = np.array(point["curve"])
        assert np.all(np.diff(curve[:, 0]) >= 0)
        assert point["sensitivity"] >= target
        # The highest threshold reaching the target: the next one up does not.
        higher = curve[curve[:, 0] > point["threshold"]]
        assert np.all(higher[:, 1] < target)
    # P(abnormal) of the fitted scores against the chosen threshold refers the stated share.
    logits = features[:, package.IMAGE_STATISTICS:]
    p = np.exp(logits / block["temperature"])
    p /= p.sum(1, keepdims=True)
    lesion = labels != 0
    assert np.mean(1 - p[lesion, 0] >= block["referral"]["threshold"]) == pytest.approx(
        block["referral"]["sensitivity"])


def test_the_referral_sensitivity_holds_on_each_source():
    """Two hospitals, one's lesions harder to see: the stated sensitivity is
    reached on each, not only on their pool (where the easy one hides the hard)."""
    features, labels = synthetic_features(800, seed=3)
    sources_of = np.where(np.arange(len(labels)) % 2 == 0, "easy", "hard")
    hard_lesion = (sources_of == "hard") & (labels != 0)
    features[hard_lesion, package.IMAGE_STATISTICS] += 1.5  # a higher normal logit
    block = calibrate.fit(features, labels, sources_of, sources_of, "synthetic")
    p = np.exp(features[:, package.IMAGE_STATISTICS:] / block["temperature"])
    p_abnormal = 1 - p[:, 0] / p.sum(1)
    refer = p_abnormal >= block["referral"]["threshold"]
    per_source = [np.mean(refer[(sources_of == s) & (labels != 0)]) for s in ("easy", "hard")]
    assert min(per_source) >= calibrate.REFERRAL_SENSITIVITY
    assert min(per_source) == pytest.approx(block["referral"]["sensitivity"])
    pooled = calibrate.fit(features, labels, np.full(len(labels), "one"), np.full(len(labels), "one"), "synthetic")
    assert pooled["referral"]["threshold"] > block["referral"]["threshold"]
    assert np.mean(p_abnormal[hard_lesion] >= pooled["referral"]["threshold"]) < calibrate.REFERRAL_SENSITIVITY


def test_the_gate_accepts_its_share_of_each_source():
    """A small hospital whose images sit off the large one's: the gate's
    threshold keeps the stated acceptance on each, not only on the pool."""
    features, labels = synthetic_features(1200, seed=4)
    sources_of = np.where(np.arange(len(labels)) % 10 == 0, "small", "large")
    features[sources_of == "small", :package.IMAGE_STATISTICS] += 1.0
    block = calibrate.fit(features, labels, sources_of, sources_of, "synthetic")
    gate = block["gate"]
    mean = np.array(gate["ood_params"]["mean"])
    distance = calibrate.mahalanobis(features, mean, np.array(gate["ood_params"]["precision"]).reshape(len(mean), -1))
    for s in ("small", "large"):
        assert np.mean(distance[sources_of == s] <= gate["ood_threshold"]) >= calibrate.ACCEPT
    pooled = calibrate.fit(features, labels, np.full(len(labels), "one"), np.full(len(labels), "one"), "synthetic")
    assert np.mean(distance[sources_of == "small"] <= pooled["gate"]["ood_threshold"]) < calibrate.ACCEPT


def test_the_gate_weighs_scanners_alike():
    """A large scanner and a small one whose images sit off it along one
    direction u: the random-effects Gaussian is centred between them and
    expects scanners to differ along u, so a third scanner farther along u is
    accepted, where a plain Gaussian of the pool (centred and shaped by the
    large scanner) refuses most of it. Images off along a direction v in which
    no scanner differs stay refused by both."""
    rng = np.random.default_rng(5)
    dims = package.IMAGE_STATISTICS + 3
    u, v = np.eye(dims)[0], np.eye(dims)[1]
    large, small, unseen = (rng.normal(0, 1, (n, dims)) for n in (1000, 50, 200))
    small += 4 * u
    unseen += 8 * u
    features = np.vstack([large, small])
    labels = rng.integers(0, 3, len(features))
    scanners = np.array(["large"] * len(large) + ["small"] * len(small))
    sources_of = np.full(len(features), "one")
    block = calibrate.fit(features, labels, sources_of, scanners, "synthetic")
    plain = calibrate.fit(features, labels, sources_of, sources_of, "synthetic")
    assert np.allclose(block["gate"]["ood_params"]["mean"], (large.mean(0) + small.mean(0)) / 2)
    nothing_refused = np.zeros(len(unseen), bool)
    assert np.mean(calibrate.gate_accepts(block["gate"], unseen, nothing_refused)) > 0.95
    assert np.mean(calibrate.gate_accepts(plain["gate"], unseen, nothing_refused)) < 0.5
    off = large[:200] + 8 * v
    for fitted in (block, plain):
        assert not calibrate.gate_accepts(fitted["gate"], off, nothing_refused).any()


def test_site_images_widen_the_gate_to_their_scanner_alone():
    """Unlabelled images of a clinic's scanner (--site) join the gate's fit as a
    source of their own: the gate then accepts that scanner at its stated
    share, while the temperature and the curves come from the labelled images
    alone, and images off in a direction no scanner shows stay refused."""
    rng = np.random.default_rng(6)
    features, labels = synthetic_features(1000, seed=6)
    scanners = np.full(len(features), "known")
    clinic = rng.normal(0, 1, (400, features.shape[1])) + 6 * np.eye(features.shape[1])[2]
    site, held = clinic[:200], clinic[200:]
    without = calibrate.fit(features, labels, scanners, scanners, "synthetic")
    block = calibrate.fit(features, labels, scanners, scanners, "synthetic", site_features=site)
    nothing_refused = np.zeros(len(held), bool)
    assert np.mean(calibrate.gate_accepts(without["gate"], held, nothing_refused)) < 0.5
    assert np.mean(calibrate.gate_accepts(block["gate"], site, nothing_refused)) >= calibrate.ACCEPT
    assert np.mean(calibrate.gate_accepts(block["gate"], held, nothing_refused)) > 0.95
    assert block["temperature"] == without["temperature"] and block["referral"] == without["referral"]
    off = features[:200] + 8 * np.eye(features.shape[1])[5]
    assert not calibrate.gate_accepts(block["gate"], off, np.zeros(len(off), bool)).any()


def test_halves_keep_groups_whole_and_split_each_source():
    groups = np.array([f"g{i // 3}" for i in range(60)])
    sources = np.array(["busi"] * 30 + ["busbra"] * 30)
    in_a = calibrate.halves(groups, sources)
    for g in np.unique(groups):
        assert len(set(in_a[groups == g])) == 1
    for s in ("busi", "busbra"):
        assert 0.3 < in_a[sources == s].mean() < 0.7


@pytest.mark.parametrize("edit,needle", [
    (lambda b: b.update(temperature=0), "calibration.temperature = 0 is not a number"),
    (lambda b: b.update(fitted_on=None), "calibration.fitted_on must be a string"),
    (lambda b: b["gate"].update(ood_score="energy"), "calibration.gate.ood_score = 'energy'"),
    (lambda b: b["gate"]["ood_params"].update(mean=[0.0] * 3), "calibration.gate.ood_params.mean must hold 17"),
    (lambda b: b["referral"].update(threshold=1.5), "calibration.referral.threshold = 1.5"),
    (lambda b: b["suspicious"].update(curve=[[0.5, 0.9, 0.5], [0.1, 1.0, 0.1]]),
     "calibration.suspicious.curve: thresholds must be ascending"),
])
def test_writer_refuses_a_malformed_block_naming_the_field(edit, needle):
    features, labels = synthetic_features()
    block = calibrate.fit(features, labels, np.full(len(labels), "one"), np.full(len(labels), "one"), "synthetic")
    edit(block)
    with pytest.raises(ValueError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        package.check_calibration(block)


@pytest.mark.parametrize("name", ["busi-w2a4", "busi-w4a4", "busi-float", "busi-w2a4-2site"])
def test_shipped_packages_carry_a_valid_block_and_replacing_it_keeps_the_rest(name):
    raw = (REPO / "models" / f"{name}.bqnn").read_bytes()
    header, payload = package.read_container(raw)
    package.check_calibration(header["calibration"], len(header["classes"]))
    bare = package.with_calibration(raw, None)
    bare_header, bare_payload = package.read_container(bare)
    assert "calibration" not in bare_header and bare_payload == payload
    assert {k: v for k, v in header.items() if k != "calibration"} == bare_header
    # Put back, the package holds what it held (the key's place in the header may move).
    assert package.read_container(package.with_calibration(bare, header["calibration"])) == (header, payload)
    # The independent reader sees the same network either way.
    h1, l1 = int_reference.read_package(raw)
    h2, l2 = int_reference.read_package(bare)
    for a, b in zip(l1, l2):
        for key in ("w", "t", "b"):
            if key in a:
                assert np.array_equal(a[key], b[key])
    assert json.dumps(h1["provenance"]) == json.dumps(h2["provenance"])


def test_rule_verdicts_decide_as_the_runtime(busi_root, tmp_path):
    """rule_verdicts (for out-of-fold logits, which no package holds) restates
    make_prediction's rules: on images the runtime refers, passes and refuses,
    with the runtime's own features, it must give the runtime's decisions."""
    exe = tool("BUSI_INFER_TOOL")
    if exe is None:
        pytest.skip("BUSI_INFER_TOOL not set (ctest sets it to the built busi-infer)")
    model = REPO / "models" / "busi-w2a4.bqnn"
    items = data.list_images(busi_root)
    paths = [busi_root / rel for rel, _ in items[::35]]
    paths += [p for kind in negatives.write_negatives(tmp_path, seed=3, per_kind=2).values() for p in kind]
    images = calibrate.run_runtime(exe, "cpu_int", model, paths)
    reached = [im for im in images if "ood_features" in im]
    verdict, scores, suspicious = calibrate.runtime_verdicts(reached)
    assert {"refer", "routine", "unreadable"} <= set(verdict), "the images must reach every decision"
    input_refused = np.array([calibrate.refused_by_input_rules(im) for im in reached])
    assert input_refused.any() and (verdict == "unreadable").sum() > input_refused.sum()
    header, _ = package.read_container(model.read_bytes())
    features = np.array([im["ood_features"] for im in reached], float)
    ours = calibrate.rule_verdicts(header["calibration"], features, input_refused)
    assert list(ours[0]) == list(verdict)
    accepted = verdict != "unreadable"
    assert np.allclose(ours[1][accepted], scores[accepted], atol=1e-5)
    assert list(ours[2][accepted]) == list(suspicious[accepted])


def test_the_command_fits_the_gate_on_a_site_folder_and_leaves_out_what_the_input_rules_refuse(busi_root, tmp_path):
    """calibrate --site end to end (one halving): a clinic's folder of LOGIQ 5
    frames plus a colour photograph and a file that is no image; the photograph
    and the broken file are listed as refused by the input rules and kept out
    of the fit, the rest join it, and the written package accepts them."""
    exe = tool("BUSI_INFER_TOOL")
    if exe is None:
        pytest.skip("BUSI_INFER_TOOL not set (ctest sets it to the built busi-infer)")
    shared = busi_root.parent
    if not (shared / "busbra" / "bus_data.csv").is_file():
        pytest.skip(f"BUS-BRA not found at {shared / 'busbra'}")
    rows = [r for r in csv.DictReader(open(shared / "busbra" / "bus_data.csv")) if "Logiq 5" in r["Device"]]
    site = tmp_path / "clinic"
    site.mkdir()
    for r in rows[:30]:
        (site / f"{r['ID']}.png").symlink_to(shared / "busbra" / "images" / f"{r['ID']}.png")
    # A colour frame (a Doppler-like red overlay on one of the frames): the colour rule refuses it.
    grey = cv2.imread(str(site / f"{rows[0]['ID']}.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(site / "colour.png"), np.dstack([grey, grey, np.full_like(grey, 255)]))
    (site / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out, report = tmp_path / "site.bqnn", tmp_path / "report.json"
    calibrate.main(["--model", str(REPO / "models" / "busi-w2a4.bqnn"), "--busi-infer", exe, "--shared", str(shared),
                    "--out", str(out), "--report", str(report), "--repeats", "1", "--site", str(site)])
    figures = json.loads(report.read_text())
    assert figures["site"]["images"] == 32 and figures["site"]["fitted_on"] == 30
    refused = "\n".join(figures["site"]["refused_by_input_rules"])
    assert "colour.png" in refused and "broken.png" in refused
    assert 0 <= figures["cross_fitted"]["accepted_site"] <= 1
    images = calibrate.run_runtime(exe, "cpu_int", out, sorted(site.glob("bus_*.png")))
    assert all(im["verdict"] != "unreadable" for im in images)
    header, _ = package.read_container(out.read_bytes())
    assert "--site" in header["calibration"]["fitted_on"]


def test_out_of_fold_logits_take_each_image_from_the_fold_that_held_it_out(tmp_path):
    names = ["busi/benign/a.png", "busi/normal/b.png", "busbra/bus_0001-l.png"]
    for fold, held, logits in (("fold1", [2, 0], [[1, 2, 3], [4, 5, 6]]), ("fold2", [1], [[7, 8, 9]])):
        (tmp_path / fold).mkdir()
        np.savez(tmp_path / fold / "predictions.npz", names=np.array([names[i] for i in held]),
                 logits=np.array(logits, float), logits_mirrored=np.zeros((len(held), 3)))
    assert calibrate.out_of_fold_logits(tmp_path, names).tolist() == [[4, 5, 6], [7, 8, 9], [1, 2, 3]]
    with pytest.raises(SystemExit, match="no out-of-fold logits for 1 development images, e.g. busbra/x.png"):
        calibrate.out_of_fold_logits(tmp_path, names + ["busbra/x.png"])
