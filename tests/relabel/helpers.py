"""What the relabel tests share."""

from mlrelabel.config import relabel_config


def engine_config(rounds=2):
    """The mc_dropout smoke recipe on 128 + 64 images, `rounds` rounds, no early stop."""
    c = relabel_config('smoke', 'mc_dropout')
    c.data.num_train = 128
    c.data.num_val = 64
    c.relabel.max_rounds = rounds
    c.relabel.patience = 5
    c.relabel.stable_fraction = 0.0
    return c
