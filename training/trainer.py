"""The Trainer: one run's compiled functions, data and resumable state.

Images are quantised to ``q_levels`` bins: network inputs (num, 28, 28, 1)
float32, targets (num, 28, 28, 1) int32. The cost is the categorical
cross-entropy in nats per sub-pixel. The shuffle of each epoch depends only on
(seed, epoch) and the state holds Adam's moments, the learning-rate schedule
(training.schedule), the weight average (--ema) and the running epoch cost, so
a resumed run continues exactly where an uninterrupted one would be.

With --ema the checkpoints, validation and pictures use the averaged weights
(lib.training.WeightAverage); the state keeps the raw ones that Adam trains.
"""
import contextlib
import math
import os
import time

import numpy
import theano
from tqdm import tqdm

import quantize
from data import binarized
from lib.checkpoint import CheckpointError, load_arrays, save_arrays
from lib.ops import floatX
from lib.training import WeightAverage, compile_train_step, nll_per_example, nll_per_subpixel
from models import build as builder
from training import outputs
from training import run_folder
from training import schedule
from training.run_folder import STATE_FILE, DivergedError

LN2 = math.log(2.0)
PRINT_EVERY = 100


class Trainer(object):
    """Owns the compiled functions, the data and the run's state."""

    def __init__(self, config, data, out_dir, progress=True, graph="fast"):
        """``data``: uint8 (num, 28, 28) ``train_images`` and ``valid_images`` (else
        ``test_images``, the validation images of a run with --valid-split 0), with
        their labels (or None) and, for binarized MNIST, the ``binarization``."""
        self.config, self.out_dir, self.progress = config, out_dir, progress
        # written just before the first state is saved (a resumed run's changed
        # settings): a run that fails before leaves config.json as it was
        self.pending_config = None
        self.resumed = False
        numpy.random.seed(config["seed"])  # the original initialiser's random stream
        self.net = builder.build(config, graph=graph)
        fast = graph == "fast" and builder.has_fast_graph(config)
        self.params = self.net.model.get_params()
        q = config["q_levels"]
        # dynamic binarization: the grey training images, binarized anew every epoch
        self.train_grey = data["train_images"] \
            if data.get("binarization") == binarized.DYNAMIC else None
        self.train_x, self.train_t = quantize.quantize(data["train_images"][..., None], q)
        valid = "valid" if "valid_images" in data else "test"
        self.valid_x, self.valid_t = quantize.quantize(data[valid + "_images"][..., None], q)
        self.conditional = self.net.H is not None
        labels = (data.get("train_labels"), data.get(valid + "_labels"))
        self.train_labels = None if labels[0] is None else labels[0][:len(self.train_x)]
        self.valid_labels = None if labels[1] is None else labels[1][:len(self.valid_x)]
        self.encoder_trained = False

        X_r = theano.tensor.itensor4("X_r")
        cost = nll_per_subpixel(self.net.logits, X_r)
        inputs = [self.net.X, X_r] + self.net.inputs[1:]
        # the rate of the next step, set from the schedule before each step
        self.rate = theano.shared(floatX(config["lr"]), name="lr")
        self.schedule = schedule.start(config)
        self.last_rate = None  # the rate of the latest step
        self.average = WeightAverage(self.params, config["ema"]) if config.get("ema") else None
        self.train_fn, self.opt_state = compile_train_step(
            inputs, cost, self.params, self.rate, config["grad_clip"], keep_buffers=fast,
            average=self.average)
        self.nll_fn = theano.function(inputs, nll_per_example(self.net.logits, X_r))
        self.epoch, self.iteration, self.history = 0, 0, []
        self.cost_sum, self.cost_count = 0.0, 0  # training costs of the current epoch
        # Wall time of the current epoch's steps: seconds spent in earlier processes
        # (a resumed epoch) plus those since epoch_start (set by training.stopping).
        self.seconds_before, self.epoch_start = 0.0, None

    # ----- state -------------------------------------------------------------------
    @property
    def state_path(self):
        return os.path.join(self.out_dir, STATE_FILE)

    def epoch_seconds(self):
        """Seconds the current epoch's steps have taken so far, across resumes."""
        running = 0.0 if self.epoch_start is None else time.time() - self.epoch_start
        return self.seconds_before + running

    def state_arrays(self):
        """Everything a resumed run needs: parameters, Adam's moments and step count,
        the position in the run and the current epoch's running training cost and
        wall time, the learning-rate schedule and, with --ema, the weight average
        (``ema/<parameter>``) and its step count."""
        arrays = {"param/" + p.name: p.get_value() for p in self.net.all_params.get_params()}
        arrays["encoder_trained"] = numpy.int64(self.encoder_trained)
        arrays.update({"opt/" + v.name: v.get_value() for v in self.opt_state})
        arrays["lr_schedule"] = schedule.to_array(self.schedule)
        if self.average is not None:
            arrays.update({"ema/" + p.name: a.get_value()
                           for p, a in zip(self.params, self.average.averages)})
            arrays["ema_steps"] = self.average.count.get_value()
        arrays["epoch"] = numpy.int64(self.epoch)
        arrays["iteration"] = numpy.int64(self.iteration)
        arrays["seed"] = numpy.int64(self.config["seed"])
        arrays["epoch_cost_sum"] = numpy.float64(self.cost_sum)
        arrays["epoch_cost_count"] = numpy.int64(self.cost_count)
        arrays["epoch_seconds"] = numpy.float64(self.epoch_seconds())
        return arrays

    def save_state(self):
        """Write the resumable state atomically; refuse (keeping the previous file)
        when any value is not finite."""
        arrays = self.state_arrays()
        bad = sorted(k for k, v in arrays.items() if not numpy.all(numpy.isfinite(v)))
        if bad:
            raise DivergedError(
                "{} became NaN or infinite at epoch {}, iteration {}; stopping. The last "
                "good state is kept in {}; {}".format(
                    ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else ""),
                    self.epoch + 1, self.iteration, self.state_path, self.advice()))
        if self.pending_config is not None:
            run_folder.write_config(self.out_dir, self.pending_config)
            self.pending_config = None
        save_arrays(self.state_path, arrays, meta=self.description())

    def advice(self):
        """What to try after the run diverged (--resume cannot change --grad-clip)."""
        if self.resumed:
            return "resume with a lower --lr"
        return "try a lower --lr or --grad-clip"

    def load_state(self, path, saved_config=None):
        """Restore a state written by ``save_state``; raises CheckpointError.
        ``saved_config``: the run's settings before this sitting (default: the
        current ones), to tell which schedule settings --resume changed."""
        arrays = load_arrays(path)
        for key in ("epoch", "iteration", "seed"):
            if key not in arrays:
                raise CheckpointError("{}: {} is missing; not a resumable state".format(
                    path, key))
        if int(arrays["seed"]) != self.config["seed"]:
            raise CheckpointError("{}: saved with seed {}, but the config says {}".format(
                path, int(arrays["seed"]), self.config["seed"]))
        self.net.all_params.set_param_values(
            {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}, source=path)
        self.encoder_trained = bool(arrays.get("encoder_trained", False))
        for v in self.opt_state:
            key = "opt/" + v.name
            if key not in arrays or arrays[key].shape != v.get_value(borrow=True).shape:
                raise CheckpointError("{}: optimizer state {} missing or mis-shaped".format(
                    path, v.name))
            v.set_value(arrays[key])
        self.epoch, self.iteration = int(arrays["epoch"]), int(arrays["iteration"])
        saved_config = saved_config or self.config
        self.load_schedule(path, arrays, saved_config)
        self.load_average(path, arrays, saved_config.get("ema", 0.0))
        self.cost_sum = float(arrays.get("epoch_cost_sum", 0.0))
        self.cost_count = int(arrays.get("epoch_cost_count", 0))
        self.seconds_before = float(arrays.get("epoch_seconds", 0.0))
        self.history = [h for h in run_folder.read_history(self.out_dir)
                        if h["epoch"] <= self.epoch]

    def load_schedule(self, path, arrays, saved_config):
        """The learning-rate schedule from here on (training.schedule.resumed)."""
        saved = None
        if "lr_schedule" in arrays:
            try:
                saved = schedule.from_array(arrays["lr_schedule"])
            except ValueError as err:
                raise CheckpointError("{}: lr_schedule is damaged ({})".format(path, err))
        self.schedule = schedule.resumed(saved, saved_config, self.config, self.global_step())

    def load_average(self, path, arrays, saved_decay):
        """Restore the weight average; start it afresh when the state has none (a run
        that trained without --ema until now) or when its decay was ``saved_decay``
        and --ema now gives another (an average of two decays would be recorded as
        one)."""
        if self.average is None:
            return
        keys = ["ema/" + p.name for p in self.params]
        if "ema_steps" not in arrays and not any(k in arrays for k in keys):
            self.restart_average()
            return
        for key, a in zip(keys, self.average.averages):
            if key not in arrays or arrays[key].shape != a.get_value(borrow=True).shape:
                raise CheckpointError("{}: weight average {} missing or mis-shaped".format(
                    path, key))
            a.set_value(arrays[key])
        if "ema_steps" not in arrays or arrays["ema_steps"].shape != ():
            raise CheckpointError("{}: ema_steps missing or not a number".format(path))
        self.average.count.set_value(numpy.int64(arrays["ema_steps"]))
        if saved_decay != self.average.decay:
            self.restart_average("the average of --ema {} is dropped: ".format(saved_decay))

    def restart_average(self, why=""):
        """Average from the next step on, saying so (after ``why``, if given)."""
        self.average.restart()
        print("{}averaging the weights (--ema {}) from iteration {} of epoch {} "
              "on".format(why, self.average.decay, self.iteration + 1, self.epoch + 1),
              flush=True)

    def average_record(self):
        """What the history and the checkpoints record of the weights validated:
        ``{"ema": decay, "ema_steps": steps}`` of the average, 0 and 0 for the raw
        weights."""
        if self.average is None:
            return {"ema": 0.0, "ema_steps": 0}
        return {"ema": self.average.decay, "ema_steps": int(self.average.count.get_value())}

    def description(self):
        """The description stored in the run's checkpoints and state: the model and
        its data (run_folder.checkpoint_meta) and which weights they hold
        (:meth:`average_record`; a state's, as models.build.network_of reads it: the
        average where there is one)."""
        return dict(run_folder.checkpoint_meta(self.config), **self.average_record())

    @contextlib.contextmanager
    def averaged_weights(self):
        """Inside the block the network holds the averaged weights (with --ema; the
        raw ones otherwise); the raw ones come back after it, whatever happens."""
        if self.average is None:
            yield
            return
        raw = [p.get_value() for p in self.params]
        for p, a in zip(self.params, self.average.averages):
            p.set_value(a.get_value())
        try:
            yield
        finally:
            for p, value in zip(self.params, raw):
                p.set_value(value)

    # ----- conditions --------------------------------------------------------------
    def prepare_conditions(self):
        """The vectors h of a conditional model: one-hot labels, or the embeddings
        f(x) of an encoder trained first (once per run) with the triplet loss."""
        c = self.config
        if c.get("conditional", "none") == "class":
            self.train_h = builder.one_hot(self.train_labels)
            self.valid_h = builder.one_hot(self.valid_labels)
        elif c.get("conditional") == "embedding":
            if not self.encoder_trained:
                self.train_encoder()
            self.train_h = self.net.embed(self.train_x)
            self.valid_h = self.net.embed(self.valid_x)
            from models.encoder import centroid_accuracy
            share = centroid_accuracy(self.train_h, self.train_labels, self.valid_h,
                                      self.valid_labels)
            print("encoder: {:.1%} of the validation images lie nearest to their own "
                  "digit's mean training embedding".format(share), flush=True)

    def train_encoder(self):
        """Triplet-loss training of the encoder on the training images."""
        from models.encoder import compile_triplet_functions, train_encoder
        c = self.config
        step, loss, _ = compile_triplet_functions(self.net.encoder_input, self.net.encoder,
                                                  margin=c["margin"], learning_rate=c["lr"],
                                                  grad_clip=c["grad_clip"])
        losses = train_encoder(step, self.train_x, self.train_labels, c["encoder_steps"],
                               seed=c["seed"])
        if len(losses):
            n = min(50, len(losses))
            print("encoder: triplet loss {:.4f} (first {n} steps) -> {:.4f} (last {n})".format(
                losses[:n].mean(), losses[-n:].mean(), n=n), flush=True)
        self.encoder_trained = True

    # ----- training ----------------------------------------------------------------
    def batches_per_epoch(self):
        return len(self.train_x) // self.config["batch_size"]

    def global_step(self):
        """Training steps taken in the whole run so far."""
        return self.epoch * self.batches_per_epoch() + self.iteration

    def epoch_order(self, epoch):
        """The shuffle of epoch ``epoch``: a function of (seed, epoch) only, so a
        resumed run sees the same batches as an uninterrupted one."""
        return numpy.random.RandomState([self.config["seed"], epoch]).permutation(
            len(self.train_x))

    def train_step(self, order):
        """One Adam step on the batch at ``self.iteration`` of ``order``; returns the cost.

        Raises DivergedError on a NaN/inf cost; nothing is saved then, so the
        files on disk keep the last good state.
        """
        bs = self.config["batch_size"]
        idx = order[self.iteration * bs:(self.iteration + 1) * bs]
        self.last_rate = schedule.rate_at(self.schedule, self.global_step())
        self.rate.set_value(floatX(self.last_rate))
        cost = float(self.train_fn(*self.batch("train", idx)))
        if not numpy.isfinite(cost):
            raise DivergedError(
                "the training cost became {} at epoch {}, iteration {}; stopping. The "
                "last good state is kept in {}; {}".format(
                    cost, self.epoch + 1, self.iteration + 1, self.state_path,
                    self.advice()))
        self.cost_sum += cost
        self.cost_count += 1
        self.iteration += 1
        return cost

    def batch(self, split, idx):
        """Function arguments for images ``idx`` of ``split``: inputs, targets
        and, for a conditional model, the one-hot labels."""
        x, t = getattr(self, split + "_x")[idx], getattr(self, split + "_t")[idx]
        return (x, t, getattr(self, split + "_h")[idx]) if self.conditional else (x, t)

    def mean_cost(self):
        """Mean training cost of the current epoch so far (NaN before any step)."""
        return self.cost_sum / self.cost_count if self.cost_count else float("nan")

    def train_epoch(self, stop_flag, on_step=None):
        """Run the rest of the current epoch; returns its mean training cost, or None
        when ``stop_flag()`` turned true before the epoch's last step.

        ``on_step(trainer)``, if given, is called after every step (a test hook).
        """
        n = self.batches_per_epoch()
        order = self.epoch_order(self.epoch)
        if self.train_grey is not None:
            bits = binarized.epoch_binarization(self.train_grey, self.config["seed"], self.epoch)
            self.train_x, self.train_t = quantize.quantize(bits[..., None], 2)
        bar = tqdm(total=n, initial=self.iteration, desc="epoch %d" % (self.epoch + 1),
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        every = self.config.get("state_every", 0)
        try:
            while self.iteration < n:
                self.train_step(order)
                bar.update(1)
                bar.set_postfix(cost="%.4f" % self.mean_cost())
                if self.iteration % PRINT_EVERY == 0 or self.iteration == 1:
                    tqdm.write("Training: epoch {}, iter {}, cost {:.5f}".format(
                        self.epoch + 1, self.iteration, self.mean_cost()))
                if on_step is not None:
                    on_step(self)
                if every and self.iteration % every == 0 and self.iteration < n:
                    self.save_state()
                if stop_flag() and self.iteration < n:
                    return None
        finally:
            bar.close()
        return self.mean_cost()

    def validate(self):
        """Mean NLL over the validation images, in nats per sub-pixel."""
        bs = self.config["valid_batch_size"]
        total = 0.0
        for start in range(0, len(self.valid_x), bs):
            total += float(self.nll_fn(*self.batch("valid", slice(start, start + bs))).sum())
        return total / self.valid_t.size

    def end_of_epoch(self, train_cost, elapsed):
        """Validate, then write the checkpoint, pictures, history and state.
        ``elapsed``: the epoch's training seconds (resumed epochs: all processes')."""
        epoch = self.epoch + 1
        with self.averaged_weights():
            nll = self.validate()
            if not math.isfinite(nll):
                raise DivergedError(
                    "the validation NLL became {} after epoch {}; stopping. The last good "
                    "state is kept in {}".format(nll, epoch, self.state_path))
            outputs.write_checkpoint(self, epoch, nll)
            outputs.write_pictures(self, epoch)
        subpixels = self.valid_t[0].size
        last_step = self.global_step() - 1
        self.history.append({
            "epoch": epoch, "train_nll": train_cost, "valid_nll": nll,
            "valid_bits_per_dim": nll / LN2, "valid_nats_per_image": nll * subpixels,
            "epoch_seconds": elapsed,
            # the rate of the epoch's last step, and the schedule it followed
            "lr": schedule.rate_at(self.schedule, last_step),
            "lr_decay": self.schedule["lr_decay"], "lr_floor": self.schedule["lr_floor"],
            "steps": last_step + 1,
            **self.average_record(),
            "valid_set": run_folder.valid_set(self.config)})
        outputs.write_history(self)
        # The state goes last: a crash before it resumes the epoch, and the history
        # records beyond the state's epoch are dropped on resume.
        self.epoch, self.iteration = epoch, 0
        self.cost_sum, self.cost_count = 0.0, 0
        self.seconds_before, self.epoch_start = 0.0, None
        self.save_state()
        print("Validation after epoch {}: {:.5f} nats/sub-pixel, {:.5f} bits/dim, "
              "{:.2f} nats/image (train {:.5f}, {:.0f} s)".format(
                  epoch, nll, nll / LN2, nll * subpixels, train_cost, elapsed), flush=True)
