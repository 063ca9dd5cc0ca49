"""Fits a model package's "calibration" block (docs/model-format.md, docs/safety.md).

    /usr/bin/python3 -m busi_train.calibrate --model ../models/busi-w2a4.bqnn \\
        --busi-infer ../build/tools/busi-infer --negatives /tmp/negatives \\
        --out ../models/busi-w2a4.bqnn --report results/calibration-w2a4.json

Validation images the model never trained on: BUSI's validation split
(training/splits/val.txt, 78 images; the shipped models chose their epoch on it,
they never trained on it) and all of BUS-BRA (1,350 images, never trained on; no
normal class). The runtime itself (busi-infer --format json, the backend given)
computes each image's gate features and logits, so what is fitted is what the
runtime will compute; this module only fits:
  - the temperature (cv_metrics.fit_temperature),
  - the gate: minimum size, minimum contrast, maximum colour (fixed rules,
    docs/safety.md), and the image-logit-mahalanobis-v1 score's mean and
    inverse covariance (a random-effects Gaussian over scanners, mahalanobis_gate),
    its threshold at the ACCEPT quantile of real ultrasound,
  - the referral curve and threshold on P(abnormal) for a target sensitivity
    reached on each source's lesions, BUSI's and BUS-BRA's alike
    (cv_metrics.threshold_for_sensitivity), and the "suspicious for malignancy"
    curve and threshold on P(malignant) among lesion images, the same way.

Honest figures come from cross-fitting: the images are split in two halves by
patient / near-duplicate group; a block fitted on one half is written into a
package and the runtime runs the other half with it (and the other way round),
over --repeats random halvings (the figures are shares over all of them, with
each halving's acceptance range). A gate fitted without each scanner in turn
gives the acceptance a clinic with a scanner never seen would meet.
The shipped block is then fitted on all of them, and the negatives
(negatives.py) are run through it: they never take part in any fit.

A model trained on every development image (busi_train.cv train --final) has no
image left that it never saw. Its block is fitted on the out-of-fold logits of
the same recipe's fold models instead (--out-of-fold RUN_DIR: RUN_DIR/fold*/
predictions.npz, each image's logits from the fold model that never trained on
it) together with the runtime's image statistics of every development image
(BUSI 702, BUS-BRA 1,350): the usual way to calibrate a model refit on all data.
No package holds those logits, so the cross-fitted figures apply the block's
rules to them here (rule_verdicts, checked against the runtime by the tests).

    /usr/bin/python3 -m busi_train.calibrate --model ../models/busi-w2a4-2site.bqnn \\
        --out-of-fold results/cv-crops/robust-noseg-crops --busi-infer ../build/tools/busi-infer \\
        --negatives /tmp/negatives --out ../models/busi-w2a4-2site.bqnn --report results/calibration-w2a4-2site.json
"""
import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import cv_metrics, data, package, sources
from .cv import REFERRAL_SENSITIVITY  # the protocol's referral target, one value for both
from .cv import TRAINING_DIR, gather

SUSPICIOUS_SENSITIVITY = 0.90
# The share of real ultrasound the score's threshold accepts on the images it is
# fitted on: a little above the 99% goal, so that held-out images, a little
# farther from the fitted mean, still reach it.
ACCEPT = 0.995
# Fixed rules of the gate (docs/safety.md says why each).
MIN_SIDE = 128       # no BUSI or BUS-BRA frame is under 240 pixels on its shorter side
MIN_STDDEV = 4.0     # real ultrasound: >= 18 on the 255x255 input
# BUS-BRA is gray; BUSI's files are gray stored as RGB, a few with coloured
# marks (mean channel difference up to 2.9); the least colourful photograph
# among the negatives has 9.5.
MAX_COLOUR = 6.0
CURVE_SENSITIVITIES = np.round(np.arange(0.50, 1.0001, 0.01), 2)
SITE = "site"  # the source and scanner name of --site images
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # what busi-infer decodes (docs/cli.md)


def validation_images(shared):
    """[(path, label, group, source, scanner)]: BUSI's validation split and all of BUS-BRA."""
    shared = Path(shared)
    items = data.read_split("val")
    busi_paths = [shared / "busi" / p for p, _ in items]
    groups = data.near_duplicate_groups(np.stack([data.load_image(p) for p in busi_paths]))
    out = [(p, lab, f"busi-{g}", "busi", sources.BUSI_SCANNER) for p, (_, lab), g in zip(busi_paths, items, groups)]
    with open(shared / "busbra" / "bus_data.csv", newline="") as f:
        for r in csv.DictReader(f):
            out.append((shared / "busbra" / "images" / f"{r['ID']}.png",
                        data.CLASSES.index(r["Pathology"].strip().lower()), f"busbra-{r['Case']}", "busbra",
                        sources.scanner_of(r["Device"])))
    return out


def run_runtime(busi_infer, backend, model_path, paths):
    """busi-infer's per-image JSON objects for `paths`, in order."""
    cmd = [str(busi_infer), "--no-progress", "--backend", backend, "--model", str(model_path), "--format", "json",
           "--threads", "2"] + [str(p) for p in paths]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd[:8])} ...: exit {done.returncode}: {done.stderr.strip()[-500:]}")
    images = json.loads(done.stdout)["images"]
    by_file = {im["file"]: im for im in images}
    return [by_file[str(p)] for p in paths]


def operating_curve(scores, positive, sources):
    """[[threshold, sensitivity, specificity]] for each target sensitivity of
    CURVE_SENSITIVITIES, thresholds ascending, duplicates dropped. The
    sensitivity is the lowest of the sources' (cv_metrics.threshold_for_sensitivity):
    a stated sensitivity holds on each hospital's positives."""
    scores, positive, sources = np.asarray(scores), np.asarray(positive, bool), np.asarray(sources)
    points = set()
    for target in CURVE_SENSITIVITIES:
        t = cv_metrics.threshold_for_sensitivity(scores, positive, target, sources)
        sens = min(float(np.mean(scores[positive & (sources == s)] >= t)) for s in np.unique(sources[positive]))
        spec = float(np.mean(scores[~positive] < t)) if (~positive).any() else float("nan")
        points.add((t, sens, spec))
    return [list(p) for p in sorted(points)]


def operating_point(curve, target):
    """The curve's point with the highest threshold reaching `target` (what
    OperatingPoint::choose does at run time)."""
    best = max((p for p in curve if p[1] >= target), key=lambda p: p[0])
    return {"target_sensitivity": target, "threshold": best[0], "sensitivity": best[1],
            "specificity": best[2], "curve": curve}


def fit(features, labels, sources_of, scanners_of, fitted_on, site_features=None, accept=ACCEPT):
    """The calibration block fitted on real ultrasound: features (n, 14 + 3) as
    the runtime computed them (ood_features), labels 0/1/2, each image's source
    (the operating points hold their sensitivity on each) and scanner (the
    gate's Gaussian weighs scanners alike). site_features: unlabelled images of
    a clinic's own scanner (--site), which join the gate's fit as a source and
    scanner of their own and take no part in the temperature or the curves."""
    features, labels, sources_of = np.asarray(features, float), np.asarray(labels), np.asarray(sources_of)
    logits = features[:, package.IMAGE_STATISTICS:]
    temperature = cv_metrics.fit_temperature(logits, labels)
    probs = cv_metrics.softmax(logits / temperature)
    gate_features, gate_sources, gate_scanners = with_site(features, sources_of, scanners_of, site_features)
    mean, precision, distance, threshold = mahalanobis_gate(gate_features, gate_sources, gate_scanners, accept)
    lesion = labels != cv_metrics.NORMAL
    referral_curve = operating_curve(1 - probs[:, cv_metrics.NORMAL], lesion, sources_of)
    # Curves need both classes for specificity; BUS-BRA alone has no normals, so
    # the referral curve's specificity comes from BUSI's validation normals.
    suspicious_curve = operating_curve(probs[lesion, cv_metrics.MALIGNANT], labels[lesion] == cv_metrics.MALIGNANT,
                                       sources_of[lesion])
    return {
        "fitted_on": fitted_on,
        "temperature": temperature,
        "gate": {"min_side": MIN_SIDE, "min_stddev": MIN_STDDEV, "max_colour": MAX_COLOUR,
                 "ood_score": "image-logit-mahalanobis-v1",
                 "ood_params": {"mean": mean.tolist(), "precision": precision.reshape(-1).tolist()},
                 "ood_threshold": threshold, "accepted_rate": float(np.mean(distance(gate_features) <= threshold))},
        "referral": operating_point(referral_curve, REFERRAL_SENSITIVITY),
        "suspicious": operating_point(suspicious_curve, SUSPICIOUS_SENSITIVITY),
    }


def with_site(features, sources_of, scanners_of, site_features):
    """(features, sources, scanners) of the gate's fit: the labelled images, then
    the --site images as the source and scanner SITE."""
    if site_features is None or not len(site_features):
        return features, np.asarray(sources_of), np.asarray(scanners_of)
    site = np.full(len(site_features), SITE)
    return (np.vstack([features, site_features]), np.concatenate([sources_of, site]),
            np.concatenate([scanners_of, site]))


def halves(groups, sources_of, seed=0):
    """A boolean mask: True for half A. Whole groups (patients, near-duplicates)
    go to one half, each source split evenly."""
    groups, sources_of = np.asarray(groups), np.asarray(sources_of)
    rng = np.random.default_rng(seed)
    in_a = np.zeros(len(groups), bool)
    for source in np.unique(sources_of):
        keys = np.unique(groups[sources_of == source])
        chosen = set(rng.permutation(keys)[: len(keys) // 2])
        in_a |= (sources_of == source) & np.isin(groups, list(chosen))
    return in_a


def refused_by_input_rules(image):
    """Whether the runtime refused an image (its JSON object) by a rule on the
    input (size, colour, blank), not by the out-of-distribution score."""
    return image["verdict"] == "unreadable" and not image["reason"].startswith("out of")


def decided(verdict):
    """Which verdicts are decisions (refer or routine): the images the gate accepted."""
    return np.isin(verdict, ["refer", "routine"])


def runtime_verdicts(images):
    """(verdict, scores, suspicious) arrays of the runtime's per-image JSON objects."""
    verdict = np.array([im["verdict"] for im in images])
    scores = np.array([im["scores"] if "scores" in im else [np.nan] * 3 for im in images], float)
    suspicious = np.array([im["suspicious_malignancy"] for im in images])
    return verdict, scores, suspicious


def rule_verdicts(block, features, input_refused):
    """(verdict, scores, suspicious) that make_prediction (runtime/src/classifier.cpp)
    gives with `block` to images whose gate features (image statistics + real
    logits) are `features` and whose input rules (size, colour, blank: they do not
    depend on the model) refused `input_refused`. Only for logits that no package
    holds (out-of-fold); test_calibrate checks it against the runtime."""
    features = np.asarray(features, float)
    scores = cv_metrics.softmax(features[:, package.IMAGE_STATISTICS:] / block["temperature"])
    accepted = gate_accepts(block["gate"], features, input_refused)
    refer = 1 - scores[:, cv_metrics.NORMAL] >= block["referral"]["threshold"]
    verdict = np.where(accepted, np.where(refer, "refer", "routine"), "unreadable")
    suspicious = accepted & (scores[:, cv_metrics.MALIGNANT] >= block["suspicious"]["threshold"])
    return verdict, scores, suspicious


def held_out_figures(verdict, after, suspicious, labels, sources_of, logits):
    """What was decided on images a block was not fitted on: accepted share, ECE
    before (T = 1) and after, referral sensitivity (BUSI and BUS-BRA lesions) and
    specificity (BUSI normals), suspicious sensitivity/specificity."""
    labels, sources_of = np.asarray(labels), np.asarray(sources_of)
    accepted = decided(verdict)
    lesion = labels != cv_metrics.NORMAL
    refer = verdict == "refer"
    ok = ~np.isnan(after).any(1)

    def share(x):
        return float(np.mean(x)) if len(x) else float("nan")
    return {
        "images": int(len(verdict)),
        "accepted": share(accepted),
        "accepted_busi": share(accepted[sources_of == "busi"]),
        "accepted_busbra": share(accepted[sources_of == "busbra"]),
        "ece_before": cv_metrics.expected_calibration_error(cv_metrics.softmax(logits[ok]), labels[ok]),
        "ece_after": cv_metrics.expected_calibration_error(after[ok], labels[ok]),
        "referral_sensitivity": share(refer[accepted & lesion]),
        "referral_sensitivity_busi": share(refer[accepted & lesion & (sources_of == "busi")]),
        "referral_sensitivity_busbra": share(refer[accepted & lesion & (sources_of == "busbra")]),
        "referral_specificity": share(~refer[accepted & ~lesion]),
        "suspicious_sensitivity": share(suspicious[accepted & (labels == cv_metrics.MALIGNANT)]),
        "suspicious_specificity": share(~suspicious[accepted & (labels == cv_metrics.BENIGN)]),
        # The denominators of the shares above, for counts and intervals.
        "count": {"busi": int(np.sum(sources_of == "busi")), "busbra": int(np.sum(sources_of == "busbra")),
                  "accepted_busi_lesions": int(np.sum(accepted & lesion & (sources_of == "busi"))),
                  "accepted_busbra_lesions": int(np.sum(accepted & lesion & (sources_of == "busbra"))),
                  "accepted_normals": int(np.sum(accepted & ~lesion)),
                  "accepted_malignant": int(np.sum(accepted & (labels == cv_metrics.MALIGNANT))),
                  "accepted_benign": int(np.sum(accepted & (labels == cv_metrics.BENIGN)))},
    }


def held_out_scanner_acceptance(features, sources_of, scanners_of, groups, input_refused, negatives=None):
    """{scanner: {"unseen": share of its images accepted by a gate fitted without
    them, "half_as_site": the same when half of its patients' images (halves)
    join the fit as --site images, on the other half, both ways}}: what a
    clinic with a scanner the gate never saw meets, and after it gives the fit
    some of its own images. (Only the gate is held out: the logits are what
    they are in the fit.) negatives: (features, input_refused) of the negative
    images; each gate's share of them refused is given beside ("negatives_refused_*")."""
    def gate_of(fit_on, site):
        gate_features, gate_sources, gate_scanners = with_site(features[fit_on], sources_of[fit_on],
                                                              scanners_of[fit_on], features[site])
        mean, precision, _, threshold = mahalanobis_gate(gate_features, gate_sources, gate_scanners)
        return {"ood_params": {"mean": mean, "precision": precision}, "ood_threshold": threshold}

    def figures(name, gates_and_held):
        row = {name: float(np.mean(np.concatenate([gate_accepts(g, features[held], input_refused[held])
                                                   for g, held in gates_and_held])))}
        if negatives is not None:
            row[f"negatives_refused_{name}"] = float(np.mean(np.concatenate(
                [~gate_accepts(g, *negatives) for g, _ in gates_and_held])))
        return row
    out = {}
    for scanner in np.unique(scanners_of):
        others, own = scanners_of != scanner, scanners_of == scanner
        in_a = halves(groups, sources_of) & own
        in_b = own & ~in_a
        out[str(scanner)] = {**figures("unseen", [(gate_of(others, np.zeros_like(own)), own)]),
                             **figures("half_as_site", [(gate_of(others, in_a), in_b), (gate_of(others, in_b), in_a)])}
    return out


def mahalanobis(x, mean, precision):
    """The image-logit-mahalanobis-v1 distance (the runtime's computation, for figures here)."""
    centred = np.asarray(x, float) - mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, precision, centred), 0))


def gate_accepts(gate, features, input_refused):
    """make_prediction's acceptance: no input rule refused the image and its
    image-logit-mahalanobis-v1 score is within the gate's threshold."""
    mean = np.array(gate["ood_params"]["mean"])
    precision = np.array(gate["ood_params"]["precision"]).reshape(len(mean), len(mean))
    return ~np.asarray(input_refused) & (mahalanobis(features, mean, precision) <= gate["ood_threshold"])


def mahalanobis_gate(fit_on, sources_of, scanners_of, accept=ACCEPT):
    """(mean, precision, distance, threshold): the Mahalanobis distance of a
    random-effects Gaussian fitted on fit_on, and its threshold at the `accept`
    quantile of each source's images in fit_on, the highest of them (so each
    hospital's acceptance is stated, not only the pool's, where the larger one
    would set it).

    Random effects: each scanner's images scatter about that scanner's mean
    (the within-scanner covariance, pooled), and the scanners' means scatter
    about their average (the covariance of the means, each scanner one draw).
    A plain Gaussian of the pool is centred and shaped by the largest scanner
    (BUS-BRA's two hold 1,350 images against BUSI's 78 validation images), so
    the small one's images lie in its tails; here each scanner counts alike,
    and a direction in which scanners are seen to differ is one in which
    images may lie."""
    scanners_of = np.asarray(scanners_of)
    scanners = np.unique(scanners_of)
    means = np.array([fit_on[scanners_of == s].mean(0) for s in scanners])
    mean = means.mean(0)
    within = fit_on - means[np.searchsorted(scanners, scanners_of)]
    covariance = within.T @ within / (len(fit_on) - len(scanners))
    if len(scanners) > 1:
        covariance += np.cov(means.T)
    # A small ridge keeps the inverse finite when a feature barely varies.
    precision = np.linalg.inv(covariance + 1e-6 * np.eye(fit_on.shape[1]))

    def distance(x):
        return mahalanobis(x, mean, precision)
    sources_of = np.asarray(sources_of)
    # "higher": the threshold is a fitted image's own distance, so at least
    # `accept` of each source's images pass it (interpolation would fall short).
    return mean, precision, distance, max(float(np.quantile(distance(fit_on[sources_of == s]), accept, method="higher"))
                                          for s in np.unique(sources_of))


def negative_figures(paths, images, negatives_dir, features, sources_of, scanners_of):
    """The share of each negative kind (negatives.py; `images`: the runtime's
    JSON objects of `paths` with the written package) the runtime refuses, by
    which rule, and what the network's logits alone would refuse (a Mahalanobis
    distance on the logits, its threshold at the same share of the validation
    images `features`): the measurement behind docs/safety.md."""
    kinds = np.array([p.parent.name for p in paths])
    refused = np.array([im["verdict"] == "unreadable" for im in images])
    out = {"images": int(len(paths)), "refused": float(refused.mean())}
    for kind in np.unique(kinds):
        out[f"refused_{kind}"] = float(refused[kinds == kind].mean())
    rules = ("smaller than", "in colour", "blank or nearly constant", "out of distribution")
    out["refused_by"] = {rule: int(sum(im["verdict"] == "unreadable" and rule in im["reason"] for im in images))
                         for rule in rules}
    _, _, distance, threshold = mahalanobis_gate(features[:, package.IMAGE_STATISTICS:], sources_of, scanners_of)
    reached = [im for im in images if "ood_features" in im]
    logits = np.array([im["ood_features"][package.IMAGE_STATISTICS:] for im in reached], float)
    out["logits_only_refused"] = float(np.mean(distance(logits) > threshold))
    out["logits_only_images"] = len(reached)
    out["accepted_files"] = [str(p.relative_to(Path(negatives_dir))) for p, r in zip(paths, refused) if not r]
    return out


def site_images(folder, busi_infer, backend, original, block, tmp):
    """{"features": gate features of the --site images the input rules pass,
    "refused": "file: reason" of those they refuse}. The input rules are fixed
    (MIN_SIDE, MAX_COLOUR, MIN_STDDEV), so a block fitted without the site says
    which images they refuse: those stay out of the gate's fit."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"--site {folder}: no PNG or JPEG images in it")
    provisional = Path(tmp) / "without-site.bqnn"
    provisional.write_bytes(package.with_calibration(original, block))
    found = run_runtime(busi_infer, backend, provisional, paths)
    usable = ["ood_features" in im and not refused_by_input_rules(im) for im in found]
    refused = [f"{p}: {im.get('reason', 'no gate features')}" for p, im, ok in zip(paths, found, usable) if not ok]
    kept = [im["ood_features"] for im, ok in zip(found, usable) if ok]
    if len(kept) < 20:
        raise SystemExit(f"--site {folder}: {len(kept)} usable images; the gate needs at least 20 of a scanner "
                         f"(a few hundred are better) ({len(refused)} refused by the input rules)")
    return {"features": np.array(kept, float), "refused": refused}


def development_images(shared, cache_dir):
    """[(path, label, group, source, scanner)] of every development image (sources.load_dev_set's order)."""
    ds = sources.load_dev_set(shared, cache_dir=cache_dir)
    return [(sources.file_of(shared, n), int(lab), f"{src}-{g}", str(src), str(sc))
            for n, lab, g, src, sc in zip(ds.names, ds.labels, ds.group, ds.source, ds.scanner)], ds.names


def out_of_fold_logits(run_root, names):
    """Each named image's logits from the fold model that never trained on it."""
    folds, _ = gather(run_root, {n: i for i, n in enumerate(names)}, mirrored=False)
    logits = np.full((len(names), 3), np.nan)
    for idx, fold_logits in folds:
        logits[idx] = fold_logits
    if np.isnan(logits).any():
        missing = names[int(np.nonzero(np.isnan(logits).any(1))[0][0])]
        raise SystemExit(f"{run_root}: no out-of-fold logits for {int(np.isnan(logits).any(1).sum())} "
                         f"development images, e.g. {missing} (every fold must have run)")
    return logits


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="package to calibrate (.bqnn)")
    ap.add_argument("--out", required=True, help="where to write the package with the block")
    ap.add_argument("--busi-infer", required=True, help="the busi-infer executable to compute features with")
    ap.add_argument("--backend", default=None, help="default: cpu_int for quantized, cpu_ref for float packages")
    ap.add_argument("--shared", default=None, help="folder holding busi/ and busbra/ (default: ../shared)")
    ap.add_argument("--out-of-fold", metavar="RUN_DIR", default=None,
                    help="the model was trained on every development image: fit on the out-of-fold logits of "
                         "RUN_DIR/fold*/predictions.npz (busi_train.cv, same recipe) instead")
    ap.add_argument("--cache", default=str(TRAINING_DIR / "runs" / "cache"), help="busi_train.cv's image cache")
    ap.add_argument("--negatives", default=None, help="folder written by busi_train.negatives, to measure refusal")
    ap.add_argument("--report", default=None, help="write the figures as JSON here")
    ap.add_argument("--repeats", type=int, default=10, help="random halvings the cross-fitted figures average over")
    ap.add_argument("--site", metavar="DIR", default=None,
                    help="unlabelled PNG/JPEG images of the clinic's own scanner (one or a few per patient): they "
                         "join the gate's fit, so the gate accepts that scanner too; the temperature and the "
                         "referral curves stay fitted on the labelled images")
    args = ap.parse_args(argv)

    original = Path(args.model).read_bytes()
    header, _ = package.read_container(original)
    backend = args.backend or ("cpu_ref" if header["kind"] == "float" else "cpu_int")
    shared = Path(args.shared or sources.shared_root())
    if args.out_of_fold:
        images, names = development_images(shared, args.cache)
    else:
        images = validation_images(shared)
    paths, labels, groups, sources_of, scanners_of = (list(x) for x in zip(*images))
    labels, sources_of, scanners_of = np.array(labels), np.array(sources_of), np.array(scanners_of)
    counts = f"BUSI {int(np.sum(sources_of == 'busi'))}, BUS-BRA {int(np.sum(sources_of == 'busbra'))}"

    with tempfile.TemporaryDirectory() as tmp:
        bare = Path(tmp) / "bare.bqnn"
        bare.write_bytes(package.with_calibration(original, None))
        found = run_runtime(args.busi_infer, backend, bare, paths)
        missing = [str(p) for p, im in zip(paths, found) if "ood_features" not in im]
        if missing:
            raise SystemExit(f"the runtime gave no features for {len(missing)} images, e.g. {missing[0]}")
        features = np.array([im["ood_features"] for im in found], float)
        if args.out_of_fold:
            features[:, package.IMAGE_STATISTICS:] = out_of_fold_logits(args.out_of_fold, names)
            fitted_on = (f"out-of-fold logits of {args.out_of_fold}'s fold models (busi_train.cv, the recipe this "
                         f"model was trained with on every development image) and the runtime's image statistics "
                         f"of every development image ({counts}); backend {backend}")
        else:
            fitted_on = f"BUSI validation split (training/splits/val.txt) + BUS-BRA ({counts}), never trained on; " \
                        f"backend {backend}"
        logits = features[:, package.IMAGE_STATISTICS:]
        block = fit(features, labels, sources_of, scanners_of, fitted_on)
        site = site_images(args.site, args.busi_infer, backend, original, block, tmp) if args.site else None
        if site:
            fitted_on += f"; the gate also on {len(site['features'])} unlabelled images of {args.site} (--site)"
            block = fit(features, labels, sources_of, scanners_of, fitted_on, site["features"])
        Path(args.out).write_bytes(package.with_calibration(original, block))
        # The input rules do not depend on the model or the fit: the shipped
        # block's runtime run gives them for every half and held-out scanner.
        shipped = run_runtime(args.busi_infer, backend, args.out, paths)
        input_refused = np.array([refused_by_input_rules(im) for im in shipped])

        # Cross-fitting, repeated over several random halvings: one halving of
        # 78 BUSI validation images moves the BUSI acceptance by a few points.
        verdicts, idx, accepted_by_repeat, site_accepted = [], [], [], []
        for seed in range(args.repeats):
            in_a = halves(groups, sources_of, seed)
            site_in_a = halves(np.arange(len(site["features"])), np.full(len(site["features"]), SITE), seed) \
                if site else None
            for fit_on, site_fit_on in ((in_a, site_in_a), (~in_a, None if site is None else ~site_in_a)):
                half_block = fit(features[fit_on], labels[fit_on], sources_of[fit_on], scanners_of[fit_on],
                                 "cross-fitting half", None if site is None else site["features"][site_fit_on])
                if site:
                    held_site = site["features"][~site_fit_on]
                    site_accepted.append(gate_accepts(half_block["gate"], held_site, np.zeros(len(held_site), bool)))
                held = np.nonzero(~fit_on)[0]
                if args.out_of_fold:
                    verdicts.append(rule_verdicts(half_block, features[held], input_refused[held]))
                else:
                    half = Path(tmp) / "half.bqnn"
                    half.write_bytes(package.with_calibration(original, half_block))
                    verdicts.append(runtime_verdicts(run_runtime(args.busi_infer, backend, half,
                                                                 [paths[i] for i in held])))
                idx.append(held)
            repeat_verdict, repeat_idx = np.concatenate([v[0] for v in verdicts[-2:]]), np.concatenate(idx[-2:])
            accepted_by_repeat.append({s: float(np.mean(decided(repeat_verdict[sources_of[repeat_idx] == s])))
                                       for s in np.unique(sources_of)})
        idx = np.concatenate(idx)
        verdict, after, suspicious = (np.concatenate(parts) for parts in zip(*verdicts))
        cross = held_out_figures(verdict, after, suspicious, labels[idx], sources_of[idx], logits[idx])
        # Every image is held out once per repeat: counts per repeat, shares over all.
        cross["count"] = {k: v / args.repeats for k, v in cross["count"].items()}
        cross["images"] //= args.repeats
        cross["repeats"] = args.repeats
        cross["accepted_range"] = {s: [min(r[s] for r in accepted_by_repeat), max(r[s] for r in accepted_by_repeat)]
                                   for s in np.unique(sources_of)}
        negatives = None
        if args.negatives:
            negative_paths = sorted(p for p in Path(args.negatives).rglob("*.png"))
            negative_images = run_runtime(args.busi_infer, backend, args.out, negative_paths)
            # Features of those the input rules refuse are not used: they stay refused.
            negatives = (np.array([im.get("ood_features", [np.nan] * features.shape[1]) for im in negative_images],
                                  float),
                         np.array([refused_by_input_rules(im) or "ood_features" not in im for im in negative_images]))
        cross["accepted_held_out_scanner"] = held_out_scanner_acceptance(features, sources_of, scanners_of, groups,
                                                                         input_refused, negatives)
        if site:
            by_repeat = [float(np.mean(np.concatenate(site_accepted[2 * r:2 * r + 2]))) for r in range(args.repeats)]
            cross["accepted_site"] = float(np.mean(np.concatenate(site_accepted)))
            cross["accepted_range"][SITE] = [min(by_repeat), max(by_repeat)]

        report = {"model": header["name"], "backend": backend, "fitted_on": fitted_on,
                  "temperature": block["temperature"], "ood_threshold": block["gate"]["ood_threshold"],
                  "referral": {k: block["referral"][k] for k in ("threshold", "sensitivity", "specificity")},
                  "suspicious": {k: block["suspicious"][k] for k in ("threshold", "sensitivity", "specificity")},
                  "cross_fitted": cross}
        if site:
            report["site"] = {"folder": args.site, "images": len(site["features"]) + len(site["refused"]),
                              "fitted_on": len(site["features"]), "refused_by_input_rules": site["refused"]}
        if args.negatives:
            report["negatives"] = negative_figures(negative_paths, negative_images, args.negatives, features,
                                                   sources_of, scanners_of)
    text = json.dumps(report, indent=1)
    if args.report:
        Path(args.report).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
