"""How the tests compile the graphs they check against NumPy or against each other.

``compile_light`` uses Theano's light optimizer ('o1': the 'fast_compile' graph
rewrites, C implementations): the same mathematics, compiled several times faster
for the recurrent models (the Row LSTM test model's gradient function: 14.5 s with
the default mode, 2.1 s with this one). What the scripts run is tested as the
scripts compile it, with the default mode: the regressions against the recorded
fixtures, the fast training graph, training and generate.py end to end.

``CompileOnce`` (installed for the whole session by tests/conftest.py) makes
``theano.function`` compile each distinct graph once: a request for a graph
equal to one compiled before gets that function, run on its own shared
variables.
"""
import lib  # noqa: F401  (configures Theano before it is imported)
import theano
from theano.compile import SharedVariable
from theano.gof import Variable
from theano.scan_module.scan_utils import equal_computations

LIGHT_MODE = theano.Mode(optimizer="o1")


def compile_light(inputs, outputs, **kwargs):
    """``theano.function(inputs, outputs, **kwargs)`` compiled in LIGHT_MODE."""
    return theano.function(inputs, outputs, mode=LIGHT_MODE, **kwargs)


class CompileOnce(object):
    """``theano.function`` for the test session, compiling each distinct graph once.

    Many tests build the same small network again (every ``train_mnist.py`` run of
    tests.test_train compiles the same training step), and Theano's optimizer spends
    seconds on each. Asked for a graph equal to one compiled before (same inputs,
    outputs, updates and mode; ``equal_computations`` compares ops and constants'
    values), this returns that compiled function working on the new graph's own
    shared variables (:class:`Borrowed`). Any other request (extra arguments, shared
    variables with default updates) compiles as usual.
    """

    def __init__(self, compile_):
        self.compile = compile_
        self.compiled = []  # (key, inputs, outputs, update targets, shared variables, fn)

    def __call__(self, inputs, outputs=None, mode=None, updates=None, **kwargs):
        request = self._describe(inputs, outputs, mode, updates, kwargs)
        if request is None:
            return self.compile(inputs, outputs, mode=mode, updates=updates, **kwargs)
        for entry in self.compiled:
            fn = self._borrow_if_equal(request, entry)
            if fn is not None:
                return fn
        fn = self.compile(inputs, outputs, mode=mode, updates=updates)
        self.compiled.append(request + (fn,))
        return fn

    @staticmethod
    def _describe(inputs, outputs, mode, updates, kwargs):
        """(key, inputs, outputs and update values, update targets, shared variables),
        or None for a request this does not reuse."""
        if kwargs or outputs is None or not isinstance(inputs, (list, tuple)):
            return None
        if not all(isinstance(v, Variable) for v in inputs):
            return None  # theano.In and friends
        single = not isinstance(outputs, (list, tuple))
        outputs = [outputs] if single else list(outputs)
        pairs = list(updates.items() if hasattr(updates, "items") else updates or [])
        graph = outputs + [value for _, value in pairs]
        if not all(isinstance(v, Variable) for v in graph):
            return None
        shared = [v for v in theano.gof.graph.inputs(graph + [t for t, _ in pairs])
                  if isinstance(v, SharedVariable)]
        if any(getattr(v, "default_update", None) is not None for v in shared):
            return None
        if mode is not None and not isinstance(mode, str):
            linker = mode.linker
            mode = (type(mode), str(mode.provided_optimizer), type(linker),
                    getattr(linker, "allow_gc", None))
        key = (mode, single, len(inputs), len(outputs), len(pairs), len(shared))
        targets = [shared.index(t) for t, _ in pairs]
        return key, list(inputs), graph, targets, shared

    @staticmethod
    def _borrow_if_equal(request, entry):
        key, inputs, graph, targets, shared = request
        old_key, old_inputs, old_graph, old_targets, old_shared, fn = entry
        if key != old_key or targets != old_targets:
            return None
        try:
            if not equal_computations(graph, old_graph, in_xs=inputs + shared,
                                      in_ys=old_inputs + old_shared):
                return None
        except RecursionError:
            return None
        return Borrowed(fn, [(old, new) for old, new in zip(old_shared, shared)
                             if old is not new])


class Borrowed(object):
    """A compiled function run on other shared variables of the same types: for each
    call their values are put into the function's own variables, and afterwards the
    results are moved back and the function's own values restored."""

    def __init__(self, fn, pairs):
        self.fn = fn
        self.cells = [(own.container.storage, other.container.storage)
                      for own, other in pairs]  # one-element lists the function reads

    def __call__(self, *args, **kwargs):
        saved = [own[0] for own, _ in self.cells]
        for own, other in self.cells:
            own[0] = other[0]
        try:
            return self.fn(*args, **kwargs)
        finally:
            for (own, other), value in zip(self.cells, saved):
                other[0], own[0] = own[0], value

    def __getattr__(self, name):
        return getattr(self.fn, name)
