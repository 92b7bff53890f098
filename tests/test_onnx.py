"""ONNX import: models built here with onnx.helper, predictions compared with onnx's
reference evaluator."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from nettrim.onnx import OnnxImportError, from_onnx

RNG = np.random.default_rng(3)


def build(nodes, initializers, input_shape, output="y", dtype=TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", dtype, input_shape)],
        [helper.make_tensor_value_info(output, dtype, ["N", "K"])],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def reference(model, x):
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


def torch_like_mlp(dtype=np.float32):
    """What torch.onnx.export writes for Linear(8, 6), ReLU, Linear(6, 3): Gemm, transB=1."""
    inits = {
        "w1": RNG.standard_normal((6, 8)).astype(dtype),
        "b1": RNG.standard_normal(6).astype(dtype),
        "w2": RNG.standard_normal((3, 6)).astype(dtype),
        "b2": RNG.standard_normal(3).astype(dtype),
    }
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu1"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1),
    ]
    return nodes, inits


@pytest.mark.parametrize(("dtype", "proto"), [(np.float32, TensorProto.FLOAT),
                                              (np.float64, TensorProto.DOUBLE)])  # fmt: skip
def test_gemm_relu_chain(dtype, proto):
    model = build(*torch_like_mlp(dtype), ["N", 8], dtype=proto)
    net = from_onnx(model)
    assert net.dims == (8, 6, 3) and net.activations == ("relu", "linear")
    assert net[0].W.dtype == dtype
    x = RNG.standard_normal((20, 8)).astype(dtype)
    np.testing.assert_allclose(
        net(x), reference(model, x), rtol=1e-5 if dtype == np.float32 else 1e-12
    )


def test_gemm_alpha_beta_and_no_transpose(tmp_path):
    inits = {"w": RNG.standard_normal((4, 5)).astype(np.float32), "c": np.ones((1, 5), np.float32)}
    node = helper.make_node("Gemm", ["x", "w", "c"], ["y"], name="g", alpha=0.5, beta=2.0)
    model = build([node], inits, ["N", 4])
    onnx.save(model, tmp_path / "g.onnx")
    net = from_onnx(tmp_path / "g.onnx")
    x = RNG.standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_allclose(net(x), reference(model, x), rtol=1e-6)


def test_flatten_matmul_add_relu_reshape_from_an_image_input():
    inits = {
        "w1": RNG.standard_normal((16, 7)).astype(np.float32),
        "b1": RNG.standard_normal(7).astype(np.float32),
        "w2": RNG.standard_normal((7, 2)).astype(np.float32),
        "b2": RNG.standard_normal(2).astype(np.float32),
        "shape": np.array([-1, 7], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], name="flat", axis=1),
        helper.make_node("MatMul", ["f", "w1"], ["m1"], name="mm1"),
        helper.make_node("Add", ["b1", "m1"], ["a1"], name="add1"),  # bias first is fine
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("Reshape", ["r1", "shape"], ["r1f"], name="reshape"),
        helper.make_node("MatMul", ["r1f", "w2"], ["m2"], name="mm2"),
        helper.make_node("Add", ["m2", "b2"], ["y"], name="add2"),
    ]
    model = build(nodes, inits, ["N", 1, 4, 4])
    net = from_onnx(model)
    assert net.dims == (16, 7, 2) and net.activations == ("relu", "linear")
    x = RNG.standard_normal((5, 1, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(net(x.reshape(5, -1)), reference(model, x), rtol=1e-5, atol=1e-6)


def test_a_reshape_shape_from_a_constant_node():
    shape = helper.make_node(
        "Constant", [], ["s"], name="shape", value=numpy_helper.from_array(np.array([0, -1]))
    )
    nodes = [
        shape,
        helper.make_node("Reshape", ["x", "s"], ["f"], name="reshape"),
        helper.make_node("MatMul", ["f", "w"], ["y"], name="mm"),
    ]
    model = build(nodes, {"w": RNG.standard_normal((6, 2)).astype(np.float32)}, ["N", 2, 3])
    x = RNG.standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(from_onnx(model)(x.reshape(4, 6)), reference(model, x), rtol=1e-6)


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ("Sigmoid", "Sigmoid node 'act': op Sigmoid is not supported"),
        ("Softmax", "Softmax node 'act': op Softmax is not supported"),
    ],
)
def test_unsupported_nodes_are_named(op, message):
    nodes, inits = torch_like_mlp()
    nodes[1] = helper.make_node(op, ["h"], ["r"], name="act")
    graph = helper.make_graph(
        nodes,
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "K"])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    with pytest.raises(OnnxImportError, match=message):
        from_onnx(helper.make_model(graph))


def test_a_branch_and_a_broken_file_are_refused(tmp_path):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["a"], name="mm"),
        helper.make_node("Add", ["a", "x"], ["y"], name="residual"),
    ]
    model = build(nodes, {"w": np.eye(3, dtype=np.float32)}, ["N", 3])
    with pytest.raises(OnnxImportError, match=r"Add node 'residual'.*no branches"):
        from_onnx(model)
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07garbage that is no protobuf \xff\xff")
    with pytest.raises(OnnxImportError, match=r"broken\.onnx: not an ONNX model"):
        from_onnx(path)


def lenet(*, flatten="Flatten", second_conv=None):
    """A LeNet-like graph on 1x12x12 images: Conv, Relu, MaxPool, Conv, MaxPool, Relu (after
    the pooling), Flatten (or Reshape), Gemm, Relu, Gemm; random weights."""
    second_conv = second_conv or {}
    inits = {
        "c1": RNG.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "cb1": RNG.standard_normal(4).astype(np.float32),
        "c2": RNG.standard_normal((6, 4, 3, 3)).astype(np.float32),
        "f1": RNG.standard_normal((10, 24)).astype(np.float32),
        "fb1": RNG.standard_normal(10).astype(np.float32),
        "f2": RNG.standard_normal((3, 10)).astype(np.float32),
        "fb2": RNG.standard_normal(3).astype(np.float32),
        "shape": np.array([0, -1], dtype=np.int64),
    }
    to_rows = (
        helper.make_node("Flatten", ["r2"], ["flat"], name="flatten", axis=1)
        if flatten == "Flatten"
        else helper.make_node("Reshape", ["r2", "shape"], ["flat"], name="reshape")
    )
    nodes = [
        helper.make_node("Conv", ["x", "c1", "cb1"], ["z1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["z1"], ["r1"], name="relu1"),
        helper.make_node(
            "MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Conv", ["p1", "c2"], ["z2"], name="conv2", **second_conv),
        helper.make_node(
            "MaxPool", ["z2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node("Relu", ["p2"], ["r2"], name="relu2"),
        to_rows,
        helper.make_node("Gemm", ["flat", "f1", "fb1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="relu3"),
        helper.make_node("Gemm", ["hr", "f2", "fb2"], ["y"], name="fc2", transB=1),
    ]
    return build(nodes, inits, ["N", 1, 12, 12])


# float32 throughout: the reference evaluator and nettrim sum the products in different
# orders, so agreement is to float32 rounding of O(10) activations
FLOAT32 = {"rtol": 1e-5, "atol": 1e-4}


@pytest.mark.parametrize(
    ("flatten", "second_conv"),
    [
        ("Flatten", {}),
        # a dilation-2 kernel, padded: 6x6 -> 4x4 as well
        ("Reshape", {"strides": [1, 1], "dilations": [2, 2], "pads": [1, 1, 1, 1]}),
    ],
)
def test_a_lenet_like_cnn_predicts_like_the_reference(flatten, second_conv):
    model = lenet(flatten=flatten, second_conv=second_conv)
    net = from_onnx(model)
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Conv2dLayer", "MaxPool2dLayer", "Conv2dLayer", "MaxPool2dLayer",
                     "FlattenLayer", "DenseLayer", "DenseLayer"]  # fmt: skip
    # the Relu after pool2 went into conv2 (max and relu commute)
    assert net.activations == ("relu", "linear", "relu", "linear", "linear", "relu", "linear")
    assert net.shapes[0] == (1, 12, 12) and net.shapes[5] == (24,)
    x = RNG.standard_normal((7, 1, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(net(x), reference(model, x), **FLOAT32)


def test_an_imported_cnn_survives_its_network_file(tmp_path):
    model = lenet()
    net = from_onnx(model)
    net.save(tmp_path / "cnn.npz")
    x = RNG.standard_normal((3, 1, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(type(net).load(tmp_path / "cnn.npz")(x), net(x))


@pytest.mark.parametrize(
    ("op", "attributes", "message"),
    [
        ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2]},
         r"MaxPool node 'bad': only non-overlapping .*strides \[2, 2\]"),
        ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1]},
         r"MaxPool node 'bad': only non-overlapping"),
        ("AveragePool", {"kernel_shape": [2, 2]}, "AveragePool node 'bad': op AveragePool"),
    ],
)  # fmt: skip
def test_pooling_nettrim_cannot_compute_is_named(op, attributes, message):
    model = lenet()
    nodes = list(model.graph.node)
    nodes[2] = helper.make_node(op, ["r1"], ["p1"], name="bad", **attributes)
    if attributes.get("pads") or attributes["kernel_shape"] == [3, 3]:
        nodes[3] = helper.make_node("Conv", ["p1", "c2"], ["z2"], name="conv2")
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    with pytest.raises(OnnxImportError, match=message):
        from_onnx(model)


def test_convolutions_nettrim_cannot_compute_are_named():
    def with_conv1(**attributes):
        model = lenet()
        model.graph.node[0].CopyFrom(
            helper.make_node("Conv", ["x", "c1", "cb1"], ["z1"], name="conv1", **attributes)
        )
        return model

    with pytest.raises(OnnxImportError, match=r"Conv node 'conv1': pads \[1, 1, 0, 0\] differ"):
        from_onnx(with_conv1(pads=[1, 1, 0, 0]))
    with pytest.raises(OnnxImportError, match="Conv node 'conv1': auto_pad=SAME_UPPER"):
        from_onnx(with_conv1(auto_pad="SAME_UPPER"))
    model = lenet()
    model.graph.input[0].CopyFrom(
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])
    )
    with pytest.raises(OnnxImportError, match=r"Conv node 'conv1': needs .* a fixed size"):
        from_onnx(model)


def test_a_torch_cnn_exported_by_torch_onnx_export(tmp_path):
    """PyTorch's own export (the TorchScript exporter, which needs only onnx) of a small CNN."""
    import warnings

    import torch
    from torch import nn

    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 3),
    ).eval()  # fmt: skip
    path = tmp_path / "cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter's notice
        torch.onnx.export(
            module, (torch.randn(2, 1, 12, 12),), path, dynamo=False, input_names=["x"],
            output_names=["y"], dynamic_axes={"x": {0: "N"}},
        )  # fmt: skip
    net = from_onnx(path)
    assert [type(layer).__name__ for layer in net.layers] == [
        "Conv2dLayer", "MaxPool2dLayer", "Conv2dLayer", "FlattenLayer", "DenseLayer",
    ]  # fmt: skip
    x = RNG.standard_normal((5, 1, 12, 12)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net(x), expected, **FLOAT32)
