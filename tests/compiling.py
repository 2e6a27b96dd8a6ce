"""How the tests compile the graphs they check against NumPy or against each other.

``compile_light`` uses Theano's light optimizer ('o1': the 'fast_compile' graph
rewrites, C implementations): the same mathematics, compiled several times faster
for the recurrent models (the Row LSTM test model's gradient function: 14.5 s with
the default mode, 2.1 s with this one). What the scripts run is tested as the
scripts compile it, with the default mode: the regressions against the recorded
fixtures, the fast training graph, training and generate.py end to end.
"""
import lib  # noqa: F401  (configures Theano before it is imported)
import theano

LIGHT_MODE = theano.Mode(optimizer="o1")


def compile_light(inputs, outputs, **kwargs):
    """``theano.function(inputs, outputs, **kwargs)`` compiled in LIGHT_MODE."""
    return theano.function(inputs, outputs, mode=LIGHT_MODE, **kwargs)
