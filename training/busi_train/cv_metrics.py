"""The protocol's figures with 95% confidence intervals.

Every interval is a percentile bootstrap that resamples whole groups (BUSI
near-duplicate groups, BUS-BRA patients), so correlated images count once per
draw, not as independent evidence.
"""
import numpy as np

NORMAL, BENIGN, MALIGNANT = 0, 1, 2


def auc(scores, positive):
    """Area under the ROC curve (Mann-Whitney U, ties count one half); nan when a
    class is absent."""
    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def busi_figures(labels, probs):
    pred = probs.argmax(1)
    abnormal, called_abnormal = labels != NORMAL, pred != NORMAL
    out = {"accuracy": np.mean(pred == labels)}
    for c, name in ((NORMAL, "recall_normal"), (BENIGN, "recall_benign"), (MALIGNANT, "recall_malignant")):
        out[name] = np.mean(pred[labels == c] == c) if np.any(labels == c) else np.nan
    out["sensitivity"] = np.mean(called_abnormal[abnormal]) if abnormal.any() else np.nan
    out["specificity"] = np.mean(~called_abnormal[~abnormal]) if (~abnormal).any() else np.nan
    # Threshold-free: how well P(abnormal) ranks lesions above normal tissue, and
    # P(malignant) malignant above benign lesions.
    out["auc_abnormal"] = auc(1 - probs[:, NORMAL], abnormal)
    out["auc_malignant"] = auc(probs[abnormal, MALIGNANT], labels[abnormal] == MALIGNANT)
    return out


def lesion_figures(labels, probs):
    """Benign-vs-malignant AUC of P(malignant) and the share of lesion images
    called abnormal (for a source with lesions only, e.g. BUS-BRA)."""
    return {"auc_malignant": auc(probs[:, MALIGNANT], labels == MALIGNANT),
            "called_abnormal": np.mean(probs.argmax(1) != NORMAL)}


def bootstrap(figures, labels, probs, groups, n=2000, seed=0):
    """{figure: (value, lo, hi)}: figures(labels, probs) on all items, and the 2.5
    and 97.5 percentiles over n resamples of whole groups."""
    labels, probs, groups = np.asarray(labels), np.asarray(probs), np.asarray(groups)
    point = figures(labels, probs)
    keys, inverse = np.unique(groups, return_inverse=True)
    members = [np.nonzero(inverse == k)[0] for k in range(len(keys))]
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in point}
    for _ in range(n):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(keys), len(keys))])
        for k, v in figures(labels[idx], probs[idx]).items():
            draws[k].append(v)
    return {k: (float(point[k]), float(np.nanpercentile(draws[k], 2.5)), float(np.nanpercentile(draws[k], 97.5)))
            for k in point}


def softmax(logits):
    z = np.asarray(logits, float)
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def fit_temperature(logits, labels):
    """The T > 0 minimizing the negative log-likelihood of softmax(logits / T)
    (a grid over log T, then refined): temperature scaling (Guo et al., 2017)."""
    logits, labels = np.asarray(logits, float), np.asarray(labels)

    def nll(t):
        p = softmax(logits / t)
        return -np.mean(np.log(p[np.arange(len(labels)), labels] + 1e-12))

    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 121))
    best = grid[np.argmin([nll(t) for t in grid])]
    fine = best * np.exp(np.linspace(-0.06, 0.06, 61))
    return float(fine[np.argmin([nll(t) for t in fine])])


def expected_calibration_error(probs, labels, bins=15):
    """ECE of the top-1 confidence: the bin-size-weighted mean |accuracy - confidence|
    over equal-width confidence bins."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            total += sel.mean() * abs(np.mean(pred[sel] == labels[sel]) - conf[sel].mean())
    return float(total)


def threshold_for_sensitivity(p_abnormal, abnormal, target, sources=None):
    """The highest threshold t with mean(p_abnormal[abnormal] >= t) >= target: refer
    when P(abnormal) >= t. With `sources` (one name per image), the target holds
    within each source's positives: pooled, an easy hospital's lesions would hide
    a hard one's (BUS-BRA's lesions at 99.8% let BUSI's fall to 90%)."""
    if sources is not None:
        sources, abnormal = np.asarray(sources), np.asarray(abnormal, bool)
        return min(threshold_for_sensitivity(np.asarray(p_abnormal)[sources == s], abnormal[sources == s], target)
                   for s in np.unique(sources[abnormal]))
    scores = np.sort(np.asarray(p_abnormal)[np.asarray(abnormal, bool)])
    k = int(np.floor((1 - target) * len(scores) + 1e-9))  # at most k positives may fall below t
    return float(scores[min(k, len(scores) - 1)])
