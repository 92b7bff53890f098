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
        ("Conv", "Conv node 'act': Conv is not supported yet"),
        ("MaxPool", "MaxPool node 'act': MaxPool is not supported yet"),
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
