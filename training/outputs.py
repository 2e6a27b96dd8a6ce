"""What each finished epoch leaves in the run's folder.

    epoch_NNN_val_X.npz               the weights, named with the validation NLL
    epoch_NNN_reconstructions.png     25 test digits redrawn pixel by pixel (5x5)
    epoch_NNN_samples.png             25 samples (every --samples-every epochs)
    history.json, curves.png          the NLL per epoch, as numbers and as a plot
"""
import json
import os

import numpy

import quantize
import sampling
from data import pictures
from lib.checkpoint import atomic_write
from models import build as builder
from training.run_folder import HISTORY_FILE

NUM_PICTURES, GRID = 25, (5, 5)



def write_checkpoint(trainer, epoch, nll):
    """The epoch's parameters (the weight average with --ema, as validated), named
    with the epoch and the validation NLL; their description records which."""
    path = os.path.join(trainer.out_dir, "epoch_{:03d}_val_{:.5f}".format(epoch, nll))
    trainer.net.all_params.save_params(path + ".npz", meta=trainer.description())
    if trainer.config.get("save_original_format"):
        trainer.net.all_params.save_params(path + ".pkl", original_format=True)


def write_history(trainer):
    """history.json and the train/validation curves, both written atomically."""
    atomic_write(os.path.join(trainer.out_dir, HISTORY_FILE),
                 lambda f: f.write(json.dumps(trainer.history, indent=1).encode()))
    pictures.plot_curves(os.path.join(trainer.out_dir, "curves.png"), {
        "train": [(h["epoch"], h["train_nll"]) for h in trainer.history],
        "validation": [(h["epoch"], h["valid_nll"]) for h in trainer.history]})


def write_pictures(trainer, epoch):
    """25 reconstructions (every epoch) and 25 samples (every samples_every
    epochs), each as a 5x5 grid."""
    c = trainer.config
    seed = [c["seed"], epoch]
    truth = trainer.valid_t[:NUM_PICTURES]
    h, w = truth.shape[1:3]
    own = trainer.valid_h[:len(truth)] if trainer.conditional else None
    recon = sampling.sample(trainer.net, len(truth), h, w, seed=seed, progress=False,
                            given=truth, condition=own)
    save_pictures(trainer, "epoch_{:03d}_reconstructions.png".format(epoch), recon)
    every = c.get("samples_every", 1)
    if every and epoch % every == 0:
        condition = None
        if c.get("conditional") == "class":  # digits 0..9, 0..9, 0..4
            condition = builder.one_hot(numpy.arange(NUM_PICTURES) % builder.NUM_CLASSES)
        elif c.get("conditional") == "embedding":  # new digits like the test images
            condition = trainer.valid_h[numpy.arange(NUM_PICTURES) % len(trainer.valid_h)]
        samples = sampling.sample(trainer.net, NUM_PICTURES, h, w, seed=seed,
                                  progress=trainer.progress, condition=condition)
        save_pictures(trainer, "epoch_{:03d}_samples.png".format(epoch), samples)


def save_pictures(trainer, name, bins):
    """Bins (num, h, w, 1) -> a 5x5 PNG grid in the output folder."""
    grey = quantize.to_display(bins[..., 0], trainer.config["q_levels"])
    pictures.save_grid(os.path.join(trainer.out_dir, name), grey, *GRID)
