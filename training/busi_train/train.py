"""Train the float network, or a quantized one initialised from a float checkpoint.

  /usr/bin/python3 -m busi_train.train --out runs/float --epochs 80 --lr 1e-3
  /usr/bin/python3 -m busi_train.train --wbits 2 --abits 4 --init runs/float/best.pt \
      --out runs/w2a4 --epochs 40

Adam, batch 16, cross-entropy (class-weighted by default), cosine learning-rate
decay. The checkpoint kept (best.pt) is the epoch with the highest validation
accuracy (ties: lower validation loss); the test set is not touched here.

Optional: knowledge distillation from a teacher checkpoint (--teacher, run in
eval mode on the same augmented batch; loss (1 - ALPHA) CE + ALPHA T^2
KL(softmax(teacher / T) || softmax(student / T))), and class-balanced sampling
(--balanced: each class drawn equally often, with replacement; the epoch keeps
its length).
"""
import argparse
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import WeightedRandomSampler

from . import data
from .model import busi_net
from .quant import ACT_QUANTIZERS, WEIGHT_QUANTIZERS

TRAINING_DIR = Path(__file__).resolve().parent.parent


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def confusion(pred, labels, n=len(data.CLASSES)):
    m = torch.zeros(n, n, dtype=torch.int64)
    for t, p in zip(labels.tolist(), pred.tolist()):
        m[t, p] += 1
    return m


def distillation_loss(student_logits, teacher_logits, ce, alpha, temperature):
    """(1 - alpha) ce + alpha T^2 KL(softmax(teacher / T) || softmax(student / T)), ce being
    the student's hard-label loss (its caller's cross-entropy: class-weighted here,
    cv.classification_loss there). T^2 keeps the soft term's gradients on the scale
    of the hard one's (Hinton et al., 2015)."""
    if alpha == 0:
        return ce
    kl = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                  F.log_softmax(teacher_logits / temperature, dim=1), reduction="batchmean", log_target=True)
    return (1 - alpha) * ce + alpha * temperature ** 2 * kl


def epoch_order(labels, generator, balanced=False):
    """Indices of one epoch's images: a permutation, or with balanced=True as many
    draws with replacement, each class equally likely (images of a class uniformly)."""
    if not balanced:
        return torch.randperm(len(labels), generator=generator)
    counts = torch.bincount(labels)
    sampler = WeightedRandomSampler(1.0 / counts[labels].double(), len(labels), replacement=True,
                                    generator=generator)
    return torch.tensor(list(sampler), dtype=torch.int64)


@torch.no_grad()
def evaluate(model, images_u8, labels, batch=64):
    model.eval()
    logits = torch.cat([model(images_u8[i:i + batch].float() / 255.0)
                        for i in range(0, len(images_u8), batch)])
    loss = F.cross_entropy(logits, labels).item()
    pred = logits.argmax(dim=1)
    return {"accuracy": (pred == labels).float().mean().item(), "loss": loss,
            "confusion": confusion(pred, labels).tolist()}, logits


def load_checkpoint(path):
    ck = torch.load(path, map_location="cpu")
    cfg = ck["config"]
    if cfg.get("width", 1) != 1:
        raise SystemExit(f"{path}: a width-{cfg['width']} distillation teacher (training only: "
                         "the runtime and the exporters take the paper's widths)")
    model = busi_net(cfg.get("wbits"), cfg.get("abits"), cfg.get("ends_wbits"),
                     cfg.get("weight_quant", "uniform"), cfg.get("act_quant", "uniform"))
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model, ck


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="run folder (checkpoints, log)")
    p.add_argument("--wbits", type=int, choices=(2, 4, 8))
    p.add_argument("--abits", type=int, choices=(2, 4, 8))
    p.add_argument("--init", help="float checkpoint to start a quantized run from")
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-min", type=float, default=1e-5)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--class-weights", choices=("balanced", "none"),
                   help="cross-entropy weights inversely proportional to the class frequencies "
                        "(default: balanced; none with --balanced, whose sampling already balances)")
    p.add_argument("--balanced", action="store_true",
                   help="class-balanced sampling: each epoch draws as many training images as the "
                        "set holds, with replacement, each class equally often")
    p.add_argument("--teacher", metavar="PATH",
                   help="distil from this checkpoint (e.g. checkpoints/busi-float.pt): it runs in eval "
                        "mode, without gradients, on the same augmented batch")
    p.add_argument("--distill-weight", type=float, metavar="ALPHA",
                   help="with --teacher: loss = (1-ALPHA) CE + ALPHA T^2 KL(softmax(teacher/T) || "
                        "softmax(student/T)) (default 0.5)")
    p.add_argument("--temperature", type=float, default=4.0, metavar="T",
                   help="with --teacher: softmax temperature of the distillation term")
    p.add_argument("--split", default="", metavar="PREFIX",
                   help="read splits/PREFIXtrain.txt and PREFIXval.txt (default: the duplicate-aware "
                        "split; 'random-' is make_split.py --random's)")
    p.add_argument("--limit", type=int, default=0,
                   help="use only the first N training and N validation images (smoke tests)")
    p.add_argument("--max-rotation", type=float, default=20.0,
                   help="augmentation: rotation drawn from +-this many degrees")
    p.add_argument("--scale-range", type=float, nargs=2, default=(0.85, 1.15), metavar=("LO", "HI"),
                   help="augmentation: scale drawn from [LO, HI]")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="decoupled weight decay (AdamW); 0 is the paper's plain Adam")
    p.add_argument("--weight-quant", choices=WEIGHT_QUANTIZERS, default="uniform",
                   help="with --wbits: the weight quantizer (quant.py; docs/training.md)")
    p.add_argument("--act-quant", choices=ACT_QUANTIZERS, default="uniform",
                   help="with --abits: the activation quantizer")
    p.add_argument("--calib-images", type=int, default=64,
                   help="training images that set the initial quantizer scales")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", help="BUSI folder (default: $BUSI_DATA or ../shared/busi)")
    p.add_argument("--cache", default=str(TRAINING_DIR / "runs" / "cache"),
                   help="where decoded images are cached ('' to disable)")
    args = p.parse_args(argv)
    if args.class_weights is None:
        args.class_weights = "none" if args.balanced else "balanced"
    if args.teacher is None and args.distill_weight is not None:
        p.error("--distill-weight needs --teacher")
    if args.teacher is not None:
        args.distill_weight = 0.5 if args.distill_weight is None else args.distill_weight
        if not 0 <= args.distill_weight <= 1:
            p.error(f"--distill-weight {args.distill_weight}: must be in [0, 1]")
        if args.temperature <= 0:
            p.error(f"--temperature {args.temperature}: must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    if (args.wbits is None) != (args.abits is None):
        raise SystemExit("give both --wbits and --abits, or neither for the float network")
    if args.wbits is None and (args.weight_quant, args.act_quant) != ("uniform", "uniform"):
        raise SystemExit("--weight-quant and --act-quant choose quantizers: they need --wbits and --abits")
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train_items, val_items = data.read_split(args.split + "train"), data.read_split(args.split + "val")
    if args.limit:
        train_items, val_items = train_items[::len(train_items) // args.limit][:args.limit], \
            val_items[::len(val_items) // args.limit][:args.limit]
    root = args.data or data.data_root()
    x_train, y_train = data.load_set(train_items, root, args.cache or None)
    x_val, y_val = data.load_set(val_items, root, args.cache or None)

    model = busi_net(args.wbits, args.abits, weight_quant=args.weight_quant, act_quant=args.act_quant)
    init_info = None
    if args.init:
        float_model, ck = load_checkpoint(args.init)
        if float_model.quantized:
            raise SystemExit(f"{args.init}: --init must be a float checkpoint")
        missing, _ = model.load_state_dict(float_model.state_dict(), strict=False)
        assert all(".wq." in k or ".act." in k for k in missing), missing
        init_info = {"checkpoint": str(args.init), "epoch": ck["epoch"], "val": ck["val"]}
    teacher = teacher_info = None
    if args.teacher:
        teacher, ck = load_checkpoint(args.teacher)
        teacher_info = {"checkpoint": str(args.teacher), "epoch": ck["epoch"], "val": ck["val"],
                        "wbits": ck["config"].get("wbits"), "abits": ck["config"].get("abits")}
    if model.quantized:
        gen = torch.Generator().manual_seed(args.seed)
        idx = torch.randperm(len(x_train), generator=gen)[:args.calib_images]
        model.init_quantizers(x_train[idx].float() / 255.0)

    counts = torch.bincount(y_train, minlength=len(data.CLASSES)).float()
    weights = (counts.sum() / (len(counts) * counts.clamp_min(1))) \
        if args.class_weights == "balanced" else torch.ones(len(counts))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay) \
        if args.weight_decay else torch.optim.Adam(model.parameters(), lr=args.lr)
    aug = data.augmenter(max_rotation_deg=args.max_rotation, scale_range=tuple(args.scale_range))
    gen = torch.Generator().manual_seed(args.seed)
    steps_per_epoch = math.ceil(len(x_train) / args.batch)
    total = args.epochs * steps_per_epoch

    config = {k: v for k, v in vars(args).items() if k not in ("cache", "data", "threads")}
    config.update({"init_from": init_info, "teacher_from": teacher_info,
                   "optimizer": "AdamW" if args.weight_decay else "Adam", "schedule": "cosine",
                   "loss": "cross-entropy + distillation" if teacher else "cross-entropy",
                   "sampling": "class-balanced" if args.balanced else "permutation",
                   "augment": vars(aug) | {"flips": "h+v"},
                   "split": {"train": len(train_items), "val": len(val_items)}})
    best = None
    # A new run in the same folder replaces the old log: study.py counts its lines as epochs run.
    log = open(out / "log.jsonl", "w")
    step = 0
    for epoch in range(1, args.epochs + 1):
        if model.calibrates_every_epoch:
            # its own generator: the training draws stay those of the uniform quantizers
            pick = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
            model.epoch_start_quantizers(x_train[pick[:args.calib_images]].float() / 255.0, epoch, args.epochs)
        model.train()
        t0 = time.time()
        order = epoch_order(y_train, gen, args.balanced)
        total_loss = 0.0
        for i in range(0, len(order), args.batch):
            lr = args.lr_min + 0.5 * (args.lr - args.lr_min) * (1 + math.cos(math.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[i:i + args.batch]
            x = aug(x_train[idx], gen)
            if teacher is None:
                loss = F.cross_entropy(model(x), y_train[idx], weight=weights)
            else:
                with torch.no_grad():
                    teacher_logits = teacher(x)
                logits = model(x)
                loss = distillation_loss(logits, teacher_logits, F.cross_entropy(logits, y_train[idx], weight=weights),
                                         args.distill_weight, args.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total_loss += loss.item() * len(idx)
            step += 1
        val, _ = evaluate(model, x_val, y_val)
        rec = {"epoch": epoch, "train_loss": total_loss / len(x_train), "lr": lr,
               "val_accuracy": val["accuracy"], "val_loss": val["loss"],
               "val_confusion": val["confusion"], "seconds": round(time.time() - t0, 1)}
        log.write(json.dumps(rec) + "\n")
        log.flush()
        print(json.dumps(rec), flush=True)
        # (inq-pow2: only epochs after its last portion froze, the ones that export)
        if model.exportable and (best is None or (val["accuracy"], -val["loss"]) > (best["accuracy"], -best["loss"])):
            best = dict(val, epoch=epoch)
            torch.save({"config": config, "epoch": epoch, "val": val,
                        "state_dict": model.state_dict()}, out / "best.pt")
    torch.save({"config": config, "epoch": args.epochs, "val": val,
                "state_dict": model.state_dict()}, out / "last.pt")
    summary = {"best_epoch": best["epoch"], "best_val_accuracy": best["accuracy"],
               "best_val_confusion": best["confusion"], "epochs": args.epochs, "config": config}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({"best": summary["best_epoch"], "val_accuracy": best["accuracy"]}))
    return summary


if __name__ == "__main__":
    main()
