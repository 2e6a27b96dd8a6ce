"""Parameter counts of one small configuration of each model, counted by hand from the
papers' blocks (filter out x in x rows x cols, plus one bias per output map)."""
import pytest

from models import build as builder

# input_dim 1, Q_LEVELS 4, DIM 8 (= 2h, h = 4) for the masked model and the PixelRNNs
FIRST = 8 * 1 * 7 * 7 + 8                   # 7x7 mask 'a': 400
HEAD = (8 * 8 + 8) + (4 * 8 + 4)            # relu, 1x1 8->8, relu, 1x1 8->4: 108
MASKED_BLOCK = (4 * 8 + 4) + (4 * 4 * 3 * 3 + 4) + (8 * 4 + 8)   # 1x1 8->4, 3x3 4->4, 1x1 4->8
ROW_LSTM = (16 * 8 * 3 + 16) + 16 * 4 * 3 + (8 * 4 + 8)         # in 1x3 8->4h, state 1x3 (no b), 1x1
DIAG_DIRECTION = (16 * 8 + 16) + 16 * 4 * 2                      # in 1x1 8->4h, state 2x1 (no b)


@pytest.mark.parametrize("config, count", [
    ({"model": "masked", "num_layers": 2}, FIRST + 2 * MASKED_BLOCK + HEAD),       # 956
    ({"model": "rowlstm", "num_layers": 1}, FIRST + ROW_LSTM + HEAD),             # 1140
    ({"model": "diagbilstm", "num_layers": 1},
     FIRST + 2 * DIAG_DIRECTION + (8 * 4 + 8) + HEAD),                            # 1092
])
def test_masked_and_pixel_rnn_counts(config, count):
    net = builder.build(dict(config, input_dim=1, dim=8, q_levels=4))
    assert net.model.count_params() == count


def test_gated_count():
    """p = 4 maps, 2p = 8 pre-activations, num_layers 3 (two stack layers)."""
    layer1 = (8 * 1 * 4 * 7 + 8) + (8 * 1 * 1 * 7 + 8) + (8 * 8 + 8)      # vstack, hstack, v2h
    layer2 = (8 * 4 * 2 * 3 + 8) + (8 * 8 + 8) + (8 * 4 * 1 * 2 + 8) + (4 * 4 + 4)
    head = (4 * 4 + 4) + (4 * 4 + 4)
    net = builder.build({"model": "gated", "input_dim": 1, "dim": 4, "num_layers": 3,
                         "q_levels": 4})
    assert net.model.count_params() == layer1 + layer2 + head == 772
