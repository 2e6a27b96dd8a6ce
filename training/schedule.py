"""The learning rate of every training step: constant, or decayed every step to a floor.

A schedule is ``{"origin": S, "lr": R, "lr_decay": D, "lr_floor": F}``: step s
(counted from 0 over the whole run, s >= S) takes the rate max(F, R * D^(s - S)).
A fresh run starts at S = 0 with R = --lr; D = 1 (the default) keeps the rate
constant. The state saves the schedule, so a resumed run continues it exactly.

On --resume (precedence): an --lr that differs from the run's saved one starts
the schedule afresh at the current step from that rate; otherwise a changed
--lr-decay or --lr-floor continues from the rate the run had reached; with no
change the saved schedule goes on.
"""
import numpy

KEYS = ("origin", "lr", "lr_decay", "lr_floor")
DEFAULTS = {"lr_decay": 1.0, "lr_floor": 0.0}  # a constant rate, as before schedules


def start(config, step=0):
    """The schedule of ``config``'s settings (lr, lr_decay, lr_floor) from ``step``."""
    return {"origin": step, "lr": config["lr"],
            "lr_decay": config.get("lr_decay", DEFAULTS["lr_decay"]),
            "lr_floor": config.get("lr_floor", DEFAULTS["lr_floor"])}


def rate_at(schedule, step):
    """The learning rate of step ``step`` (0-based over the run) as a Python float."""
    decayed = schedule["lr"] * schedule["lr_decay"] ** (step - schedule["origin"])
    return max(schedule["lr_floor"], decayed)


def resumed(saved_schedule, saved_config, config, step):
    """The schedule from ``step`` on of a run resumed with settings ``config``.
    ``saved_schedule``: the one its state holds (None for states written before
    schedules: a constant rate, ``saved_config``'s lr); ``saved_config``: its
    settings before this sitting."""
    before = saved_schedule or start(saved_config)
    if config["lr"] != saved_config["lr"]:
        return start(config, step)
    changed = any(config.get(k, DEFAULTS[k]) != saved_config.get(k, DEFAULTS[k])
                  for k in DEFAULTS)
    if changed:
        return dict(start(config, step), lr=rate_at(before, step))
    return before


def to_array(schedule):
    """The schedule as the float64 array [origin, lr, lr_decay, lr_floor] (state.npz)."""
    return numpy.array([schedule[k] for k in KEYS], dtype=numpy.float64)


def from_array(values):
    """The inverse of :func:`to_array`; ValueError for a wrongly shaped array."""
    values = numpy.asarray(values, dtype=numpy.float64)
    if values.shape != (len(KEYS),) or not numpy.all(numpy.isfinite(values)):
        raise ValueError("a learning-rate schedule is {} finite numbers ({})".format(
            len(KEYS), ", ".join(KEYS)))
    schedule = dict(zip(KEYS, (float(v) for v in values)))
    schedule["origin"] = int(schedule["origin"])
    return schedule
