"""pixelConv: the gated-PixelCNN layout (vertical + horizontal stacks) without gates.

Input ``(batch, height, width, input_dim)``; output ``(batch, height, width,
input_dim, Q_LEVELS)`` logits, or ``(batch, height, width, input_dim)`` when
``Q_LEVELS`` is None.

How the stacks stay causal without masks (the shift/crop trick)
---------------------------------------------------------------
Vertical stack. A k x k masked convolution that may look only at rows above
is replaced by an unmasked ``(k//2 + 1) x k`` convolution on the input padded
with ``k//2 + 1`` zero rows on top and bottom (``k//2`` columns each side).
Output row r then covers padded rows r .. r + k//2, i.e. image rows
r - k//2 - 1 .. r - 1: strictly above row r. Keeping the first ``height``
output rows gives a map whose row r sees only rows < r; keeping rows
1 .. height instead (shifted down one) gives a map whose row r sees rows <= r,
which is what the next vertical layer consumes::

    k = 3, image rows 0..3             output row r sees image rows
    padded:  z z  0 1 2 3  z z         r=0: z z   r=1: z 0   r=2: 0 1  ...
             (2-row window)            -> "rows < r" after keeping [:height]

Horizontal stack. A ``1 x (k//2 + 1)`` convolution with ``k//2`` zero columns
on each side: output column c covers image columns c - k//2 .. c; cropping the
last ``k//2`` columns keeps ``width`` of them. The first layer sees the raw
pixels, so it uses mask 'a' (a 1 x 7 filter without its centre and right
half) to exclude the pixel itself. Feeding the vertical map of rows < r into
the horizontal stack at row r joins "everything above" with "everything to the
left", so every earlier pixel is in the receptive field: no blind spot.

The graph below is exactly the original's (same layers, order, names and
shapes); the regression tests compare it against recorded outputs.
"""
import theano.tensor as T

from lib.layers import Conv2D, Layer, WrapperLayer
from lib.ops import apply_activation

FIRST_FILTER_SIZE = 7  # the first layer's effective k x k window
FILTER_SIZE = 3        # every later layer's
MIN_LAYERS = 2         # num_layers - 1 stack layers: 2 leaves only the 7x7 first one


def check_arguments(num_layers, Q_LEVELS):
    """Raise ValueError for sizes no pixelConv can have."""
    if num_layers < MIN_LAYERS:
        raise ValueError("pixelConv needs num_layers >= {}, got {}".format(MIN_LAYERS, num_layers))
    if Q_LEVELS is not None and Q_LEVELS < 2:
        raise ValueError("Q_LEVELS must be None or >= 2, got {}".format(Q_LEVELS))


class pixelConv(Layer):
    """PixelCNN with vertical/horizontal stacks, a residual horizontal path and
    two 1x1 output layers. Parameters are named ``<name>.vstackN``,
    ``.hstackN``, ``.v2hN``, ``.h2hstackN``, ``.combined_stack1/2``."""

    def __init__(self, input_layer, input_dim, DIM, Q_LEVELS=None, num_layers=6,
                 activation="relu", name=""):
        Layer.__init__(self, name)
        check_arguments(num_layers, Q_LEVELS)
        act = lambda x: apply_activation(x, activation)  # noqa: E731
        self.convs = {}  # layer name -> Conv2D, in construction order
        self.above_maps, self.horizontal_maps = [], []  # per layer, (batch, DIM, H, W)

        def conv(inputs, n_in, n_out, size, border, suffix, masktype=None, activation=None):
            layer = Conv2D(inputs if isinstance(inputs, Layer) else WrapperLayer(inputs),
                           n_in, n_out, size, border_mode=border, masktype=masktype,
                           activation=activation, name=name + "." + suffix)
            self.convs[layer.name] = layer
            self.params += layer.params
            return layer

        self.X = input_layer.output().dimshuffle(0, 3, 1, 2)  # (batch, input_dim, H, W)

        # Layer 1: 4x7 vertical conv on the padded image; 1x7 mask-'a' horizontal conv.
        k = FIRST_FILTER_SIZE
        vstack = conv(self.X, input_dim, DIM, (k // 2 + 1, k), (k // 2 + 1, k // 2), "vstack1")
        out_v = vstack.output()                                   # (batch, DIM, H + k//2 + 2, W)
        above = out_v[:, :, :-(k // 2) - 2, :]                    # row r sees rows < r
        hstack = conv(T.concatenate([above, self.X], axis=1), input_dim + DIM, DIM,
                      (1, k), (0, k // 2), "hstack1", masktype="a")
        X_h = hstack.output()                                     # (batch, DIM, H, W)
        self.above_maps.append(above)
        self.horizontal_maps.append(X_h)
        X_v = out_v[:, :, 1:-(k // 2) - 1, :]                     # row r sees rows <= r

        # Layers 2 .. num_layers-1: vertical 2x3, v2h 1x1, horizontal 1x2, h2h 1x1.
        k = FILTER_SIZE
        for i in range(2, num_layers):
            vstack = conv(X_v, DIM, DIM, (k // 2 + 1, k), (k // 2 + 1, k // 2), "vstack%d" % i)
            v2h = conv(vstack, DIM, DIM, (1, 1), "valid", "v2h%d" % i)
            above = v2h.output()[:, :, :-(k // 2) - 2, :]          # (batch, DIM, H, W)
            hstack_in = T.concatenate([above, X_h], axis=1)       # (batch, 2*DIM, H, W)
            hstack = conv(hstack_in, 2 * DIM, DIM, (1, k // 2 + 1), (0, k // 2),
                          "hstack%d" % i, activation=activation)
            h2h = conv(hstack, DIM, DIM, (1, 1), "valid", "h2hstack%d" % i,
                       activation=activation)
            X_v = act(vstack.output()[:, :, 1:-(k // 2) - 1, :])
            X_h = h2h.output()[:, :, :, :-(k // 2)] + X_h          # residual
            self.above_maps.append(above)
            self.horizontal_maps.append(X_h)
        self._order_block_params(name, num_layers)

        # Two 1x1 layers to input_dim * Q_LEVELS logits per pixel.
        out_dim = input_dim if Q_LEVELS is None else input_dim * Q_LEVELS
        combined1 = conv(X_h, DIM, DIM, (1, 1), "valid", "combined_stack1", activation=activation)
        combined2 = conv(combined1, DIM, out_dim, (1, 1), "valid", "combined_stack2")
        out = combined2.output().dimshuffle(0, 2, 3, 1)            # (batch, H, W, out_dim)
        if Q_LEVELS is None:
            self.Y = out
        else:
            shape = out.shape
            self.Y = out.reshape((shape[0], shape[1], shape[2], shape[3] // Q_LEVELS, -1))

    def _order_block_params(self, name, num_layers):
        """Reorder parameters as the original lists them: per block vstack,
        hstack, v2h, h2hstack (the layers are built in data-flow order)."""
        order = ["vstack1", "hstack1"]
        for i in range(2, num_layers):
            order += ["vstack%d" % i, "hstack%d" % i, "v2h%d" % i, "h2hstack%d" % i]
        self.params = [p for suffix in order for p in self.convs[name + "." + suffix].params]

    def output(self):
        return self.Y
