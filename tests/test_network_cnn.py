"""Convolution, pooling and flatten layers of a Network: forward, Lipschitz bounds, the
version-2 network file, Net-Trim on them."""

import json
import math

import numpy as np
import pytest

from nettrim import net_trim
from nettrim.conv import conv_weight_to_dense, patch_multiplicity
from nettrim.network import (
    Conv2dLayer,
    DenseLayer,
    FlattenLayer,
    MaxPool2dLayer,
    Network,
    NetworkFileError,
)


def cnn(seed=0):
    rng = np.random.default_rng(seed)
    conv = Conv2dLayer(
        conv_weight_to_dense(rng.standard_normal((4, 2, 3, 3))),
        0.1 * rng.standard_normal(4),
        in_shape=(2, 8, 8),
        kernel_size=3,
        padding=1,
    )
    dense = DenseLayer(rng.standard_normal((64, 3)), None, "linear")
    return Network([conv, MaxPool2dLayer(2), FlattenLayer(), dense])


def test_shapes_and_the_chain_check():
    net = cnn()
    assert net.shapes == ((2, 8, 8), (4, 8, 8), (4, 4, 4), (64,), (3,))
    assert net.prunable == (0, 3) and not net.is_dense
    assert net.size == 72 + 192
    with pytest.raises(ValueError, match=r"layer 1 gives samples of shape \(4, 4, 4\)"):
        Network([*net.layers[:2], DenseLayer(np.ones((64, 2)))])  # no Flatten
    with pytest.raises(ValueError, match="k_h \\* k_w \\* c_in = 18"):
        Conv2dLayer(np.ones((9, 4)), None, (2, 8, 8), 3)


def test_max_pool_takes_the_window_maxima():
    x = np.arange(2 * 5 * 5, dtype=float).reshape(1, 2, 5, 5)
    out = MaxPool2dLayer(2)(x)
    assert out.shape == (1, 2, 2, 2)
    assert out[0, 1, 1, 0] == x[0, 1, 2:4, 0:2].max()


@pytest.mark.parametrize(
    ("kernel", "stride", "dilation"), [(3, 1, 1), (3, 2, 1), (2, 2, 1), (3, 2, 2)]
)
def test_conv_lipschitz_bounds_the_operator_norm_the_dense_norm_does_not(kernel, stride, dilation):
    rng = np.random.default_rng(1)
    layer = Conv2dLayer(
        conv_weight_to_dense(rng.standard_normal((3, 2, kernel, kernel))),
        None,
        (2, 12, 12),
        kernel,
        stride=stride,
        dilation=dilation,
        activation="linear",
    )
    L = layer.lipschitz()
    x = rng.standard_normal((1, 2, 12, 12))
    for _ in range(30):  # power iteration on A^T A: the operator norm, from below
        rows = layer.program_output(layer(x))
        x = _im2col_adjoint(layer, rows @ layer.W.T)
        x /= np.linalg.norm(x)
    realized = float(np.linalg.norm(layer(x)))
    assert realized <= L * (1 + 1e-9)
    dense_only = np.linalg.norm(layer.W, 2)
    if patch_multiplicity(kernel, stride=stride, dilation=dilation) > 1:
        assert realized > dense_only  # the dense kernel's norm alone is not a bound


def _im2col_adjoint(layer, patches):
    """``im2col^T``: scatter-add every patch row back onto the image."""
    (c, h, w), (k_h, k_w) = layer.in_shape, layer.kernel_size
    h_out, w_out = layer.out_hw
    s_h, s_w = layer.stride
    d_h, d_w = layer.dilation
    image = np.zeros((c, h, w))
    rows = patches.reshape(h_out, w_out, k_h, k_w, c)
    for r in range(h_out):
        for q in range(w_out):
            for a in range(k_h):
                for b in range(k_w):
                    image[:, r * s_h + a * d_h, q * s_w + b * d_w] += rows[r, q, a, b]
    return image[None]


def test_lipschitz_of_pool_flatten_and_dense():
    net = cnn()
    assert net[1].lipschitz() == net[2].lipschitz() == 1.0
    assert net[3].lipschitz() == pytest.approx(np.linalg.norm(net[3].W, 2))


def test_version_2_file_round_trip_and_refusals(tmp_path):
    net = cnn()
    path = tmp_path / "cnn.npz"
    net.save(path)
    x = np.random.default_rng(2).standard_normal((3, 2, 8, 8))
    assert np.array_equal(Network.load(path)(x), net(x))
    with np.load(path) as data:
        arrays = dict(data)
    assert sorted(arrays) == ["W0", "W3", "b0", "format", "format_version", "layers"]

    def broken(**changes):
        target = tmp_path / "broken.npz"
        np.savez(target, **{**arrays, **changes})
        return target

    cases = [
        ({"format_version": np.array(3)}, "reads format versions 1 to 2"),
        ({"layers": np.array("[{")}, "not valid JSON"),
        ({"layers": np.array(json.dumps([{"kind": "lstm"}]))}, "known kinds"),
        ({"W5": np.ones((2, 2))}, "W5 belongs to no dense or conv layer"),
    ]
    for changes, message in cases:
        with pytest.raises(NetworkFileError, match=message):
            Network.load(broken(**changes))


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_net_trim_on_a_cnn_keeps_every_program_within_its_budget(scheme):
    net = cnn()
    x = np.random.default_rng(3).standard_normal((20, 2, 8, 8))
    result = net_trim(net, x, scheme=scheme, eps=0.1, solver="clarabel", n_jobs=1)
    assert result.success and len(result.layers) == 2
    assert result.network.nnz < net.nnz
    acts = net.record(x)
    for i, l in enumerate(net.prunable):
        layer, pruned = net[l], result.network[l]
        inp = acts[l] if scheme == "parallel" else result.network[:l](x) if l else x
        Y = layer.program_output(acts[l + 1])
        Z = pruned.program_input(inp) @ pruned.W + (0 if pruned.b is None else pruned.b)
        R = np.where(Y > 0, Z - Y, 0.0) if layer.activation == "relu" else Z - Y
        assert np.linalg.norm(R) <= result.radii[i] * (1 + 1e-6) + 1e-9


def test_a_cnn_network_round_trips_through_safetensors(tmp_path):
    # the layouts, orientations and bad files: tests/test_io.py
    conv = Conv2dLayer(np.ones((9, 4)), np.zeros(4), (1, 8, 8), (3, 3))
    dense = DenseLayer(np.ones((36, 3)), None, "linear")
    network = Network((conv, MaxPool2dLayer((2, 2)), FlattenLayer(), dense))
    path = tmp_path / "cnn.safetensors"
    network.save(path)
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8))
    assert Network.load(path)(x).tobytes() == network(x).tobytes()


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [(3, 1, 1, 1), (2, 3, 0, 1), (3, 2, 1, 2), (5, 1, 0, 1)],
)
def test_a_store_s_patch_rows_give_back_the_images_the_network_sees(
    kernel, stride, padding, dilation
):
    """network_input: the first conv's recorded patches folded back to NCHW images; pixels
    no patch reads are 0 (stride 3 > kernel 2), and every output is the recorded images'."""
    from nettrim.store import Recording, StoreError, network_input

    rng = np.random.default_rng(2)
    conv = Conv2dLayer(
        conv_weight_to_dense(rng.standard_normal((3, 2, kernel, kernel))),
        None,
        (2, 9, 9),
        kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
    )
    d_flat = conv.W.shape[1] * math.prod(conv.out_hw)
    dense = DenseLayer(rng.standard_normal((d_flat, 2)), None, "linear")
    net = Network([conv, FlattenLayer(), dense])
    x = rng.standard_normal((4, 2, 9, 9))
    acts = net.record(x)
    geometry = {"kind": "conv2d", "kernel_size": conv.kernel_size, "stride": conv.stride,
                "padding": conv.padding, "dilation": conv.dilation}  # fmt: skip
    rec = Recording(
        modules=("conv", "fc"),
        X={"conv": conv.program_input(x), "fc": acts[2]},
        Y={"conv": conv.program_output(acts[1]), "fc": acts[3]},
        activation={"conv": "relu", "fc": "linear"},
        info={"conv": geometry, "fc": {"kind": "linear"}},
    )
    images = network_input(rec, net)
    np.testing.assert_array_equal(net(images), net(x))
    read = np.zeros(x.shape, bool)
    for j in range(read[0].size):  # the pixels some patch reads
        e = np.zeros(x[0].size)
        e[j] = 1.0
        read[:, :].flat[j :: x[0].size] = conv.program_input(e.reshape(1, *x.shape[1:])).any()
    np.testing.assert_array_equal(images[read], x[read])
    assert not images[~read].any()
    rec.info["conv"] = {**geometry, "stride": (stride + 1, stride + 1)}
    with pytest.raises(StoreError, match=r"module 'conv' does not match network layer 0: stride"):
        network_input(rec, net)


@pytest.mark.parametrize("scheme", ["parallel", "cascade"])
def test_a_cnn_run_reports_its_layers_and_resumes_to_the_same_weights(scheme):
    """net_trim on a CNN: one "job" and one "layer" event per layer with weights (named by
    its position), and a run resumed from its first finished layer gives the same weights
    bit for bit without solving that layer again."""
    net, x = _tiny_cnn()
    events = []
    full = net_trim(net, x, scheme=scheme, eps=0.1, n_jobs=1, progress=events.append)
    assert [(e.kind, e.layer) for e in events] == [
        ("job", 0),
        ("layer", 0),
        ("job", 3),
        ("layer", 3),
    ]
    events.clear()
    resumed = net_trim(
        net, x, scheme=scheme, eps=0.1, n_jobs=1, progress=events.append,
        resume={0: full.layers[0]},
    )  # fmt: skip
    assert [(e.kind, e.layer, e.resumed) for e in events] == [
        ("layer", 0, True), ("job", 3, False), ("layer", 3, False)
    ]  # fmt: skip
    for a, b in zip(full.layers, resumed.layers, strict=True):
        assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()
    with pytest.raises(ValueError, match=r"resume has key 1; keys are the positions"):
        net_trim(net, x, scheme=scheme, eps=0.1, n_jobs=1, resume={1: full.layers[0]})


def _tiny_cnn(seed=4):
    rng = np.random.default_rng(seed)
    conv = Conv2dLayer(
        conv_weight_to_dense(rng.standard_normal((3, 1, 3, 3))), 0.1 * np.ones(3), (1, 6, 6), 3
    )
    dense = DenseLayer(rng.standard_normal((12, 2)), np.zeros(2), "linear")
    return Network((conv, MaxPool2dLayer(2), FlattenLayer(), dense)), rng.standard_normal(
        (20, 1, 6, 6)
    )


def test_net_trim_on_a_cnn_refuses_what_it_cannot_honour_and_reweights():
    from nettrim import TrimOptions

    net, x = _tiny_cnn()
    with pytest.raises(ValueError, match=r"got options, neuron_block, which it does not"):
        net_trim(net, x, eps=0.1, options=TrimOptions(), neuron_block=8, n_jobs=1)
    plain = net_trim(net, x, eps=0.1, n_jobs=1)
    reweighted = net_trim(net, x, eps=0.1, reweight_rounds=2, n_jobs=1)
    assert reweighted.nnz <= plain.nnz
    assert reweighted.options["reweight_rounds"] == 2
    Z = net.layers[0].program_input(x) @ reweighted.layers[0].W + reweighted.layers[0].b
    Y = net.layers[0].program_output(net.layers[0](x))
    residual = np.linalg.norm(np.where(Y > 0, Z - Y, 0.0))
    assert residual <= reweighted.radii[0] * (1 + 1e-3)  # each round keeps the budget


def test_net_trim_on_a_cnn_refuses_bad_images_by_name():
    net, x = _tiny_cnn()
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"X holds 1 NaN or infinite value\(s\)"):
        net_trim(net, bad, eps=0.1, n_jobs=1)
    with pytest.raises(ValueError, match=r"X has shape \(20, 36\); .* takes \(n, 1, 6, 6\)"):
        net_trim(net, x.reshape(20, 36), eps=0.1, n_jobs=1)
