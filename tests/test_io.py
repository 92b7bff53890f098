"""Sparse storage layouts and network files: .npz and .safetensors, every layout, both
orientations, and the files that must be refused."""

import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from nettrim import Network, NetworkFileError
from nettrim.io import decode, encode, load_safetensors, save_safetensors, smallest
from nettrim.io.layouts import LAYOUT_VERSION, NM_GROUPS

RNG = np.random.default_rng(12)


def sparse_matrix(shape, density, dtype=np.float64, rng=RNG):
    W = rng.standard_normal(shape).astype(dtype)
    W[rng.random(shape) >= density] = 0.0
    return W


def n_m_sparse(shape, n, m, dtype=np.float32, rng=RNG):
    """Keep the ``n`` largest of every ``m`` consecutive inputs of each output."""
    d_in, d_out = shape
    T = rng.standard_normal((d_out, d_in // m, m)).astype(dtype)
    drop = np.argsort(np.abs(T), axis=2)[:, :, : m - n]
    np.put_along_axis(T, drop, 0.0, axis=2)
    return np.ascontiguousarray(T.reshape(d_out, d_in).T)


def round_trip(W, layout):
    encoded = encode(W, layout)
    return decode(encoded.layout, encoded.shape, encoded.parts, ValueError), encoded


def assert_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_same_network(a: Network, b: Network):
    assert a.dims == b.dims and a.activations == b.activations
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert_bits(np.asarray(la.W), np.asarray(lb.W))
        assert (la.b is None) == (lb.b is None)
        if la.b is not None:
            assert_bits(la.b, lb.b)


# ---------------------------------------------------------------------------------------
# one weight


@pytest.mark.parametrize("layout", ["csr", "bitmask"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_csr_and_bitmask_read_back_bit_for_bit(layout, dtype):
    W = sparse_matrix((37, 11), 0.2, dtype)
    W[3, :] = 0.0  # an input no output uses
    W[:, 4] = 0.0  # an output with no weights (an empty CSR row)
    W[5, 5] = -0.0  # kept: its sign bit is set
    back, encoded = round_trip(W, layout)
    assert_bits(back, W)
    assert np.signbit(back[5, 5])
    assert encoded.parts["values"].size == np.count_nonzero(W) + 1


def test_csr_has_int32_indices_rows_per_output_and_the_ideal_size():
    W = sparse_matrix((50, 20), 0.1)
    encoded = encode(W, "csr")
    assert encoded.parts["indptr"].dtype == np.int32 == encoded.parts["indices"].dtype
    assert encoded.parts["indptr"].shape == (20 + 1,)  # one row per output neuron
    nnz = np.count_nonzero(W)
    assert encoded.nbytes == nnz * (8 + 4) + 4 * (20 + 1)
    # the rows are those of W.T (PyTorch's layout), with increasing input indices
    indptr, indices = encoded.parts["indptr"], encoded.parts["indices"]
    for o in range(20):
        np.testing.assert_array_equal(indices[indptr[o] : indptr[o + 1]], np.flatnonzero(W[:, o]))


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (4, 8), (1, 2)])
def test_n_m_packed_reads_back_with_log2_m_bits_per_kept_value(n, m):
    W = n_m_sparse((32, 6), n, m)
    W[:m, 0] = 0.0  # a group with fewer than N non-zeros is padded
    back, encoded = round_trip(W, f"{n}:{m}")
    assert_bits(back, W)
    kept_values = 6 * (32 // m) * n
    assert encoded.parts["values"].shape == (kept_values,)
    bits = max(1, math.ceil(math.log2(m)))
    assert encoded.parts["positions"].nbytes == math.ceil(kept_values * bits / 8)


def test_2_4_positions_are_the_kept_inputs_of_each_group():
    W = np.zeros((8, 1), dtype=np.float32)
    W[[1, 3, 4, 6], 0] = [1.0, 2.0, 3.0, 4.0]
    encoded = encode(W, "2:4")
    np.testing.assert_array_equal(encoded.parts["values"], [1.0, 2.0, 3.0, 4.0])
    # positions 1, 3 | 0, 2 in two bits each: 01 11 00 10
    assert encoded.parts["positions"].tolist() == [0b01110010]


def test_n_m_refuses_weights_that_do_not_fit():
    with pytest.raises(ValueError, match="multiple of 4"):
        encode(np.ones((6, 2)), "2:4")
    with pytest.raises(ValueError, match="holds 3 non-zeros"):
        encode(np.ones((8, 2)) * [[1], [1], [1], [0], [0], [0], [0], [0]], "2:4")
    with pytest.raises(ValueError, match="layout must be"):
        encode(np.ones((4, 2)), "coo")


@settings(max_examples=40, deadline=None)
@given(
    d_in=st.integers(1, 12).map(lambda k: 4 * k),
    d_out=st.integers(1, 7),
    density=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_every_layout_round_trips_any_matrix_and_smallest_is_the_least(d_in, d_out, density, seed):
    W = sparse_matrix((d_in, d_out), density, np.float64, np.random.default_rng(seed))
    candidates = [encode(W, "dense")]
    for layout in ["csr", "bitmask", *(f"{n}:{m}" for m in NM_GROUPS for n in range(1, m))]:
        try:
            back, encoded = round_trip(W, layout)
        except ValueError:  # an N:M the matrix does not satisfy
            continue
        assert_bits(back, W)
        candidates.append(encoded)
    best = smallest(W)
    assert best.nbytes == min(c.nbytes for c in candidates)
    if best.layout != "dense":
        assert_bits(decode(best.layout, best.shape, best.parts, ValueError), W)


def test_smallest_picks_dense_nm_and_csr_where_each_wins():
    assert smallest(RNG.standard_normal((16, 8))).layout == "dense"
    assert smallest(n_m_sparse((64, 16), 2, 4)).layout == "2:4"  # ties bitmask, kept N:M
    assert smallest(sparse_matrix((400, 300), 0.01)).layout == "csr"
    assert smallest(sparse_matrix((400, 300), 0.3)).layout == "bitmask"


@pytest.mark.parametrize(
    ("layout", "part", "bad", "message"),
    [
        ("csr", "indices", lambda a: a + 1000, "indices must lie in"),
        ("csr", "indices", lambda a: a.astype(np.int64), "int32"),
        ("csr", "indptr", lambda a: a[:-1], "indptr must rise"),
        ("csr", "values", lambda a: a[:-1], "must agree"),
        ("bitmask", "mask", lambda a: a[:-1], "uint8 array"),
        ("bitmask", "values", lambda a: a[:-1], "mask marks"),
        ("2:4", "positions", lambda a: np.full_like(a, 0xFF), "increase within each group"),
        ("2:4", "values", lambda a: a.astype(np.int16), "float32 or float64"),
    ],
)
def test_decode_refuses_damaged_parts(layout, part, bad, message):
    W = n_m_sparse((16, 5), 2, 4).astype(np.float64)
    encoded = encode(W, layout)
    parts = {**encoded.parts, part: bad(encoded.parts[part])}
    with pytest.raises(ValueError, match=message):
        decode(layout, encoded.shape, parts, ValueError)


# ---------------------------------------------------------------------------------------
# network files


def pruned_network(dtype=np.float64):
    """A 16-12-8-3 network, 2:4 sparse in its first layer, very sparse in the second."""
    weights = [
        n_m_sparse((16, 12), 2, 4, dtype),
        sparse_matrix((12, 8), 0.05, dtype),
        RNG.standard_normal((8, 3)).astype(dtype),
    ]
    biases = [RNG.standard_normal(12).astype(dtype), None, RNG.standard_normal(3).astype(dtype)]
    return Network.from_arrays(weights, biases)


X = RNG.standard_normal((20, 16))


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
@pytest.mark.parametrize("layout", ["auto", "dense", "csr", "bitmask"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_network_files_round_trip_in_every_layout(tmp_path, ext, layout, dtype):
    net = pruned_network(dtype)
    path = tmp_path / f"net.{ext}"
    net.save(path, layout=layout)
    back = Network.load(path)
    assert_same_network(back, net)
    np.testing.assert_array_equal(back(X.astype(dtype)), net(X.astype(dtype)))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"net.{ext}"]


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_2_4_layout_in_a_file_and_refused_where_it_does_not_fit(tmp_path, ext):
    weights = [n_m_sparse((16, 12), 2, 4), n_m_sparse((12, 4), 2, 4)]
    net = Network.from_arrays(weights, [np.ones(12, np.float32), None])
    net.save(tmp_path / f"a.{ext}", layout="2:4")
    assert_same_network(Network.load(tmp_path / f"a.{ext}"), net)
    with pytest.raises(ValueError, match=r"holds \d non-zeros \(at most 2 allowed\)"):
        pruned_network().save(tmp_path / f"b.{ext}", layout="2:4")
    assert not (tmp_path / f"b.{ext}").exists()


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_sparse_file_is_smaller_than_dense(tmp_path, ext):
    W = [sparse_matrix((300, 200), 0.05), sparse_matrix((200, 10), 0.05)]
    net = Network.from_arrays(W, [np.zeros(200), np.zeros(10)])
    raw = {"compressed": False} if ext == "npz" else {}  # safetensors never deflates
    net.save(tmp_path / f"sparse.{ext}", **raw)
    net.save(tmp_path / f"dense.{ext}", layout="dense", **raw)
    sparse_bytes = os.path.getsize(tmp_path / f"sparse.{ext}")
    ideal = sum(np.count_nonzero(w) * 12 + 4 * (w.shape[1] + 1) for w in W) + 210 * 8
    assert sparse_bytes <= 1.3 * ideal
    assert sparse_bytes < os.path.getsize(tmp_path / f"dense.{ext}") / 5
    if ext == "npz":  # deflate shrinks the zeros of the dense file, less than the layout does
        net.save(tmp_path / "sparse_z.npz")
        net.save(tmp_path / "dense_z.npz", layout="dense")
        assert os.path.getsize(tmp_path / "sparse_z.npz") < os.path.getsize(
            tmp_path / "dense_z.npz"
        )


def test_safetensors_key_convention_and_metadata(tmp_path):
    from safetensors import safe_open

    path = tmp_path / "net.safetensors"
    pruned_network().save(path, layout="auto")
    with safe_open(path, framework="numpy") as fh:
        keys, metadata = set(fh.keys()), fh.metadata()
    assert keys == {
        "layers.0.weight.values", "layers.0.weight.positions", "layers.0.bias",
        "layers.1.weight.mask", "layers.1.weight.values",
        "layers.2.weight", "layers.2.bias",
    }  # fmt: skip
    assert metadata["format"] == "nettrim.network" and metadata["orientation"] == "nettrim"
    assert json.loads(metadata["activations"]) == ["relu", "relu", "linear"]
    sparse = json.loads(metadata["sparse"])
    assert sparse["version"] == LAYOUT_VERSION
    assert sparse["layouts"]["layers.0.weight"] == {"layout": "2:4", "shape": [16, 12]}


@pytest.mark.parametrize("layout", ["dense", "auto"])
def test_torch_orientation_is_recorded_and_read_back(tmp_path, layout):
    from safetensors import safe_open

    net = pruned_network()
    path = tmp_path / "torch.safetensors"
    save_safetensors(net, path, orientation="torch", layout=layout)
    with safe_open(path, framework="numpy") as fh:
        assert fh.get_tensor("layers.2.weight").shape == (3, 8)  # (d_out, d_in)
    assert_same_network(Network.load(path), net)
    with pytest.raises(ValueError, match="records orientation 'torch'"):
        load_safetensors(path, orientation="nettrim")


def test_a_pytorch_state_dict_file_needs_and_checks_the_orientation(tmp_path):
    """What safetensors.torch.save_file writes for nn.Sequential(Linear, ReLU, Linear)."""
    net = pruned_network()
    path = tmp_path / "model.safetensors"
    tensors = {"0.weight": net[0].W.T.copy(), "0.bias": net[0].b}
    tensors |= {"2.weight": net[1].W.T.copy(), "4.weight": net[2].W.T.copy(), "4.bias": net[2].b}
    save_file(tensors, path, metadata={"format": "pt"})
    back = load_safetensors(path, orientation="torch")
    assert_same_network(back, net)
    with pytest.raises(ValueError, match="does not record its orientation"):
        Network.load(path)
    with pytest.raises(NetworkFileError, match="the shapes fit orientation='torch'") as info:
        load_safetensors(path, orientation="nettrim")
    assert str(path) in str(info.value)
    assert (
        load_safetensors(path, orientation="torch", activations=["relu"] * 3).activations
        == ("relu",) * 3
    )


# ---------------------------------------------------------------------------------------
# files to refuse, and nothing written


def test_unknown_layout_version_is_refused(tmp_path):
    net = pruned_network()
    net.save(tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as data:
        arrays = dict(data)
    description = json.loads(str(arrays["sparse"]))
    description["version"] = LAYOUT_VERSION + 1
    arrays["sparse"] = np.array(json.dumps(description))
    np.savez(tmp_path / "newer.npz", **arrays)
    with pytest.raises(NetworkFileError, match=r"newer.npz: sparse layout version is 2"):
        Network.load(tmp_path / "newer.npz")
    del arrays["sparse"]
    np.savez(tmp_path / "undescribed.npz", **arrays)
    with pytest.raises(NetworkFileError, match=r"unexpected entries 'W0\.positions'"):
        Network.load(tmp_path / "undescribed.npz")


def test_unknown_format_version_in_safetensors_is_refused(tmp_path):
    path = tmp_path / "net.safetensors"
    tensors = {"layers.0.weight": np.ones((2, 2))}
    meta = {"format": "nettrim.network", "format_version": "99", "orientation": "nettrim"}
    save_file(tensors, path, metadata=meta)
    with pytest.raises(NetworkFileError, match="format_version is '99'"):
        Network.load(path)


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_files_give_a_clear_error_naming_the_file(tmp_path, ext, damage):
    path = tmp_path / f"net.{ext}"
    pruned_network().save(path, **({"compressed": False} if ext == "npz" else {}))
    data = path.read_bytes()
    if damage == "truncate":
        data = data[: len(data) * 2 // 3]
    elif damage == "flip":  # the first bytes: the zip signature / the safetensors header size
        data = bytes(b ^ 0xFF for b in data[:8]) + data[8:]
    else:
        data = b""
    path.write_bytes(data)
    with pytest.raises(NetworkFileError) as info:
        Network.load(path)
    assert str(path) in str(info.value)


def test_a_pickled_array_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, W0=np.ones((2, 2)), activations=np.array(["relu", None], dtype=object))
    with pytest.raises(NetworkFileError, match="'activations' cannot be read without pickles"):
        Network.load(path)


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_failed_saves_write_nothing_and_keep_the_old_file(tmp_path, ext):
    path = tmp_path / f"net.{ext}"
    pruned_network().save(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="layout must be"):
        pruned_network().save(path, layout="coo")
    bad = Network.from_arrays([np.full((2, 2), np.nan)], [None])
    with pytest.raises(ValueError, match="NaN or infinite"):
        bad.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"net.{ext}"]


def test_bad_orientation_flag_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="orientation must be 'nettrim'"):
        save_safetensors(pruned_network(), tmp_path / "x.safetensors", orientation="pytorch")
    assert not (tmp_path / "x.safetensors").exists()


def test_a_damaged_sparse_part_names_the_file_and_the_weight(tmp_path):
    net = Network.from_arrays([sparse_matrix((300, 40), 0.01)], [None], ["linear"])
    net.save(tmp_path / "net.npz", layout="csr")
    with np.load(tmp_path / "net.npz", allow_pickle=False) as data:
        arrays = dict(data)
    arrays["W0.indices"] = arrays["W0.indices"] + 300
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(NetworkFileError, match=r"bad\.npz: W0 \(csr\): indices must lie in"):
        Network.load(tmp_path / "bad.npz")


def conv_network(c_in=4, k=3, dtype=np.float32):
    """Conv(c_in -> 5, k x k) on c_in x 6 x 6 images, its dense kernel 2:4 sparse along the input
    channels of every kernel position and output; then max-pooling, flattening, a dense layer."""
    from nettrim import Conv2dLayer, FlattenLayer, MaxPool2dLayer
    from nettrim.conv import conv_weight_to_dense

    kernel = RNG.standard_normal((5, c_in, k, k)).astype(dtype)  # (c_out, c_in, k_h, k_w)
    kernel[:, 1::2] = 0.0  # every other input channel: 2 of every 4 consecutive channels kept
    W = conv_weight_to_dense(kernel)
    conv = Conv2dLayer(W, RNG.standard_normal(5).astype(dtype), (c_in, 6, 6), (k, k))
    dense = n_m_sparse((5 * 2 * 2, 3), 2, 4, dtype)
    layers = (conv, MaxPool2dLayer((2, 2)), FlattenLayer())
    return Network((*layers, Network.from_arrays([dense], [None])[0]))


def test_a_conv_kernel_in_n_m_groups_of_input_channels_reads_back_bit_for_bit(tmp_path):
    from nettrim.io import stored_layouts

    net = conv_network(c_in=4)
    W = net[0].W
    encoded = encode(W, "2:4", channels=4)
    # the kernel's rows are (k_h, k_w, c_in): each group is channels 0-3 of one position, and
    # the kept ones are channels 0 and 2
    count = 5 * 9 * 2  # outputs x kernel positions x N (one group of 4 channels each)
    positions = np.unpackbits(encoded.parts["positions"])[: 2 * count].reshape(-1, 2) @ [2, 1]
    assert positions.reshape(-1, 2).tolist() == [[0, 2]] * (5 * 9)
    net.save(tmp_path / "cnn.npz", layout="2:4")
    assert stored_layouts(tmp_path / "cnn.npz") == ["2:4", "dense", "dense", "2:4"]
    loaded = Network.load(tmp_path / "cnn.npz")
    for a, b in zip(loaded.layers, net.layers, strict=True):
        if a.prunable:
            assert_bits(a.W, b.W)
        if getattr(b, "b", None) is not None:
            assert_bits(a.b, b.b)
    x = RNG.standard_normal((3, 4, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), net(x))


def test_n_m_groups_that_would_straddle_kernel_positions_are_refused(tmp_path):

    net = conv_network(c_in=2, k=2)  # 2 channels: a group of 4 rows spans two kernel positions
    assert net[0].W.shape[0] % 4 == 0  # the flat rows alone would allow 2:4
    with pytest.raises(ValueError, match=r"W0: layout '2:4' .* c_in a multiple of 4, got c_in=2"):
        net.save(tmp_path / "cnn.npz", layout="2:4")
    assert not (tmp_path / "cnn.npz").exists()
    # "auto" groups at most the 2 channels of one position (here 1:2: channel 1 is all zero)
    assert smallest(net[0].W, channels=2).layout == "1:2"


# ---------------------------------------------------------------------------------------
# CNN networks in .safetensors


def strided_cnn(dtype=np.float32):
    """Conv(4 -> 5, 3x3, stride (1, 2), padding 1, dilation 2) on 4 x 7 x 10 images, 2:4 along
    the input channels; then 2x1 max-pooling, flattening and a 2:4 dense layer."""
    from nettrim import Conv2dLayer, FlattenLayer, MaxPool2dLayer
    from nettrim.conv import conv_weight_to_dense

    kernel = RNG.standard_normal((5, 4, 3, 3)).astype(dtype)
    kernel[:, 1::2] = 0.0
    kernel[0, 0, 0, 0] = -0.0  # kept: its sign bit
    conv = Conv2dLayer(
        conv_weight_to_dense(kernel), RNG.standard_normal(5).astype(dtype), (4, 7, 10), (3, 3),
        stride=(1, 2), padding=(1, 1), dilation=(2, 2),
    )  # fmt: skip
    pooled = MaxPool2dLayer((2, 1))
    width = math.prod(pooled.output_shape(conv.output_shape(conv.in_shape)))
    dense = Network.from_arrays([n_m_sparse((width, 3), 2, 4, dtype)], [None])[0]
    return Network((conv, pooled, FlattenLayer(), dense)), kernel


def assert_same_cnn(a: Network, b: Network):
    assert [type(layer) for layer in a.layers] == [type(layer) for layer in b.layers]
    for la, lb in zip(a.layers, b.layers, strict=True):
        if la.prunable:
            assert_bits(np.asarray(la.W), np.asarray(lb.W))
            assert (la.b is None) == (lb.b is None) and la.activation == lb.activation
            if la.b is not None:
                assert_bits(la.b, lb.b)
        for name in ("in_shape", "kernel_size", "stride", "padding", "dilation"):
            assert getattr(la, name, None) == getattr(lb, name, None)


@pytest.mark.parametrize("orientation", ["nettrim", "torch"])
@pytest.mark.parametrize("layout", ["auto", "dense", "csr", "bitmask", "2:4"])
def test_cnn_safetensors_round_trip_both_orientations_every_layout(tmp_path, orientation, layout):
    from safetensors import safe_open

    from nettrim.io import stored_layouts

    net, kernel = strided_cnn()
    path = tmp_path / "cnn.safetensors"
    save_safetensors(net, path, layout=layout, orientation=orientation)
    back = load_safetensors(path)
    assert_same_cnn(back, net)
    x = RNG.standard_normal((3, 4, 7, 10)).astype(np.float32)
    assert back(x).tobytes() == net(x).tobytes()  # predictions bit for bit
    with safe_open(path, framework="numpy") as fh:
        keys, metadata = set(fh.keys()), fh.metadata()
        if "layers.0.weight" in keys:  # stored dense: the orientation's own shape
            stored = fh.get_tensor("layers.0.weight")
            assert_bits(stored, kernel if orientation == "torch" else net[0].W)
    assert {key.split(".")[1] for key in keys} == {"0", "3"}  # positions: gaps for pool, flatten
    assert metadata["orientation"] == orientation and "activations" not in metadata
    assert json.loads(metadata["layers"])[0] == {
        "kind": "conv2d", "activation": "relu", "in_shape": [4, 7, 10], "kernel_size": [3, 3],
        "stride": [1, 2], "padding": [1, 1], "dilation": [2, 2],
    }  # fmt: skip
    expected = {"dense": "dense", "csr": "csr", "bitmask": "bitmask", "2:4": "2:4"}.get(layout)
    layouts = stored_layouts(path)
    assert layouts[1:3] == ["dense", "dense"]  # pooling and flattening hold no weight
    if expected is not None:
        assert layouts[0] == layouts[3] == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn.safetensors"]


def test_cnn_safetensors_n_m_groups_never_straddle_kernel_positions(tmp_path):
    net = conv_network(c_in=2, k=2)
    path = tmp_path / "cnn.safetensors"
    with pytest.raises(ValueError, match=r"layers\.0\.weight: .* c_in a multiple of 4, got c_in=2"):
        save_safetensors(net, path, layout="2:4")
    assert not path.exists()
    from nettrim import Conv2dLayer
    from nettrim.io import stored_layouts

    # "auto" tries the groups that fit c_in = 2: channel 1 is all zero, so 1:2
    W = np.array(net[0].W)
    big = Conv2dLayer(np.tile(W, (1, 8)), None, net[0].in_shape, net[0].kernel_size)
    save_safetensors(Network((big,)), path)
    assert stored_layouts(path) == ["1:2"]
    assert_same_cnn(load_safetensors(path), Network((big,)))


def pytorch_cnn_file(path, net, kernel):
    """What safetensors.torch.save_file writes for nn.Sequential(Conv2d, ReLU, MaxPool2d,
    Flatten, Linear): keys 0.* and 4.*, PyTorch's shapes."""
    tensors = {"0.weight": kernel, "0.bias": net[0].b, "4.weight": net[3].W.T.copy()}
    save_file(tensors, path, metadata={"format": "pt"})
    from nettrim.network import _describe

    return [_describe(layer) for layer in net.layers]


def test_a_pytorch_cnn_state_dict_reads_with_its_layers_and_the_orientation_that_fits(tmp_path):
    net, kernel = strided_cnn()
    path = tmp_path / "lenet.safetensors"
    layers = pytorch_cnn_file(path, net, kernel)
    assert_same_cnn(load_safetensors(path, orientation="torch", layers=layers), net)
    with pytest.raises(NetworkFileError, match="the shapes fit orientation='torch'") as info:
        load_safetensors(path, orientation="nettrim", layers=layers)
    assert "(c_out, c_in, k_h, k_w) kernel" in str(info.value) and str(path) in str(info.value)
    # the nettrim orientation's dense kernel, read as torch: the error names 'nettrim'
    save_file({"0.weight": net[0].W, "0.bias": net[0].b, "4.weight": net[3].W}, path)
    with pytest.raises(NetworkFileError, match="the shapes fit orientation='nettrim'"):
        load_safetensors(path, orientation="torch", layers=layers)
    assert_same_cnn(load_safetensors(path, orientation="nettrim", layers=layers), net)
    with pytest.raises(NetworkFileError, match="2 weights in the file, but the layers take 1"):
        load_safetensors(path, orientation="nettrim", layers=layers[:1])
    with pytest.raises(ValueError, match=r"activations .* or layers, not both"):
        load_safetensors(path, orientation="nettrim", layers=layers, activations=["relu"] * 2)


def test_a_cnn_file_refuses_a_flag_or_layers_other_than_it_records(tmp_path):
    net, _ = strided_cnn()
    path = tmp_path / "cnn.safetensors"
    save_safetensors(net, path, orientation="torch", layout="dense")
    with pytest.raises(ValueError, match="records orientation 'torch'"):
        load_safetensors(path, orientation="nettrim")
    with pytest.raises(ValueError, match=r"layers=.* but the file records"):
        load_safetensors(path, layers=[{"kind": "flatten"}])
    assert load_safetensors(path, activations=["relu", "linear"]).dims == net.dims


GEOMETRY_MISSING = json.dumps(
    [{"kind": "conv2d", "activation": "relu"}, {"kind": "maxpool2d", "kernel_size": [2, 1]},
     {"kind": "flatten"}, {"kind": "dense", "activation": "linear"}]
)  # fmt: skip


def _tamper(path, out, *, tensors=None, metadata=None):
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as fh:
        stored = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118
        meta = fh.metadata()
    save_file({**stored, **(tensors or {})}, out, metadata={**meta, **(metadata or {})})


@pytest.mark.parametrize(
    ("tensors", "metadata", "message"),
    [
        ({"layers.0.weight": np.ones((5, 4, 3, 2), np.float32)}, None, r"\(c_out, 4, 3, 3\)"),
        ({"layers.1.weight": np.ones((2, 2), np.float32)}, None, r"weights of layers \[0, 1, 3\]"),
        (None, {"layers": "[{"}, "metadata layers is not valid JSON"),
        (None, {"layers": '[{"kind": "conv3d"}]'}, "has kind 'conv3d'"),
        (None, {"layers": GEOMETRY_MISSING}, r"layers\[0\] \(conv2d\) must have exactly"),
        (None, {"activations": '["relu"]'}, "both activations and layers"),
        (None, {"format_version": "3"}, "format_version is '3'"),
    ],
)
def test_a_tampered_cnn_file_is_a_clear_error(tmp_path, tensors, metadata, message):
    net, _ = strided_cnn()
    good, bad = tmp_path / "good.safetensors", tmp_path / "bad.safetensors"
    save_safetensors(net, good, orientation="torch", layout="dense")
    _tamper(good, bad, tensors=tensors, metadata=metadata)
    with pytest.raises(NetworkFileError, match=message) as info:
        load_safetensors(bad)
    assert str(bad) in str(info.value)


@pytest.mark.parametrize("damage", ["truncate", "flip", "header"])
def test_corrupted_and_truncated_cnn_files_name_the_file_and_write_nothing(tmp_path, damage):
    net, _ = strided_cnn()
    path = tmp_path / "cnn.safetensors"
    save_safetensors(net, path, layout="2:4")
    data = path.read_bytes()
    if damage == "truncate":
        data = data[: len(data) - 40]
    elif damage == "flip":
        data = bytes(b ^ 0xFF for b in data[:8]) + data[8:]
    else:  # the JSON header's first bytes
        data = data[:8] + b"}}}" + data[11:]
    path.write_bytes(data)
    with pytest.raises(NetworkFileError, match="not a valid safetensors file") as info:
        Network.load(path)
    assert str(path) in str(info.value)
    out = tmp_path / "copy.safetensors"
    with pytest.raises(NetworkFileError):
        Network.load(path).save(out)
    assert not out.exists()
