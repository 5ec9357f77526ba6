"""The class prior (`mlrelabel.partial.class_prior`): a running mean under a mask, the CSV round trip, a
malformed CSV named by file and line."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from mlrelabel.partial import class_prior


def sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def test_prior_running_mean_with_mask():
    a = np.array([[0.0, 2.0], [1.0, -1.0]], np.float32)
    b = np.array([[3.0, 0.5], [9.0, 9.0]], np.float32)  # second row is padding
    run = class_prior.estimate_class_prior(None, jnp.asarray(a))
    run = class_prior.estimate_class_prior(run, jnp.asarray(b), mask=jnp.array([1.0, 0.0]))
    rows = [a[0], a[1], b[0]]
    expected = [sum(sig(float(r[c])) for r in rows) / 3 for c in range(2)]
    np.testing.assert_allclose(run['prior'], expected, rtol=1e-6)
    assert float(run['count']) == 3.0
    empty = class_prior.estimate_class_prior(None, jnp.zeros((1, 2)), mask=jnp.zeros(1))
    np.testing.assert_array_equal(empty['prior'], 0.0)
    with pytest.raises(ValueError, match='classes'):
        class_prior.estimate_class_prior(run, jnp.zeros((2, 3)))


def test_prior_csv_round_trip(tmp_path):
    path = tmp_path / 'sub' / 'prior.csv'
    names = ['cat', 'dog, big', 'bird']
    prior = np.array([0.125, 0.5, 0.0300000011920929], np.float32)
    class_prior.prior_to_csv(path, prior, names)
    assert path.read_text().splitlines()[0] == 'Classes,avg_pred'
    np.testing.assert_array_equal(class_prior.load_prior_csv(path), prior)
    np.testing.assert_array_equal(
        class_prior.load_prior_csv(path, ['bird', 'cat', 'dog, big']), prior[[2, 0, 1]]
    )
    with pytest.raises(ValueError, match=r"missing \['horse'\]"):
        class_prior.load_prior_csv(path, ['cat', 'dog, big', 'bird', 'horse'])
    with pytest.raises(ValueError, match='class names'):
        class_prior.prior_to_csv(path, prior, names[:2])


@pytest.mark.parametrize(
    'text, line, message',
    [
        ('Classes,avg_pred\ncat,0.1\ndog,zero\n', 3, 'not a number'),
        ('Classes,avg_pred\ncat,0.1,7\n', 2, 'expected 2 fields'),
        ('Classes,avg_pred\ncat,0.1\n\ndog,1.5\n', 4, r'in \[0, 1\]'),
        ('Classes,avg_pred\ncat,0.1\ncat,0.2\n', 3, 'already given on line 2'),
        ('cat,0.1\n', 1, 'header'),
    ],
)
def test_malformed_prior_csv_names_file_and_line(tmp_path, text, line, message):
    path = tmp_path / 'bad.csv'
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        class_prior.load_prior_csv(path)
    assert f'{path}:{line}:' in str(err.value)
