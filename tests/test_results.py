"""One result vocabulary: `.success`, `summary()` (and `str`), deprecated aliases that warn."""

import numpy as np
import pytest

from nettrim import net_trim, prune_network, trim_layer
from nettrim.demo import run_demo
from nettrim.tuning import tune_layer


@pytest.fixture(scope="module")
def net_and_x(random_network):
    return random_network((8, 10, 3), 0, n=60)


def test_layer_and_network_results_render_with_summary(net_and_x):
    net, X = net_and_x
    acts = net.record(X)
    layer = trim_layer(acts[0], acts[1], eps=0.1, solver="clarabel")
    assert str(layer) == layer.summary() and layer.summary().startswith("P1 8x10: status optimal")
    trimmed = net_trim(net, X, eps=0.1, solver="clarabel", n_jobs=1)
    assert str(trimmed) == trimmed.summary() and "parallel Net-Trim" in trimmed.summary()
    assert trimmed.success == all(r.success for r in trimmed.layers)
    pruned = prune_network(net, X, sparsity=0.5)
    assert str(pruned) == pruned.summary()
    assert pruned.success == all(r.success for r in pruned.layers)


@pytest.mark.parametrize("solver", ["clarabel", "admm"])
def test_per_neuron_summary_measures_the_residual_against_its_balls(net_and_x, solver):
    """The layer's residual is not compared with one column's radius: a per-neuron line
    names its balls, their largest radius and excess (which is the figure to read)."""
    net, X = net_and_x
    acts = net.record(X)
    wide = trim_layer(acts[0], acts[1], eps=0.1, solver=solver)
    assert not wide.info.per_column and f"(radius {wide.info.radius:.4g})" in wide.summary()
    res = trim_layer(acts[0], acts[1], eps=0.1, per_neuron=True, solver=solver)
    assert res.info.per_column and res.info.residual > res.info.radius  # one ball each
    budget = (
        f"per-neuron balls: largest radius {res.info.radius:.4g}, "
        f"largest excess {res.info.ball_excess:.3g}"
    )
    assert f"({budget})" in res.summary() and f"({budget})" in res.info.summary()
    assert "(radius" not in res.summary()


def test_tuning_result_success_and_its_deprecated_name_met(net_and_x):
    net, X = net_and_x
    acts = net.record(X)
    tuned = tune_layer(acts[1], acts[2], target_sparsity=0.3, activation="linear", max_steps=2)
    with pytest.warns(DeprecationWarning, match=r"TuningResult\.met is deprecated, use \.success"):
        assert tuned.met == tuned.success
    assert str(tuned) == tuned.summary() and "sparsity" in tuned.summary()
    assert ("not met" in tuned.summary()) != bool(tuned.success)


def test_demo_report_summary_and_its_deprecated_name_format():
    with pytest.warns(UserWarning, match="fewer samples than inputs"):
        report = run_demo(n_calib=60, solver="clarabel")
    text = report.summary()
    assert str(report) == text and "test accuracy" in text
    with pytest.warns(DeprecationWarning, match=r"DemoReport\.format is deprecated"):
        assert report.format() == text
    assert np.isfinite(report.discrepancy_test)
