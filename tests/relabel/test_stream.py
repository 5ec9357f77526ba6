"""Scoring streams (`mlrelabel.relabel.stream`): the evidence record is float32 and unsaturated."""

import numpy as np

from tests.relabel.helpers import engine_config


def test_evidence_record_is_float32_and_unsaturated(tmp_path):
    import jax

    from mlrelabel.methods import common
    from mlrelabel.relabel import stream

    c = engine_config()
    data = common.load_datasets(c, str(tmp_path))
    model = common.build_model(c, 10)
    variables = common.init_variables(model, c, 0)
    variables['params']['fc']['kernel'] = variables['params']['fc']['kernel'] * 500.0  # saturating logits
    mesh = common.mesh_from_config(c)
    scorer = stream.ScorePass(
        model, 'sigmoid', stream.StreamOptions.from_config(c), mesh, jax.random.PRNGKey(0)
    )
    record, _ = stream.score_images(scorer, variables, data['train'].images, np.arange(32))
    assert record['log_odds'].dtype == np.float32
    probabilities = 1 / (1 + np.exp(-record['log_odds'].astype(np.float64)))
    assert (
        np.abs(record['log_odds']) > 40
    ).any()  # beyond what float32 probabilities could tell apart from 1
    assert np.isfinite(record['log_odds']).all() and (probabilities <= 1).all()
