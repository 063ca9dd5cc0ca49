"""The committed splits: sizes, strata, no image on both sides; the
duplicate-aware one keeps near-duplicates together, the random one does not."""
import collections

import pytest

from busi_train import data


def strata(items):
    return collections.Counter(label for _, label in items)


@pytest.mark.parametrize("prefix", ["", "random-"])
def test_split_sizes_strata_and_disjointness(prefix):
    train, val = data.read_split(prefix + "train"), data.read_split(prefix + "val")
    assert (len(train), len(val)) == (624, 78)
    assert not {p for p, _ in train} & {p for p, _ in val}
    assert strata(val) == {0: 13, 1: 44, 2: 21}  # normal, benign, malignant


def test_only_the_random_split_leaks_near_duplicates(busi_root):
    items = data.list_images(busi_root)
    images, _ = data.load_set(items, busi_root)
    groups = dict(zip((p for p, _ in items), data.near_duplicate_groups(images.numpy())))

    def leaked(prefix):
        train_groups = {groups[p] for p, _ in data.read_split(prefix + "train")}
        return sum(groups[p] in train_groups for p, _ in data.read_split(prefix + "val"))

    assert leaked("") == 0
    assert leaked("random-") == 29
