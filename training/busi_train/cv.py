"""The honest protocol: grouped 4-fold cross-validation over BUSI and BUS-BRA.

  # one recipe, every fold (resumable: rerun the same command after a stop)
  /usr/bin/python3 -m busi_train.cv train --recipe robust --out runs/cv
  # a scanner the model never saw: train on everything else, test on it
  /usr/bin/python3 -m busi_train.cv train --recipe robust --hold-out-scanner LOGIQ7 --out runs/cv
  # the shipped model: the same recipe on all development images
  /usr/bin/python3 -m busi_train.cv train --recipe robust --final --out runs/cv
  # the tables (markdown), recipes side by side
  /usr/bin/python3 -m busi_train.cv report runs/cv/paper runs/cv/robust

Fold k holds BUSI's near-duplicate-grouped fold k and BUS-BRA's patient-grouped
kFold k (sources.py). A fold's model trains on the other three and predicts the
held-out one with its LAST epoch: no epoch or checkpoint is chosen on the images
it is scored on. Per-epoch held-out figures are logged (log.jsonl) so schedules
can be compared across recipes on validation folds.

A recipe trains the float network, then quantization-aware W2A4 from it (the
paper's procedure, seeds/000), in one resumable run. With --teacher-width W, a
float network W times as wide is trained first on the same images (same recipe,
float schedule; in <fold>/teacher/, its own held-out predictions beside) and
both stages then learn from it as well as from the labels (distillation).
"""
import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import cv_metrics, data, sources
from .augment import lesion_free_square, normal_tissue_crop, scanner_augmenter
from .model import busi_net, lesion_decoder
from .quant import ACT_QUANTIZERS, WEIGHT_QUANTIZERS
from .train import distillation_loss, seed_everything

TRAINING_DIR = Path(__file__).resolve().parent.parent

# Every choice a recipe makes, in one place; report() prints them beside the figures.
RECIPES = {
    # The shipped models' recipe (train.py): the paper's augmentation (h+v flips,
    # rotation, scale, brightness, contrast), class-weighted cross-entropy.
    "paper": {"augment": "paper", "sampling": "permutation", "class_weights": True, "seg_weight": 0.0},
    # Scanner-variation augmentation, class- and source-balanced sampling, and the
    # lesion masks as a second task.
    "robust": {"augment": "scanner", "sampling": "balanced", "class_weights": False, "seg_weight": 0.5},
    # The same without the second task (what the masks add).
    "robust-noseg": {"augment": "scanner", "sampling": "balanced", "class_weights": False, "seg_weight": 0.0},
    # robust, but BUS-BRA images teach only benign vs malignant: their loss is
    # taken over the two lesion logits, so a source without normal images cannot
    # teach "this scanner's look means a lesion" (fold 1 of robust showed BUSI
    # lesions called normal and every BUS-BRA image called abnormal).
    "robust-lesion-loss": {"augment": "scanner", "sampling": "balanced", "class_weights": False,
                           "seg_weight": 0.5, "lesion_only_loss": ["busbra"]},
    # robust-noseg, plus normal tissue from the other hospital: squares of BUS-BRA
    # lesion images clear of the lesion (augment.lesion_free_square), labelled
    # normal, drawn as half of the normal class, so that BUS-BRA's look no longer
    # means "lesion" (the shortcut robust-lesion-loss found).
    "robust-noseg-crops": {"augment": "scanner", "sampling": "balanced", "class_weights": False,
                           "seg_weight": 0.0, "normal_crops": True},
}
SCHEDULE = {"float_epochs": 10, "qat_epochs": 6, "epoch_images": 1000, "batch": 16,
            "float_lr": 1e-3, "qat_lr": 2e-4, "lr_min": 1e-5, "wbits": 2, "abits": 4, "ends_wbits": None,
            "calib_images": 64, "weight_quant": "uniform", "act_quant": "uniform"}
EVAL_EVERY = 5


def sampling_weights(labels, source):
    """Per-image draw weights: each class equally likely, and within a class each
    source that has it equally likely (BUS-BRA's 900 benign images do not drown
    BUSI's)."""
    w = np.zeros(len(labels))
    for c in np.unique(labels):
        in_class = labels == c
        srcs = np.unique(source[in_class])
        for s in srcs:
            sel = in_class & (source == s)
            w[sel] = 1.0 / (len(srcs) * sel.sum())
    return torch.tensor(w / w.sum())


def classification_loss(logits, labels, sources_of, weight, lesion_only_sources):
    """Cross-entropy per image, averaged over the batch; images of the sources in
    lesion_only_sources (which hold no normal images) are scored on benign vs
    malignant only, the normal logit left out."""
    full = F.cross_entropy(logits, labels, weight=weight, reduction="none")
    lesion_only = torch.tensor([s in lesion_only_sources for s in sources_of])
    if not lesion_only.any():
        return full.mean()
    lesion = F.cross_entropy(logits[:, 1:], (labels - 1).clamp_min(0), reduction="none")
    return torch.where(lesion_only, lesion, full).mean()


def segmentation_loss(mask_logits, masks):
    """BCE plus soft Dice against the warped masks, area-pooled to the head's size."""
    target = F.adaptive_avg_pool2d(masks, mask_logits.shape[-2:])
    bce = F.binary_cross_entropy_with_logits(mask_logits, target)
    p = torch.sigmoid(mask_logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + dice.mean()


@torch.no_grad()
def predict(model, images_u8, mirror=False, batch=64):
    """Logits of the images, or of their horizontal mirror images."""
    model.eval()
    out = []
    for i in range(0, len(images_u8), batch):
        x = torch.from_numpy(images_u8[i:i + batch]).float().unsqueeze(1) / 255.0
        out.append(model(torch.flip(x, dims=[3]) if mirror else x))
    return torch.cat(out).numpy()


def held_out_figures(ds, idx, logits):
    """A few figures of held-out images for the per-epoch log."""
    probs = cv_metrics.softmax(logits)
    out = {}
    busi = ds.source[idx] == "busi"
    if busi.any():
        out.update({f"busi_{k}": round(float(v), 4) for k, v in
                    cv_metrics.busi_figures(ds.labels[idx][busi], probs[busi]).items()})
    bra = ds.source[idx] == "busbra"
    if bra.any():
        out.update({f"busbra_{k}": round(float(v), 4) for k, v in
                    cv_metrics.lesion_figures(ds.labels[idx][bra], probs[bra]).items()})
    return out


class split_run:
    """One model: trained on train_idx, scored on eval_idx after every epoch, its
    state saved after every epoch so a stopped run resumes where it was.

    distill: {"width": W, "alpha": a, "temperature": T}: first a float teacher W
    times as wide (itself a split_run, in out/teacher), then both stages trained
    with train.distillation_loss, (1 - a) CE + a T^2 KL against the teacher's
    logits on the same augmented batch. width: this network's width multiplier
    (a teacher's; float only, so no quantized stage)."""

    def __init__(self, ds, train_idx, eval_idx, recipe_name, schedule, out, seed, threads, from_float=None,
                 distill=None, width=1):
        self.ds, self.train_idx, self.eval_idx = ds, np.asarray(train_idx), np.asarray(eval_idx)
        # A float.pt saved by an earlier run of the same split: the float stage is
        # taken from it instead of trained again (quantizer variants share one).
        self.from_float = Path(from_float) if from_float else None
        self.recipe, self.schedule = RECIPES[recipe_name], schedule
        self.config = {"recipe": recipe_name, **self.recipe, **schedule, "seed": seed,
                       "train_images": len(train_idx), "eval_images": len(eval_idx),
                       "from_float": str(self.from_float) if self.from_float else None,
                       "width": width, "distill": distill}
        self.out, self.seed, self.width, self.distill = Path(out), seed, width, distill
        self.teacher_run = split_run(ds, train_idx, eval_idx, recipe_name, dict(schedule, qat_epochs=0),
                                     self.out / "teacher", seed, threads, width=distill["width"]) if distill else None
        torch.set_num_threads(threads)

    def stages(self):
        s = self.schedule
        return [("float", s["float_epochs"], s["float_lr"])] + \
            ([("qat", s["qat_epochs"], s["qat_lr"])] if self.width == 1 else [])

    def build(self, stage, float_state=None):
        s = self.schedule
        if stage == "float":
            model = busi_net(width=self.width)
        else:
            model = busi_net(s["wbits"], s["abits"], s["ends_wbits"], s["weight_quant"], s["act_quant"])
            if float_state is not None:
                missing, _ = model.load_state_dict(float_state, strict=False)
                assert all(".wq." in k or ".act." in k for k in missing), missing
                model.init_quantizers(self.calibration_batch(torch.Generator().manual_seed(self.seed)))
        decoder = lesion_decoder(in_channels=model.conv_channels[2:5]) if self.recipe["seg_weight"] > 0 else None
        params = list(model.parameters()) + (list(decoder.parameters()) if decoder else [])
        return model, decoder, torch.optim.Adam(params, lr=1e-3)

    def calibration_batch(self, gen):
        """calib_images training images (pixels/255) drawn with gen."""
        n = self.schedule["calib_images"]
        pick = self.train_idx[torch.randperm(len(self.train_idx), generator=gen)[:n]]
        return torch.from_numpy(self.ds.images[pick]).float().unsqueeze(1) / 255.0

    def draws(self):
        """(image index, label, square or None) of what an epoch draws from: the
        training images, and with normal_crops also a lesion-free square of each
        BUS-BRA training image that has one, labelled normal."""
        ds = self.ds
        draw_idx, draw_labels, squares = self.train_idx, ds.labels[self.train_idx], [None] * len(self.train_idx)
        if self.recipe.get("normal_crops"):
            crops = [(i, lesion_free_square(ds.masks[i])) for i in self.train_idx if ds.source[i] == "busbra"]
            crops = [(i, sq) for i, sq in crops if sq is not None]
            draw_idx = np.concatenate([draw_idx, [i for i, _ in crops]]).astype(np.int64)
            draw_labels = np.concatenate([draw_labels, np.full(len(crops), cv_metrics.NORMAL)])
            squares = squares + [sq for _, sq in crops]
        return draw_idx, draw_labels, squares

    def run(self, max_epochs=None):
        """Trains (or resumes) to the end, its teacher first; with max_epochs, stops
        after that many epochs of this call, the teacher's counted (returns False
        then; a later call continues)."""
        state_path = self.out / "state.pt"
        self.epochs_trained = 0
        if (self.out / "final.pt").exists():
            print(f"{self.out}: done", flush=True)
            return True
        self.out.mkdir(parents=True, exist_ok=True)
        teacher = None
        if self.teacher_run:
            if not self.teacher_run.run(max_epochs):
                return False
            if max_epochs is not None:
                max_epochs -= self.teacher_run.epochs_trained
            teacher = busi_net(width=self.distill["width"])
            teacher.load_state_dict(torch.load(self.teacher_run.out / "final.pt", map_location="cpu")["state_dict"])
            teacher.eval()
        seed_everything(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        st = torch.load(state_path, map_location="cpu") if state_path.exists() else None
        stage_i, epoch = (st["stage"], st["epoch"]) if st else (0, 0)
        if self.from_float and not st:
            float_model = torch.load(self.from_float, map_location="cpu")
            stage_i = 1
            model, decoder, opt = self.build(self.stages()[stage_i][0], float_model["model"])
            if decoder:
                decoder.load_state_dict(float_model["decoder"])
        else:
            model, decoder, opt = self.build(self.stages()[stage_i][0])
        if st:
            model.load_state_dict(st["model"])
            if decoder:
                decoder.load_state_dict(st["decoder"])
            opt.load_state_dict(st["optimizer"])
            gen.set_state(st["generator"])
            print(f"{self.out}: resuming {self.stages()[stage_i][0]} after epoch {epoch}", flush=True)
        ds, s = self.ds, self.schedule
        draw_idx, draw_labels, squares = self.draws()
        labels = torch.from_numpy(draw_labels)
        if self.recipe["sampling"] == "balanced":
            draw_w = sampling_weights(draw_labels, ds.source[draw_idx])
        counts = torch.bincount(labels, minlength=len(data.CLASSES)).float()
        ce_w = counts.sum() / (len(counts) * counts.clamp_min(1)) if self.recipe["class_weights"] else None
        aug_paper, aug_scanner = data.augmenter(), scanner_augmenter()
        while stage_i < len(self.stages()):
            stage, n_epochs, lr_max = self.stages()[stage_i]
            steps = math.ceil(s["epoch_images"] / s["batch"])
            while epoch < n_epochs:
                if max_epochs is not None and max_epochs <= 0:
                    return False
                max_epochs = None if max_epochs is None else max_epochs - 1
                self.epochs_trained += 1
                epoch += 1
                t0 = time.time()
                if stage == "qat" and model.calibrates_every_epoch:
                    # Its own generator per epoch: the training draws stay those of the
                    # uniform quantizers, and a resumed run refits the same way.
                    calib = self.calibration_batch(torch.Generator().manual_seed(self.seed * 1000 + epoch))
                    model.epoch_start_quantizers(calib, epoch, n_epochs)
                model.train()
                if decoder:
                    decoder.train()
                if self.recipe["sampling"] == "balanced":
                    order = torch.multinomial(draw_w, s["epoch_images"], replacement=True, generator=gen)
                else:
                    order = torch.cat([torch.randperm(len(draw_idx), generator=gen)
                                       for _ in range(math.ceil(s["epoch_images"] / len(draw_idx)))])
                    order = order[:s["epoch_images"]]
                total = 0.0
                for b in range(steps):
                    t = ((epoch - 1) * steps + b) / (n_epochs * steps)
                    for g in opt.param_groups:
                        g["lr"] = s["lr_min"] + 0.5 * (lr_max - s["lr_min"]) * (1 + math.cos(math.pi * t))
                    drawn = order[b * s["batch"]:(b + 1) * s["batch"]].numpy()
                    pick = draw_idx[drawn]
                    images, image_masks = ds.images[pick], ds.masks[pick]  # copies (fancy indexing)
                    for j, d in enumerate(drawn):
                        if squares[d] is not None:
                            offset = float(torch.rand(1, generator=gen))
                            images[j] = normal_tissue_crop(images[j], squares[d], offset)
                            image_masks[j] = 0
                    imgs = torch.from_numpy(images).unsqueeze(1)
                    if self.recipe["augment"] == "scanner":
                        x, masks = aug_scanner(imgs, torch.from_numpy(image_masks).unsqueeze(1), gen)
                    else:
                        x, masks = aug_paper(imgs, gen), None
                    logits, features = model.forward_features(x)
                    loss = classification_loss(logits, torch.from_numpy(draw_labels[drawn]), ds.source[pick], ce_w,
                                               self.recipe.get("lesion_only_loss", ()))
                    if teacher is not None:
                        with torch.no_grad():
                            teacher_logits = teacher(x)
                        loss = distillation_loss(logits, teacher_logits, loss, self.distill["alpha"],
                                                 self.distill["temperature"])
                    if decoder:
                        loss = loss + self.recipe["seg_weight"] * segmentation_loss(decoder(features), masks)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item()
                rec = {"stage": stage, "epoch": epoch, "loss": round(total / steps, 4),
                       "seconds": round(time.time() - t0, 1)}
                # Held-out figures every few epochs (each costs ~a fifth of an epoch).
                if len(self.eval_idx) and (epoch % EVAL_EVERY == 0 or epoch == n_epochs):
                    rec.update(held_out_figures(ds, self.eval_idx, predict(model, ds.images[self.eval_idx])))
                with open(self.out / "log.jsonl", "a") as log:
                    log.write(json.dumps(rec) + "\n")
                print(self.out.name, json.dumps(rec), flush=True)
                torch.save({"stage": stage_i, "epoch": epoch, "model": model.state_dict(),
                            "decoder": decoder.state_dict() if decoder else None,
                            "optimizer": opt.state_dict(), "generator": gen.get_state()}, state_path)
            if stage == "float":
                torch.save({"model": model.state_dict(), "decoder": decoder.state_dict() if decoder else None},
                           self.out / "float.pt")
            stage_i, epoch = stage_i + 1, 0
            if stage_i < len(self.stages()):
                model, decoder_next, opt = self.build(self.stages()[stage_i][0], model.state_dict())
                if decoder:
                    decoder_next.load_state_dict(decoder.state_dict())
                decoder = decoder_next
        if len(self.eval_idx):
            images = ds.images[self.eval_idx]
            np.savez(self.out / "predictions.npz", names=np.array([ds.names[i] for i in self.eval_idx]),
                     logits=predict(model, images), logits_mirrored=predict(model, images, mirror=True))
        # The checkpoint format train.py writes, so export.py and the equivalence
        # checks read it unchanged.
        torch.save({"config": {**self.config, "wbits": model.wbits, "abits": model.abits,
                               "ends_wbits": model.ends_wbits},
                    "epoch": self.stages()[-1][1], "val": None, "state_dict": model.state_dict()},
                   self.out / "final.pt")
        state_path.unlink()
        return True


def splits(ds, folds, hold_out_scanner, final, normal_crops=False):
    """(name, train indices, evaluation indices) of each model to train.
    normal_crops: the recipe draws normal tissue from BUS-BRA, so BUSI, the only
    source of normal images, can be held out too."""
    everything = np.arange(len(ds.labels))
    if final:
        return [("all", everything, everything[:0])]
    if hold_out_scanner:
        held = ds.scanner == hold_out_scanner
        if not held.any():
            raise SystemExit(f"--hold-out-scanner {hold_out_scanner}: no such scanner "
                             f"(have {sorted(set(ds.scanner))})")
        if hold_out_scanner == sources.BUSI_SCANNER and not normal_crops:
            raise SystemExit("--hold-out-scanner BUSI: the normal class exists only in BUSI, "
                             "so a model trained without it cannot learn it (a recipe with normal "
                             "crops, robust-noseg-crops, draws normal tissue from BUS-BRA)")
        return [(f"without-{hold_out_scanner}", everything[~held], everything[held])]
    return [(f"fold{k}", everything[ds.fold != k], everything[ds.fold == k]) for k in folds]


def cmd_train(args):
    ds = sources.load_dev_set(cache_dir=args.cache or None)
    schedule = dict(SCHEDULE)
    for k in ("float_epochs", "qat_epochs", "epoch_images", "ends_wbits", "weight_quant", "act_quant"):
        if getattr(args, k) is not None:
            schedule[k] = getattr(args, k)
    root = Path(args.out) / args.recipe
    root.mkdir(parents=True, exist_ok=True)
    distill = {"width": args.teacher_width, "alpha": args.distill_weight,
               "temperature": args.temperature} if args.teacher_width else None
    for name, train_idx, eval_idx in splits(ds, args.folds, args.hold_out_scanner, args.final,
                                             RECIPES[args.recipe].get("normal_crops", False)):
        from_float = Path(args.from_float) / name / "float.pt" if args.from_float else None
        if from_float and not from_float.exists():
            raise SystemExit(f"--from-float {args.from_float}: no {from_float} (run the float stage there first)")
        run = split_run(ds, train_idx, eval_idx, args.recipe, schedule, root / name, args.seed, args.threads,
                        from_float, distill)
        if not run.run(args.max_epochs):
            print(f"{root / name}: stopped after --max-epochs {args.max_epochs}; rerun to continue")
            return


def cmd_score(args):
    """Out-of-sample predictions of a checkpoint trained outside this protocol (the
    shipped models: train.py on splits/train.txt): every BUS-BRA image, and the
    BUSI images of splits/val.txt (the only BUSI images it never trained on)."""
    from .train import load_checkpoint
    ds = sources.load_dev_set(cache_dir=args.cache or None)
    model, _ = load_checkpoint(args.checkpoint)
    unseen = {f"busi/{p}" for p, _ in data.read_split("val")}
    idx = np.array([i for i, n in enumerate(ds.names) if n in unseen or ds.source[i] == "busbra"])
    out = Path(args.out) / "unseen"
    out.mkdir(parents=True, exist_ok=True)
    images = ds.images[idx]
    np.savez(out / "predictions.npz", names=np.array([ds.names[i] for i in idx]),
             logits=predict(model, images), logits_mirrored=predict(model, images, mirror=True))
    print(f"{out / 'predictions.npz'}: {len(idx)} images")


def gather(run_root, ds_index, mirrored, only_folds=None, member=""):
    """Out-of-fold logits of a recipe's folds, and its held-out-scanner runs;
    with only_folds, those folds alone (recipes screened on fewer folds are then
    compared on the same images); member "teacher": their distillation teachers'."""
    folds, held = [], {}
    for p in sorted(Path(run_root).glob(str(Path("*", member, "predictions.npz")))):
        split = p.relative_to(run_root).parts[0]
        if only_folds is not None and split not in {f"fold{k}" for k in only_folds}:
            continue
        z = np.load(p)
        logits = (z["logits"] + z["logits_mirrored"]) / 2 if mirrored else z["logits"]
        idx = np.array([ds_index[n] for n in z["names"]])
        (held.setdefault(split, []) if split.startswith("without-") else folds).append((idx, logits))
    return folds, held


def fmt(v):
    value, lo, hi = v
    return f"{100 * value:.1f} ({100 * lo:.1f}-{100 * hi:.1f})"


def fmt_auc(v):
    value, lo, hi = v
    return f"{value:.3f} ({lo:.3f}-{hi:.3f})"


def recipe_rows(ds, run_root, mirrored, only_folds=None, member=""):
    ds_index = {n: i for i, n in enumerate(ds.names)}
    folds, held = gather(run_root, ds_index, mirrored, only_folds, member)
    if not folds:
        return None
    idx = np.concatenate([i for i, _ in folds])
    probs = cv_metrics.softmax(np.concatenate([l for _, l in folds]))
    row = {"folds": len(folds)}
    busi = ds.source[idx] == "busi"
    if busi.any():
        row["busi"] = cv_metrics.bootstrap(cv_metrics.busi_figures, ds.labels[idx][busi], probs[busi],
                                           ds.group[idx][busi])
        row["busi_n"] = int(busi.sum())
    for scanner in (None,) + tuple(sources.SCANNERS.values()):
        sel = (ds.source[idx] == "busbra") & ((ds.scanner[idx] == scanner) if scanner else True)
        if sel.any():
            row[f"busbra_{scanner or 'all'}"] = cv_metrics.bootstrap(
                cv_metrics.lesion_figures, ds.labels[idx][sel], probs[sel], ds.group[idx][sel])
            row[f"busbra_{scanner or 'all'}_n"] = int(sel.sum())
    for name, parts in held.items():
        hi = np.concatenate([i for i, _ in parts])
        hp = cv_metrics.softmax(np.concatenate([l for _, l in parts]))
        # Held-out BUSI has normal images: its malignant AUC is then taken among
        # its lesions (busi_figures), as in the BUSI columns.
        figures = cv_metrics.busi_figures if np.all(ds.source[hi] == "busi") else cv_metrics.lesion_figures
        row[name] = cv_metrics.bootstrap(figures, ds.labels[hi], hp, ds.group[hi])
    return row


REFERRAL_SENSITIVITY = 0.97


def referral_figures(labels, refer_and_busi):
    """Sensitivity and specificity of 'refer' on BUSI, and the share of BUS-BRA's
    lesion images referred; refer_and_busi: columns (refer, is BUSI)."""
    refer, busi = refer_and_busi[:, 0] > 0, refer_and_busi[:, 1] > 0
    abnormal = labels != cv_metrics.NORMAL

    def share(x):
        return np.mean(x) if len(x) else np.nan
    return {"busi_sensitivity": share(refer[busi & abnormal]), "busi_specificity": share(~refer[busi & ~abnormal]),
            "busbra_referred": share(refer[~busi])}


def cross_fitted_referral(ds, folds):
    """Temperature and referral threshold fitted on the other folds' out-of-fold
    predictions and applied to each fold (so no fold's figures come from a choice
    made on it); ECE before and after. Returns None with fewer than two folds."""
    if len(folds) < 2:
        return None
    idx_all, refer_all, before, after, temps, thresholds = [], [], [], [], [], []
    for k, (idx, logits) in enumerate(folds):
        rest_idx = np.concatenate([i for j, (i, _) in enumerate(folds) if j != k])
        rest_logits = np.concatenate([l for j, (_, l) in enumerate(folds) if j != k])
        t = cv_metrics.fit_temperature(rest_logits, ds.labels[rest_idx])
        p_rest = cv_metrics.softmax(rest_logits / t)
        thr = cv_metrics.threshold_for_sensitivity(1 - p_rest[:, 0], ds.labels[rest_idx] != 0,
                                                   REFERRAL_SENSITIVITY, ds.source[rest_idx])
        p = cv_metrics.softmax(logits / t)
        idx_all.append(idx)
        refer_all.append(1 - p[:, 0] >= thr)
        before.append(cv_metrics.softmax(logits))
        after.append(p)
        temps.append(t)
        thresholds.append(thr)
    idx = np.concatenate(idx_all)
    labels = ds.labels[idx]
    column = np.column_stack([np.concatenate(refer_all), ds.source[idx] == "busi"]).astype(float)
    return {"temperature": temps, "threshold": thresholds,
            "ece_before": cv_metrics.expected_calibration_error(np.concatenate(before), labels),
            "ece_after": cv_metrics.expected_calibration_error(np.concatenate(after), labels),
            "referral": cv_metrics.bootstrap(referral_figures, labels, column, ds.group[idx])}


def label(run_root):
    """A run folder's name in the tables: its last two path parts (cv/robust,
    cv-long/robust), so recipes run with other schedules stay apart."""
    return "/".join(Path(run_root).parts[-2:])


def table_rows(runs):
    """(label, run folder, member) of each table row: every recipe, and beneath
    one trained with --teacher-width its teachers (same folds, same images)."""
    rows = []
    for run_root in runs:
        rows.append((label(run_root), run_root, ""))
        if any(Path(run_root).glob("*/teacher/predictions.npz")):
            rows.append((label(run_root) + " (its teacher)", run_root, "teacher"))
    return rows


def cmd_report(args):
    ds = sources.load_dev_set(cache_dir=args.cache or None)
    lines = ["Grouped 4-fold cross-validation (BUSI: Al-Dhabyani et al. 2020, near-duplicate groups "
             "kept in one fold; BUS-BRA: Gomez-Flores et al. 2024, its patient-grouped kFold 1-4). "
             "Each fold's model is its last epoch; 95% CIs by group bootstrap."
             + (" Logits averaged with the mirrored image's." if args.mirrored else ""), "",
             "| recipe | folds | BUSI 3-class acc | recall N / B / M | BUSI sens / spec (normal vs abnormal) "
             "| BUSI AUC abnormal-vs-normal / B-vs-M "
             "| BUS-BRA B-vs-M AUC | BUS-BRA called abnormal | AUC LOGIQ7 / LOGIQ5 | AUC on a held-out scanner |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, run_root, member in table_rows(args.runs):
        row = recipe_rows(ds, run_root, args.mirrored, args.folds, member)
        if row is None:
            lines.append(f"| {name} | 0 | | | | | | | | |")
            continue
        b = row.get("busi", {})
        recalls = " / ".join(f"{100 * b[k][0]:.0f}" for k in ("recall_normal", "recall_benign", "recall_malignant")) if b else ""
        bra = row.get("busbra_all", {})
        per_scanner = " / ".join(fmt_auc(row[f"busbra_{s}"]["auc_malignant"]) for s in sources.SCANNERS.values()
                                 if f"busbra_{s}" in row)
        held = "; ".join(f"{k[len('without-'):]}: {fmt_auc(v['auc_malignant'])}" for k, v in row.items()
                         if k.startswith("without-"))
        lines.append(f"| {name} | {row['folds']} | {fmt(b['accuracy']) if b else ''} | {recalls} | "
                     f"{fmt(b['sensitivity']) + ' / ' + fmt(b['specificity']) if b else ''} | "
                     f"{fmt_auc(b['auc_abnormal']) + ' / ' + fmt_auc(b['auc_malignant']) if b else ''} | "
                     f"{fmt_auc(bra['auc_malignant']) if bra else ''} | {fmt(bra['called_abnormal']) if bra else ''} | "
                     f"{per_scanner} | {held} |")
    lines += ["", f"Referral at >= {100 * REFERRAL_SENSITIVITY:.0f}% sensitivity on each source's lesions: refer "
              "when P(benign) + P(malignant) >= a threshold; the softmax temperature and the threshold are fitted on three "
              "folds' out-of-fold predictions and applied to the fourth. ECE: top-1 confidence, 15 bins, "
              "over all folds.", "",
              "| recipe | temperature (per fold) | threshold (per fold) | ECE before / after | "
              "BUSI sensitivity | BUSI specificity | BUS-BRA lesions referred |", "|---|---|---|---|---|---|---|"]
    ds_index = {n: i for i, n in enumerate(ds.names)}
    for name, run_root, member in table_rows(args.runs):
        folds, _ = gather(run_root, ds_index, args.mirrored, args.folds, member)
        c = cross_fitted_referral(ds, folds)
        if c is None:
            continue
        r = c["referral"]
        lines.append(f"| {name} | {', '.join(f'{t:.2f}' for t in c['temperature'])} | "
                     f"{', '.join(f'{t:.3f}' for t in c['threshold'])} | "
                     f"{c['ece_before']:.3f} / {c['ece_after']:.3f} | {fmt(r['busi_sensitivity'])} | "
                     f"{fmt(r['busi_specificity'])} | {fmt(r['busbra_referred'])} |")
    print("\n".join(lines))


def check_distillation_options(parser, args):
    """Fills --distill-weight's and --temperature's defaults; refuses them without
    a teacher, and values outside their range."""
    if args.teacher_width is None:
        if args.distill_weight is not None or args.temperature is not None:
            parser.error("--distill-weight and --temperature need --teacher-width")
        return
    if args.teacher_width < 2:
        parser.error(f"--teacher-width {args.teacher_width}: must be at least 2 (1 is the student itself)")
    args.distill_weight = 0.5 if args.distill_weight is None else args.distill_weight
    args.temperature = 4.0 if args.temperature is None else args.temperature
    if not 0 <= args.distill_weight <= 1:
        parser.error(f"--distill-weight {args.distill_weight}: must be in [0, 1]")
    if args.temperature <= 0:
        parser.error(f"--temperature {args.temperature}: must be positive")


def fold_list(text):
    """--folds' value: "1,3" -> [1, 3]."""
    return [int(k) for k in text.split(",")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a recipe's fold models (resumable)")
    t.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    t.add_argument("--out", default=str(TRAINING_DIR / "runs" / "cv"))
    t.add_argument("--folds", type=fold_list, default=list(sources.FOLDS),
                   help="comma-separated folds to run (default 1,2,3,4)")
    t.add_argument("--hold-out-scanner", choices=tuple(sources.SCANNERS.values()) + (sources.BUSI_SCANNER,))
    t.add_argument("--final", action="store_true", help="train on every development image (the shipped model)")
    t.add_argument("--float-epochs", type=int)
    t.add_argument("--qat-epochs", type=int)
    t.add_argument("--epoch-images", type=int, help="images drawn per epoch")
    t.add_argument("--ends-wbits", type=int, choices=(4, 8),
                   help="weight bits of the first conv and the logit layer (default: as the others)")
    t.add_argument("--weight-quant", choices=WEIGHT_QUANTIZERS,
                   help="weight quantizer of the quantized stage (default uniform; quant.py, docs/training.md)")
    t.add_argument("--act-quant", choices=ACT_QUANTIZERS,
                   help="activation quantizer of the quantized stage (default uniform)")
    t.add_argument("--max-epochs", type=int, help="stop after this many epochs (a rerun resumes)")
    t.add_argument("--from-float", metavar="RUN_DIR",
                   help="take the float stage from RUN_DIR/<fold>/float.pt (an earlier run of the same "
                        "recipe and schedule) and train only the quantized stage")
    t.add_argument("--teacher-width", type=int, metavar="W",
                   help="distil from a float network W times as wide (W >= 2), trained first in each "
                        "<fold>/teacher with the same recipe and float schedule")
    t.add_argument("--distill-weight", type=float, metavar="ALPHA",
                   help="with --teacher-width: loss = (1-ALPHA) CE + ALPHA T^2 KL(softmax(teacher/T) || "
                        "softmax(student/T)) (default 0.5)")
    t.add_argument("--temperature", type=float, metavar="T",
                   help="with --teacher-width: softmax temperature of the distillation term (default 4)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--threads", type=int, default=1)
    c = sub.add_parser("score", help="predictions of an existing checkpoint on the images it never saw")
    c.add_argument("checkpoint")
    c.add_argument("--out", required=True, help="e.g. runs/cv/shipped-w2a4")
    r = sub.add_parser("report", help="markdown table of recipes' cross-validated figures")
    r.add_argument("runs", nargs="+", help="recipe folders (e.g. runs/cv/robust)")
    r.add_argument("--mirrored", action="store_true", help="average each image's logits with its mirror's")
    r.add_argument("--folds", type=fold_list, default=None,
                   help="comma-separated folds to score (default: every fold a recipe ran)")
    for q in (t, c, r):
        q.add_argument("--cache", default=str(TRAINING_DIR / "runs" / "cache"))
    args = p.parse_args(argv)
    if args.command == "train":
        check_distillation_options(p, args)
    {"train": cmd_train, "score": cmd_score, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    main()
