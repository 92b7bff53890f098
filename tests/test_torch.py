"""The PyTorch adapter against independent routes: torch's own forward, F.conv2d, net_trim."""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nettrim import Network, net_trim, prune_layer
from nettrim.conv import conv_weight_to_dense
from nettrim.store import StoreError, open_store
from nettrim.torch import (
    dense_weights,
    export,
    find_programs,
    load_pruned,
    load_state,
    prune_model,
    record,
    to_network,
    write_back,
)

# float32 recordings against a float32 forward: the same kernels, different summation order
F32 = {"rtol": 1e-5, "atol": 1e-5}


def lenet(seed=0, bn=False):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 3, 3, padding=1)]
    if bn:
        layers.append(nn.BatchNorm2d(3))
    layers += [
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, stride=1, dilation=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
    ]
    model = nn.Sequential(*layers).eval()
    if bn:
        with torch.no_grad():
            model[1].weight.uniform_(0.5, 1.5)
            model[1].bias.uniform_(-0.2, 0.2)
            model[1].running_mean.uniform_(-0.2, 0.2)
            model[1].running_var.uniform_(0.5, 1.5)
    return model


def images(n=24, seed=1):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_recorded_rows_equal_a_manual_forward():
    model, x = lenet(), images()
    rec = record(model, list(x.split(8)))
    assert rec.modules == ("0", "3", "7", "9")
    assert rec.activation == {"0": "relu", "3": "relu", "7": "relu", "9": "linear"}
    with torch.no_grad():
        a0 = model[0](x)
        h = model[2](F.relu(a0))
        a4 = model[3](h)
        flat = model[6](model[5](F.relu(a4)))
        a8 = model[7](flat)
        a10 = model[9](F.relu(a8))
    unfold = F.unfold(h, 3).reshape(len(x), 3, 3, 3, -1).permute(0, 4, 2, 3, 1)
    expected = {
        "0": (None, F.relu(a0).permute(0, 2, 3, 1).reshape(-1, 3)),
        "3": (unfold.reshape(-1, 27), F.relu(a4).permute(0, 2, 3, 1).reshape(-1, 4)),
        "7": (flat, F.relu(a8)),
        "9": (F.relu(a8), a10),
    }
    for name, (X, Y) in expected.items():
        if X is not None:
            np.testing.assert_allclose(rec.X[name], X.numpy(), **F32)
        np.testing.assert_allclose(rec.Y[name], Y.numpy(), **F32)
        assert rec.X[name].dtype == np.float32


@pytest.mark.parametrize(
    ("stride", "padding", "dilation"), [(1, 0, 1), (2, 1, 1), (1, 2, 2), ((2, 1), (0, 1), (1, 2))]
)
def test_conv_patches_times_dense_weight_equal_conv2d(stride, padding, dilation):
    conv = nn.Conv2d(3, 5, (3, 2), stride=stride, padding=padding, dilation=dilation).double()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    rec = record(nn.Sequential(conv), [x])
    W = conv_weight_to_dense(conv.weight.detach().numpy())
    with torch.no_grad():
        expected = F.conv2d(x, conv.weight, conv.bias, stride, padding, dilation)
    rows = rec.X["0"] @ W + conv.bias.detach().numpy()
    np.testing.assert_allclose(rows, expected.permute(0, 2, 3, 1).reshape(-1, 5).numpy(), 1e-12)


def test_cnn_network_file_round_trips_and_forward_equals_pytorch(tmp_path):
    model, x = lenet(), images()
    network, names = to_network(model, x[:1])
    assert names == ["0", "3", "7", "9"]
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(network(x.numpy()), expected, **F32)
    path = tmp_path / "cnn.npz"
    network.save(path)
    loaded = Network.load(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in network.layers]
    assert np.array_equal(loaded(x.numpy()), network(x.numpy()))
    with np.load(path) as data:
        assert int(data["format_version"]) == 2


def test_batchnorm_is_folded_and_the_model_unchanged():
    model, x = lenet(bn=True), images()
    with torch.no_grad():
        before = model(x)
    rec = record(model, [x])
    assert isinstance(model[1], nn.Identity)
    assert rec.activation["0"] == "relu"  # conv -> BatchNorm -> ReLU
    with torch.no_grad():
        torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)


class Branchy(nn.Module):
    """Not a Sequential: fx finds that ``a`` feeds only a ReLU, ``b`` also a residual."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = F.relu(self.a(x))
        z = self.b(h)
        return self.c(F.relu(z) + z)


def test_programs_come_from_the_fx_graph():
    program, folds = find_programs(Branchy(), ["a", "b", "c"])
    assert program == {"a": "relu", "b": "linear", "c": "linear"} and folds == {}
    program, _ = find_programs(Branchy(), ["a", "b", "c"], {"b": "relu"})
    assert program["b"] == "relu"


def test_unsupported_modules_are_named():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ValueError, match=r"module '0': groups=2"):
        record(model, [torch.randn(1, 4, 5, 5)])
    with pytest.raises(ValueError, match=r"no module 'nope'"):
        record(model, [torch.randn(1, 4, 5, 5)], modules=["nope"])


def test_write_back_then_forward_equals_the_pruned_network():
    model, x = lenet(), images(40)
    network, _ = to_network(model, x[:1])
    result = prune_model(model, list(x.split(20)), eps=0.1, solver="clarabel", n_jobs=1)
    assert result.removed > 0.1
    pruned = network
    for l, name in zip(network.prunable, ["0", "3", "7", "9"], strict=True):
        r = result.results[name]
        pruned = pruned.with_layer(l, pruned[l].with_weights(r.W, r.b))
    with torch.no_grad():
        torch_out = model(x).numpy()
    np.testing.assert_allclose(torch_out, pruned(x.numpy()), **F32)
    assert model[0].weight.dtype == torch.float32
    masks = result.masks(model)
    assert int(sum(m.sum() for m in masks.values())) == result.nnz
    result.apply_masks(model)
    assert hasattr(model[0], "weight_mask")


def mlp(dtype=torch.float64):
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))


def test_cascade_net_trim_equals_net_trim_on_the_same_float64_arrays():
    model = mlp().double().eval()
    x = torch.randn(60, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    network, _ = to_network(model, x[:1])
    expected = net_trim(network, x.numpy(), scheme="cascade", eps=0.1, solver="clarabel", n_jobs=1)
    result = prune_model(
        model, [x[:30], x[30:]], scheme="cascade", eps=0.1, solver="clarabel", n_jobs=1
    )
    for l, name in enumerate(["0", "2", "4"]):
        got, want = result.results[name], expected.layers[l]
        np.testing.assert_allclose(got.W, want.W, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(got.b, want.b, rtol=1e-6, atol=1e-8)
        assert got.nnz == want.nnz


def test_parallel_l0_and_two_four_on_linear_modules():
    model = mlp().float().eval()
    x = torch.randn(80, 6, generator=torch.Generator().manual_seed(5))
    result = prune_model(model, [x], method="sparsegpt", sparsity=0.5, modules=["2", "4"], n_jobs=1)
    assert [m.nnz for m in result.modules] == [40, 12]
    assert int((model[2].weight != 0).sum()) == 40  # written back
    model = mlp().float().eval()
    result = prune_model(model, [x], method="admm", pattern="2:4", modules=["4"], n_jobs=1)
    kept = (model[4].weight != 0).reshape(3, 2, 4).sum(-1)
    assert result.modules[0].nnz == 12 and int(kept.max()) <= 2


class TokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 3)

    def forward(self, input, mask):
        return self.lin(input)


def test_token_mask_drops_padding_rows():
    model = TokenModel()
    x = torch.randn(2, 4, 5)
    keep = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    rec = record(model, [{"input": x, "mask": keep}], mask="mask")
    assert rec.X["lin"].shape == (5, 5)
    np.testing.assert_allclose(rec.X["lin"], x[keep].numpy())
    with torch.no_grad():
        np.testing.assert_allclose(rec.Y["lin"], model.lin(x)[keep].numpy(), **F32)


class TokenMLP(nn.Module):
    """Two token-wise modules, as a transformer's FFN; padding positions carry junk."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.up, self.down = nn.Linear(6, 8), nn.Linear(8, 4)

    def forward(self, input, mask):
        return self.down(F.gelu(self.up(input)))


def test_l0_cascade_on_a_token_model_re_records_masked_inputs():
    torch.manual_seed(1)
    masks = [torch.tensor([[1] * 9 + [0] * 3, [1] * 5 + [0] * 7]), torch.ones(1, 12)]
    batches = []
    for keep in masks:
        x = torch.randn(keep.shape[0], 12, 6)
        x[keep == 0] = 100.0  # padding junk: rows that must never reach a program
        batches.append({"input": x, "mask": keep.bool()})
    model, reference = TokenMLP(), TokenMLP()
    result = prune_model(
        model, batches, method="sparsegpt", scheme="cascade", sparsity=0.5, mask="mask", n_jobs=1
    )
    # the same cascade by hand: the kept tokens' inputs, the second on the pruned first module
    x = torch.cat([b["input"][b["mask"]] for b in batches])
    first = prune_layer(x.numpy(), *dense_weights(reference.up), method="sparsegpt", sparsity=0.5)
    write_back(reference.up, first.W, first.b)
    with torch.no_grad():
        hidden = F.gelu(reference.up(x)).numpy()
    second = prune_layer(hidden, *dense_weights(reference.down), method="sparsegpt", sparsity=0.5)
    np.testing.assert_allclose(result.results["up"].W, first.W, **F32)
    np.testing.assert_allclose(result.results["down"].W, second.W, **F32)
    assert [m.removed for m in result.modules] == [0.5, 0.5]


def test_store_written_in_batches_equals_the_one_array_recording(tmp_path):
    model, x = lenet(), images(30)
    batches = list(x.split(7))  # uneven last batch
    in_memory = record(model, batches)
    stored = record(model, batches, store=tmp_path / "rec")
    assert stored.modules == in_memory.modules
    for name in in_memory.modules:
        assert isinstance(stored.X[name], np.memmap)
        assert np.array_equal(stored.X[name], in_memory.X[name])
        assert np.array_equal(stored.Y[name], in_memory.Y[name])
    reopened = open_store(tmp_path / "rec")
    assert reopened.activation == in_memory.activation
    # token rows: the kept tokens of every batch
    torch.manual_seed(0)
    batches = [
        {"input": torch.randn(2, 4, 5), "mask": torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]]) > 0},
        {"input": torch.randn(1, 6, 5), "mask": torch.ones(1, 6, dtype=torch.bool)},
    ]
    tokens = record(TokenModel(), batches, store=tmp_path / "tok", mask="mask")
    assert tokens.X["lin"].shape == (9, 5)
    assert np.array_equal(tokens.X["lin"], record(TokenModel(), batches, mask="mask").X["lin"])


def test_interrupted_recording_leaves_no_finished_store(tmp_path):
    model, x = lenet(), images(20)

    def batches():
        yield x[:10]
        raise KeyboardInterrupt  # Ctrl-C between batches

    with pytest.raises(KeyboardInterrupt):
        record(model, batches(), store=tmp_path / "rec")
    assert not (tmp_path / "rec").exists()
    # a recording killed outright leaves arrays but no manifest: refused as unfinished
    (tmp_path / "killed").mkdir()
    np.save(tmp_path / "killed" / "0000.X.npy", np.zeros((2, 2)))
    with pytest.raises(StoreError, match="unfinished"):
        open_store(tmp_path / "killed")


def test_gram_only_recording_equals_the_rows_gram():
    model, x = lenet(), images(16)
    rows = record(model, list(x.split(4)))
    grams = record(model, list(x.split(4)), statistics="gram")
    for name in rows.modules:
        X = rows.X[name].astype(np.float64)
        Xt = np.hstack([X, np.ones((len(X), 1))])
        np.testing.assert_allclose(grams.gram[name].gram(), Xt.T @ Xt, rtol=1e-10, atol=1e-8)


def test_export_prune_and_load_pruned_round_trip(tmp_path):
    model, x = lenet(), images(30)
    path = export(model, list(x.split(10)), tmp_path / "exp")
    network = Network.load(path)
    assert os.path.exists(tmp_path / "exp" / "store" / "manifest.json")
    inputs = np.load(tmp_path / "exp" / "inputs.npy")
    result = net_trim(network, inputs, eps=0.1, solver="clarabel", n_jobs=1)
    result.network.save(tmp_path / "pruned.npz")
    load_pruned(model, tmp_path / "pruned.npz")
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), result.network(x.numpy()), **F32)
    with pytest.raises(ValueError, match="dense/conv layers"):
        load_pruned(mlp(), tmp_path / "pruned.npz")


def test_load_state_reads_weights_only(tmp_path):
    model = mlp()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    other = mlp()
    with torch.no_grad():
        other[0].weight.zero_()
    load_state(other, tmp_path / "w.pt")
    assert torch.equal(other[0].weight, model[0].weight)
    torch.save({"x": object()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        load_state(other, tmp_path / "evil.pt")


def test_row_generation_and_module_batches_through_prune_model():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(128, 3)).eval()
    x = torch.randn(40, 1, 10, 10, generator=torch.Generator().manual_seed(7))
    conv_batches = [x[:10]]  # 640 patch rows: 32 times the reduced ball's 10 x 2
    result = prune_model(
        model, [x], eps=0.05, rows="generate", module_batches={"0": conv_batches}, n_jobs=1
    )
    conv = result.results["0"]
    assert conv.info.solver == "admm+rows" and conv.status == "optimal"
    assert conv.info.residual <= conv.info.radius * (1 + 1e-3)
    assert result.results["3"].info.solver != "admm+rows"  # 40 rows: solved on all of them
    reweighted = prune_model(
        model, [x], eps=0.05, rows="generate", module_batches={"0": conv_batches}, n_jobs=1,
        reweight_rounds=1,
    )  # fmt: skip
    conv = reweighted.results["0"]
    assert conv.info.solver == "admm+rows+reweighted" and conv.status == "optimal"
    assert conv.info.residual <= conv.info.radius * (1 + 1e-3)
    with pytest.raises(ValueError, match=r"module_batches: \['9'\]"):
        prune_model(model, [x], module_batches={"9": conv_batches})


def test_reweighting_is_sparser_under_the_same_budgets():
    x = torch.randn(60, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    plain = prune_model(mlp().double().eval(), [x], eps=0.1, solver="clarabel", n_jobs=1)
    model = mlp().double().eval()
    reweighted = prune_model(model, [x], eps=0.1, solver="clarabel", n_jobs=1, reweight_rounds=2)
    assert reweighted.nnz <= plain.nnz
    for name, r in reweighted.results.items():
        assert r.info.residual <= plain.results[name].info.radius * (1 + 1e-6) + 1e-9


def test_sparsify_linear_runs_pruned_modules_through_torch_sparse():
    from nettrim.torch import sparsify_linear

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 5), torch.nn.ReLU()
    )
    with torch.no_grad():  # the first layer 95% pruned, the second left dense
        model[0].weight[torch.rand(30, 20) < 0.95] = 0.0
    x = torch.randn(7, 3, 20)  # leading dimensions (tokens) kept
    with torch.no_grad():
        before = model(x)
        assert sparsify_linear(model) == ["0"]
        after = model(x)
    assert type(model[0]).__name__ == "SparseLinear" and model[0].weight.layout == torch.sparse_csr
    assert type(model[2]) is torch.nn.Linear  # dense: dense BLAS is faster there
    # float32: the sparse product sums the same terms in another order
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    assert after.shape == (7, 3, 5)
    with pytest.raises(ValueError, match="min_sparsity"):
        sparsify_linear(model, min_sparsity=1.5)


def test_eps_per_module_equals_each_module_pruned_alone():
    x = torch.randn(60, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    eps = {"0": 0.02, "2": 0.2, "4": 0.1}
    model = mlp().double().eval()
    result = prune_model(model, [x], eps=eps, solver="clarabel", n_jobs=1)
    for name, e in eps.items():
        alone = mlp().double().eval()
        prune_model(alone, [x], eps=e, modules=[name], solver="clarabel", n_jobs=1)
        assert torch.equal(model.get_submodule(name).weight, alone.get_submodule(name).weight)
        assert result.results[name].info.radius == pytest.approx(
            e * np.linalg.norm(record(mlp().double().eval(), [x]).Y[name])
        )
    with pytest.raises(ValueError, match=r"eps: a dict must name exactly .*missing \['2', '4'\]"):
        prune_model(mlp().double().eval(), [x], eps={"0": 0.1})
    with pytest.raises(ValueError, match="cascade' takes one eps"):
        prune_model(mlp().double().eval(), [x], eps=eps, scheme="cascade")


def test_gamma_per_module_dict_equals_the_list_in_call_order():
    x = torch.randn(60, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(10))
    options = {"scheme": "cascade", "eps": 0.05, "solver": "clarabel", "n_jobs": 1}
    by_list, by_dict = mlp().double().eval(), mlp().double().eval()
    prune_model(by_list, [x], gamma=[3.0, 1.5], **options)
    prune_model(by_dict, [x], gamma={"4": 1.5, "2": 3.0}, **options)
    for name in ("2", "4"):
        assert torch.equal(by_list.get_submodule(name).weight, by_dict.get_submodule(name).weight)
    with pytest.raises(ValueError, match=r"gamma: .*not among them \['0'\]"):
        prune_model(mlp().double().eval(), [x], gamma={"0": 2.0, "2": 3.0, "4": 1.0}, **options)


def test_a_prune_result_prints_its_table():
    """str() is the per-module table, repr() one line, .success every module optimal."""
    from nettrim.torch import ModuleReport, PruneResult

    report = ModuleReport("encoder.layer.0.attention.self.query", "linear", (4, 2), "P2",
                          8, 2, "optimal", 0.1, 0.2, 1.5, "admm")  # fmt: skip
    result = PruneResult("admm", "cascade", (report,), {}, 2.0)
    lines = str(result).splitlines()
    assert lines[0] == "admm (cascade), 1 modules, 75.0% of 8 weights removed, 2.00 s"
    assert lines[2].split() == [report.name, "4x2", "P2", "75.0%", "optimal", "1.50", "admm"]
    assert lines[2].startswith(report.name)  # names left-aligned
    assert repr(result) == (
        "PruneResult(method='admm', scheme='cascade', modules=1, removed=0.750, seconds=2.00)"
    )
    assert result.success
