"""tests.compiling.CompileOnce: a reused compiled function computes on its own variables."""
import numpy
import theano
import theano.tensor as T

from tests.compiling import CompileOnce


def counter_step(compile_, scale):
    """A function x -> x * w + scale that adds x to its own w; returns (fn, w)."""
    w = theano.shared(numpy.float32(1.0), name="w")
    x = T.fscalar("x")
    return compile_([x], x * w + numpy.float32(scale), updates=[(w, w + x)]), w


def test_an_equal_graph_gets_a_copy_computing_on_its_own_shared_variables():
    compile_ = CompileOnce(theano.function)
    first, w1 = counter_step(compile_, 0.5)
    second, w2 = counter_step(compile_, 0.5)
    assert len(compile_.compiled) == 1 and second.fn is first
    assert first(numpy.float32(2.0)) == 2.5  # a single output stays unpacked
    assert (w1.get_value(), w2.get_value()) == (3.0, 1.0)
    assert second(numpy.float32(4.0)) == 4.5
    assert (w1.get_value(), w2.get_value()) == (3.0, 5.0)


def test_graphs_that_differ_in_a_constant_are_compiled_apart():
    compile_ = CompileOnce(theano.function)
    half, _ = counter_step(compile_, 0.5)
    three, _ = counter_step(compile_, 3.0)
    assert len(compile_.compiled) == 2
    assert (half(numpy.float32(1.0)), three(numpy.float32(1.0))) == (1.5, 4.0)


def test_a_value_updated_in_place_stays_with_its_own_variable():
    """x * w + 0.5 is computed in place in w's buffer (w is replaced by its update)."""
    compile_ = CompileOnce(theano.function)
    first, w1 = counter_step(compile_, 0.5)
    second, w2 = counter_step(compile_, 0.5)
    for _ in range(3):
        first(numpy.float32(1.0))
        second(numpy.float32(2.0))
    assert (w1.get_value(), w2.get_value()) == (4.0, 7.0)
