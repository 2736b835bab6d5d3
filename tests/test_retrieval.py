import numpy as np
import pytest

from lowres_sdk import InputError
from lowres_sdk.training.retrieval import retrieval_metrics


def test_metrics_on_a_hand_made_ranking():
    # One query along x; gallery items ranked by cosine: g0 (1.0), g1 (0.8), g2 (0.6), g3 (0.0).
    gallery = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]])
    labels = ["a", "b", "a", "c"]
    m = retrieval_metrics(np.array([[1.0, 0.0]]), ["a"], gallery, labels, ks=(1, 2, 3))
    # Relevant at ranks 1 and 3: AP = (1/1 + 2/3) / 2 = 0.8333
    assert m["map"] == pytest.approx(5 / 6)
    assert (m["p_at_1"], m["p_at_2"], m["p_at_3"]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert (m["r_at_1"], m["r_at_2"], m["r_at_3"]) == pytest.approx((0.5, 0.5, 1.0))


def test_queries_without_a_match_are_counted_not_averaged():
    m = retrieval_metrics(np.eye(2), ["a", "z"], np.eye(2), ["a", "b"], ks=(1,))
    assert m["queries"] == 1 and m["queries_without_match"] == 1 and m["map"] == 1.0


def test_shape_errors():
    with pytest.raises(InputError, match="same D"):
        retrieval_metrics(np.ones((2, 3)), ["a", "b"], np.ones((2, 4)), ["a", "b"])
