"""Model: the list of a network's parameters, with printing, saving and loading."""
import numpy

from lib.checkpoint import CheckpointError, load_arrays, save_arrays, save_pickle


class Model(object):
    """Collects the parameters (Theano shared variables) of the layers added to it."""

    def __init__(self, name=""):
        self.name = name
        self.layers = []
        self.params = []

    def add_layer(self, layer):
        self.layers.append(layer)
        self.params.extend(layer.params)

    def get_params(self):
        return self.params

    def param_values(self):
        """``{name: ndarray}`` copies of the current parameter values."""
        return {p.name: p.get_value() for p in self.params}

    def count_params(self):
        return int(sum(numpy.prod(p.get_value(borrow=True).shape) for p in self.params))

    def print_params(self, out=print):
        for p in self.params:
            out("{} ({})".format(p.name, int(numpy.prod(p.get_value(borrow=True).shape))))
        out("total number of parameters: {}".format(self.count_params()))
        out("Note: Effective number of parameters might be less due to masking!!")
        return self.count_params()

    def save_params(self, file_name, original_format=False, meta=None):
        """Save all parameters atomically: ``.npz`` (no pickle, with the optional
        ``meta`` dict beside them) or, on request, the original's pickled ``dict``."""
        if original_format:
            save_pickle(file_name, self.param_values())
        else:
            save_arrays(file_name, self.param_values(), meta=meta)

    def load_params(self, file_name):
        """Load every parameter from a checkpoint (ours or the original's).

        Raises CheckpointError listing every missing, unexpected and mis-shaped
        parameter; nothing is assigned unless everything fits.
        """
        self.set_param_values(load_arrays(file_name), source=file_name)

    def set_param_values(self, values, source="checkpoint"):
        """Assign ``{name: ndarray}`` to the parameters, all or nothing."""
        expected = {p.name: p.get_value(borrow=True).shape for p in self.params}
        missing = sorted(set(expected) - set(values))
        unexpected = sorted(set(values) - set(expected))
        misshaped = sorted(
            "{}: checkpoint {} vs model {}".format(n, tuple(values[n].shape), expected[n])
            for n in set(expected) & set(values) if tuple(values[n].shape) != expected[n])
        if missing or unexpected or misshaped:
            lines = ["{} does not fit model {!r}:".format(source, self.name)]
            for title, names in (("missing", missing), ("unexpected", unexpected),
                                 ("mis-shaped", misshaped)):
                if names:
                    lines.append("  {} ({}): {}".format(title, len(names), ", ".join(names)))
            raise CheckpointError("\n".join(lines))
        for p in self.params:
            p.set_value(numpy.asarray(values[p.name], dtype=p.dtype))
