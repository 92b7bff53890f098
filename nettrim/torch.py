"""PyTorch adapter: record, prune and write back ``nn.Linear`` and ``nn.Conv2d`` modules.

Needs the optional extra ``torch`` (``pip install "nettrim[torch]"``); the rest of nettrim
never imports torch. Three steps, each usable alone (see ``docs/torch.md``):

* :func:`record` runs calibration batches through a model with forward hooks and returns
  every chosen module's program rows ``(X, Y)`` (in memory, or in an activation store on
  disk, :mod:`nettrim.store`): ``X`` the module's input (a conv's input unfolded into
  :func:`nettrim.conv.im2col` patches), ``Y`` its output, or its ReLU's output when a ReLU
  is the module's only consumer (Net-Trim's (P1); every other module gets (P2)).
* :func:`prune_model` records, prunes every module with Net-Trim or an L0 method
  (parallel or cascade, as :func:`nettrim.net_trim`) and writes the pruned weights back
  into the modules in place.
* :func:`export` / :func:`load_pruned` hand a ``nn.Sequential`` model to the command line
  (``nettrim prune``) as a network file and bring the pruned file back.

Model files are read with ``torch.load(weights_only=True)`` only (:func:`load_state`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .conv import conv_weight_to_dense, dense_to_conv_weight
from .layer import DEFAULT_EPS, LayerResult
from .network import (
    Conv2dLayer,
    DenseLayer,
    FlattenLayer,
    MaxPool2dLayer,
    Network,
    write_atomically,
)
from .pruning import check_layer_budgets
from .schemes import (
    CASCADE_BOUNDS,
    DEFAULT_GAMMA,
    DEFAULT_KAPPA,
    SCHEMES,
    check_cascade_only,
)
from .solvers.gram import GramAccumulator
from .stages import METHODS, Stage, check_stage_options, prune_stages
from .store import Recording, StoreWriter, open_store
from .tables import format_columns
from .validation import check_choice, check_scalar

PROGRAMS = ("relu", "linear")
STATISTICS = ("rows", "gram")


def _torch():
    try:
        import torch
    except ImportError:  # pragma: no cover - the test extra installs torch
        raise ImportError(
            "nettrim.torch needs PyTorch: pip install 'nettrim[torch]' (torch==2.13.0)"
        ) from None
    return torch


class _Stop(Exception):
    """Raised inside a hook once the one input a re-recording needs is captured."""


# ---------------------------------------------------------------------------------------
# which modules, which program


def prunable_modules(model, modules: Sequence[str] | None = None) -> list[tuple[str, Any]]:
    """``(name, module)`` of the chosen ``nn.Linear`` / ``nn.Conv2d`` modules (default: all).

    Raises
    ------
    ValueError
        For a name that is not in the model, or a module nettrim cannot prune (the
        message names it: grouped or non-zero-padded convolutions, other module types).
    """
    nn = _torch().nn
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = dict(model.named_modules())
    if modules is None:
        names = [n for n, m in named.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
        if not names:
            raise ValueError("model has no nn.Linear or nn.Conv2d module to prune")
    else:
        names = list(modules)
        for name in names:
            if name not in named:
                raise ValueError(f"modules: the model has no module {name!r}")
    for name in names:
        _check_supported(name, named[name])
    return [(name, named[name]) for name in names]


def _check_supported(name: str, module) -> None:
    nn = _torch().nn
    if isinstance(module, nn.Linear):
        return
    if not isinstance(module, nn.Conv2d):
        raise ValueError(
            f"module {name!r} is a {type(module).__name__}; nettrim prunes nn.Linear and "
            "nn.Conv2d modules"
        )
    if module.groups != 1:
        raise ValueError(
            f"module {name!r}: groups={module.groups} is not supported (a grouped or "
            "depthwise convolution is not one dense program); pass modules= without it"
        )
    if module.padding_mode != "zeros":
        raise ValueError(
            f"module {name!r}: padding_mode={module.padding_mode!r} is not supported "
            "(only zero padding)"
        )
    if isinstance(module.padding, str) and module.padding != "valid":
        raise ValueError(
            f"module {name!r}: padding={module.padding!r} is not supported; give the "
            "padding as integers"
        )


def _padding(module) -> tuple[int, int]:
    return (0, 0) if isinstance(module.padding, str) else tuple(module.padding)


def _is_relu(node) -> bool:
    torch = _torch()
    if node.op == "call_module":
        return isinstance(node.graph.owning_module.get_submodule(node.target), torch.nn.ReLU)
    if node.op == "call_function":
        return node.target in (torch.relu, torch.relu_, torch.nn.functional.relu)
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _PASS_THROUGH() -> tuple[type, ...]:  # a constant that needs torch
    nn = _torch().nn
    return (nn.Identity, nn.Dropout)


def _batchnorm(model, name: str):
    nn = _torch().nn
    module = model.get_submodule(name)
    return module if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)) else None


def find_programs(
    model, names: Sequence[str], programs: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """``(program, batchnorm)``: ``"relu"`` or ``"linear"`` per module, and the BatchNorm
    (by name) that directly follows a module, to fold into it.

    A module whose only consumer is a ReLU (through a BatchNorm that only feeds the ReLU,
    if any) gets ``"relu"``: Net-Trim's (P1) with ``Y`` the ReLU's output; every other one
    ``"linear"`` (P2), which bounds the module's own output. Found from a ``torch.fx``
    trace; a model fx cannot trace is read as an ``nn.Sequential``'s order when it is one,
    else every module gets ``"linear"``. ``programs`` overrides per module name.
    """
    torch = _torch()
    program = dict.fromkeys(names, "linear")
    folds: dict[str, str] = {}
    chosen = set(names)
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:
        graph = None
    if graph is not None:
        for node in graph.nodes:
            if node.op != "call_module" or node.target not in chosen:
                continue
            users = list(node.users)
            while len(users) == 1 and users[0].op == "call_module":
                follower = model.get_submodule(users[0].target)
                if _batchnorm(model, users[0].target) is not None and node.target not in folds:
                    folds[node.target] = users[0].target
                elif not isinstance(follower, _PASS_THROUGH()):
                    break  # identities (a folded BatchNorm) and eval dropout pass through
                users = list(users[0].users)
            if len(users) == 1 and _is_relu(users[0]):
                program[node.target] = "relu"
    elif isinstance(model, torch.nn.Sequential):
        children = list(model.named_children())
        for i, (name, _) in enumerate(children):
            if name not in chosen:
                continue
            j = i + 1
            if j < len(children) and _batchnorm(model, children[j][0]) is not None:
                folds[name] = children[j][0]
                j += 1
            while j < len(children) and isinstance(children[j][1], _PASS_THROUGH()):
                j += 1
            if j < len(children) and isinstance(children[j][1], torch.nn.ReLU):
                program[name] = "relu"
    for name, value in (programs or {}).items():
        if name not in program:
            raise ValueError(f"programs: {name!r} is not one of the modules {list(program)}")
        program[name] = check_choice(f"programs[{name!r}]", value, PROGRAMS)
    return program, folds


def fold_batchnorm(model, folds: Mapping[str, str]) -> None:
    """Fold each BatchNorm into the module before it (in place, eval-mode statistics) and
    replace the BatchNorm by ``nn.Identity``: the model computes the same function."""
    torch = _torch()
    for name, bn_name in folds.items():
        module, bn = model.get_submodule(name), model.get_submodule(bn_name)
        if bn.running_var is None:
            raise ValueError(
                f"BatchNorm {bn_name!r} tracks no running statistics; it cannot be folded"
            )
        with torch.no_grad():
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            shape = (-1,) + (1,) * (module.weight.ndim - 1)
            module.weight.mul_(scale.reshape(shape).to(module.weight))
            bias = torch.zeros_like(bn.running_mean) if module.bias is None else module.bias
            new_bias = (bias - bn.running_mean) * scale + bn.bias
            module.bias = torch.nn.Parameter(new_bias.to(module.weight))
        parent_name, _, child = bn_name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, torch.nn.Identity())


# ---------------------------------------------------------------------------------------
# rows of a module's program


def _numpy(tensor) -> np.ndarray:
    """A float NumPy copy (a hook's tensors may be overwritten afterwards, e.g. by an
    in-place ReLU)."""
    torch = _torch()
    tensor = tensor.detach()
    if tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()
    return np.array(tensor.cpu().numpy(), copy=True)


def _input_rows(module, x, keep):
    torch = _torch()
    if isinstance(module, torch.nn.Conv2d):
        n, c = x.shape[:2]
        k_h, k_w = module.kernel_size
        cols = torch.nn.functional.unfold(
            x, module.kernel_size, module.dilation, _padding(module), module.stride
        )  # (n, c * k_h * k_w, L), columns (channel, kernel row, kernel column)
        cols = cols.reshape(n, c, k_h, k_w, -1).permute(0, 4, 2, 3, 1)
        return cols.reshape(-1, k_h * k_w * c)
    return _keep(x.reshape(-1, x.shape[-1]), x.shape[:-1], keep)


def _output_rows(module, y, keep, relu: bool):
    torch = _torch()
    if isinstance(module, torch.nn.Conv2d):
        rows = y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])
    else:
        rows = _keep(y.reshape(-1, y.shape[-1]), y.shape[:-1], keep)
    return torch.relu(rows) if relu else rows


def _keep(rows, lead, keep):
    """Drop padding rows: ``keep`` is the batch's boolean mask over (sample, token)."""
    if keep is None or len(lead) == 1:
        return rows
    if tuple(lead) != tuple(keep.shape):
        raise ValueError(
            f"mask has shape {tuple(keep.shape)} but a module sees rows of leading shape "
            f"{tuple(lead)}; the mask must cover (sample, token)"
        )
    return rows[keep.reshape(-1).to(rows.device)]


def _call(model, batch):
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def _batch_mask(batch, mask, index: int):
    """The boolean (sample, token) mask of ``batches[index]``, or ``None``."""
    if mask is None:
        return None
    if isinstance(mask, str) and not (isinstance(batch, Mapping) and mask in batch):
        has = f"keys {sorted(batch)}" if isinstance(batch, Mapping) else type(batch).__name__
        raise ValueError(
            f"mask={mask!r} is the key of the attention mask in dict batches, but "
            f"batches[{index}] has {has}; pass mask=None, or mask(batch) -> booleans"
        )
    value = batch[mask] if isinstance(mask, str) else mask(batch)
    return _torch().as_tensor(value).bool()


def _batch_size(batch) -> int:
    first = next(iter(batch.values())) if isinstance(batch, Mapping) else batch
    if isinstance(first, (tuple, list)):
        first = first[0]
    return int(first.shape[0])


# ---------------------------------------------------------------------------------------
# recording


def record(
    model,
    batches: Iterable,
    modules: Sequence[str] | None = None,
    *,
    store: str | os.PathLike | None = None,
    mask: str | Callable | None = None,
    programs: Mapping[str, str] | None = None,
    statistics: str = "rows",
) -> Recording:
    """Record every chosen module's program rows over calibration batches.

    Parameters
    ----------
    model : torch.nn.Module
        Run in eval mode under ``torch.no_grad()`` (its mode is restored afterwards). A
        BatchNorm that directly follows a chosen module is folded into it first, in place
        (:func:`fold_batchnorm`).
    batches : iterable
        What the model is called with, one item per batch: a tensor (``model(x)``), a
        tuple (``model(*args)``) or a dict (``model(**kwargs)``). Iterated twice when
        writing a store (a list or a ``DataLoader``; a one-shot iterator is listed first).
    modules : sequence of str, optional
        Module names (``model.named_modules()``); default every ``nn.Linear`` and
        ``nn.Conv2d``.
    store : path, optional
        Write the arrays to this new directory (an activation store, :mod:`nettrim.store`)
        instead of memory; finished by its manifest, removed if recording fails.
    mask : str or callable, optional
        Token models: the key of the boolean attention mask in dict batches, or
        ``mask(batch) -> (samples, tokens)`` booleans; rows of padding tokens are dropped.
    programs : dict, optional
        ``{"name": "relu" | "linear"}`` overriding :func:`find_programs`.
    statistics : {"rows", "gram"}
        ``"gram"`` keeps only ``X~^T X~`` per module (a
        :class:`~nettrim.GramAccumulator`, with the ones column for a module with bias):
        bounded memory for any calibration size, enough for the L0 methods.

    Returns
    -------
    Recording
        ``X[name]``, ``Y[name]`` (or ``gram[name]``), ``activation[name]``, modules in the
        order the forward pass calls them.
    """
    statistics = check_choice("statistics", statistics, STATISTICS)
    _check_batches(batches)
    chosen = prunable_modules(model, modules)
    program, folds = find_programs(model, [n for n, _ in chosen], programs)
    fold_batchnorm(model, folds)
    if store is not None and statistics == "gram":
        raise ValueError("statistics='gram' keeps no rows to store; pass store=None")
    if store is not None and iter(batches) is batches:
        batches = list(batches)
    return _record(model, batches, chosen, program, store=store, mask=mask, statistics=statistics)


def _geometry(module) -> dict:
    torch = _torch()
    if isinstance(module, torch.nn.Conv2d):
        return {
            "kind": "conv2d",
            "kernel_size": list(module.kernel_size),
            "stride": list(module.stride),
            "padding": list(_padding(module)),
            "dilation": list(module.dilation),
        }
    return {"kind": "linear"}


def _record(model, batches, chosen, program, *, store=None, mask=None, statistics="rows",
            inputs_of: str | None = None):  # fmt: skip
    """The recording loop; with ``inputs_of`` only that module's input rows, each forward
    pass stopped right after it."""
    torch = _torch()
    order: list[str] = []
    parts: dict[str, dict[str, list]] = {name: {"X": [], "Y": []} for name, _ in chosen}
    gram: dict[str, GramAccumulator] = {}
    state: dict[str, Any] = {"keep": None, "seen": set(), "tokens": {}}

    def hook(name):
        def capture(module, args, output):
            if name in state["seen"]:
                raise ValueError(f"module {name!r} runs more than once per forward pass")
            state["seen"].add(name)
            if name not in order:
                order.append(name)
            state["tokens"][name] = args[0].ndim > 2 and not isinstance(module, torch.nn.Conv2d)
            X = _input_rows(module, args[0], state["keep"])
            if statistics == "gram":
                gram.setdefault(name, GramAccumulator(X.shape[1], bias=module.bias is not None))
                gram[name].update(_numpy(X))
                return
            parts[name]["X"].append(_finite(_numpy(X), name, "input"))
            if inputs_of is not None:
                raise _Stop
            Y = _output_rows(module, output, state["keep"], program[name] == "relu")
            parts[name]["Y"].append(_finite(_numpy(Y), name, "output"))

        return capture

    targets = [(n, m) for n, m in chosen if inputs_of is None or n == inputs_of]
    handles = [m.register_forward_hook(hook(n)) for n, m in targets]
    writer = StoreWriter(store) if store is not None else None
    training = model.training
    model.eval()
    try:
        with writer or contextlib.nullcontext(), torch.no_grad():
            totals = _store_totals(batches, mask) if writer is not None else None
            seen_batches = 0
            for seen_batches, batch in enumerate(batches, start=1):
                state["keep"], state["seen"] = _batch_mask(batch, mask, seen_batches - 1), set()
                with contextlib.suppress(_Stop):
                    _forward(model, batch, seen_batches - 1)
                if writer is not None:
                    _flush(writer, parts, chosen, totals, state["tokens"])
            if not seen_batches:
                raise ValueError("batches is empty: recording needs at least one batch")
            if writer is not None:
                _check_ran(chosen, order, inputs_of)
                meta = {n: {**_geometry(m), "activation": program[n]} for n, m in chosen}
                writer.finish({n: meta[n] for n in order})
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    return _recording(order, parts, gram, program, chosen, store, inputs_of)


def _forward(model, batch, index: int) -> None:
    """One recording forward pass; the model's own failure (a batch of the wrong shape or
    dtype, a NumPy array) reported as bad ``batches``, naming the batch."""
    try:
        _call(model, batch)
    except (ValueError, _Stop):
        raise
    except (RuntimeError, TypeError) as exc:
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        raise kind(f"batches[{index}]: the model's forward pass failed on it: {exc}") from exc


def _finite(rows: np.ndarray, name: str, what: str) -> np.ndarray:
    """``rows`` if every recorded value is finite, else a ValueError naming the module."""
    if not np.isfinite(rows).all():
        bad = int(rows.size - np.count_nonzero(np.isfinite(rows)))
        raise ValueError(
            f"module {name!r}: its recorded {what} has {bad} NaN or infinite value(s); "
            "the calibration batches (or the model's weights) must give finite activations"
        )
    return rows


def _check_ran(chosen, order, inputs_of) -> None:
    missing = [n for n, _ in chosen if n not in order and inputs_of in (None, n)]
    if missing:
        raise ValueError(f"modules {missing} never ran in the forward pass of the batches")


def _recording(order, parts, gram, program, chosen, store, inputs_of) -> Recording:
    _check_ran(chosen, order, inputs_of)
    info = {n: _geometry(m) for n, m in chosen}
    if store is not None:
        return open_store(store)
    rec = Recording(
        modules=tuple(order),
        activation={n: program[n] for n in order},
        info={n: info[n] for n in order},
        gram=gram,
    )
    if not gram:
        for name in order:
            rec.X[name] = np.concatenate(parts[name]["X"])
            if parts[name]["Y"]:
                rec.Y[name] = np.concatenate(parts[name]["Y"])
    return rec


def _store_totals(batches, mask) -> list[tuple[int, int]]:
    """Per batch ``(samples, kept tokens)``: the rows a store must preallocate."""
    totals = []
    for index, batch in enumerate(batches):
        keep = _batch_mask(batch, mask, index)
        n = _batch_size(batch)
        totals.append((n, int(keep.sum()) if keep is not None else -1))
    return totals


def _flush(writer: StoreWriter, parts, chosen, totals, tokens) -> None:
    """Write the rows buffered for a batch; after the first batch, allocate the arrays
    (kept tokens, or rows per sample times the samples, over every batch)."""
    samples = sum(n for n, _ in totals)
    kept = sum(t for _, t in totals)
    n0 = totals[0][0]
    for name, _ in chosen:
        for key in ("X", "Y"):
            rows = parts[name][key]
            if not rows:
                continue
            block = np.concatenate(rows)
            rows.clear()
            if not writer.allocated(name, key):
                if tokens[name] and kept < 0:
                    raise ValueError(
                        f"module {name!r} sees tokens: writing a store needs mask= (the "
                        "rows per batch are the kept tokens)"
                    )
                total = kept if tokens[name] else block.shape[0] // n0 * samples
                writer.allocate(name, key, (total, block.shape[1]), block.dtype)
            writer.write(name, key, block)


# ---------------------------------------------------------------------------------------
# pruning and writing back


def dense_weights(module) -> tuple[np.ndarray, np.ndarray | None]:
    """A module's ``(W, b)`` in nettrim's layout: ``W`` of shape ``(d_in, d_out)`` (the
    transpose of ``nn.Linear.weight``; a conv's :func:`~nettrim.conv.conv_weight_to_dense`)."""
    torch = _torch()
    weight = _numpy(module.weight)
    W = conv_weight_to_dense(weight) if isinstance(module, torch.nn.Conv2d) else weight.T.copy()
    return W, None if module.bias is None else _numpy(module.bias)


def write_back(module, W: np.ndarray, b: np.ndarray | None) -> None:
    """Write dense weights ``(W, b)`` into ``module`` in place (PyTorch layout; the
    parameters keep their dtype and device)."""
    torch = _torch()
    if isinstance(module, torch.nn.Conv2d):
        weight = dense_to_conv_weight(W, c_in=module.in_channels, kernel_size=module.kernel_size)
    else:
        weight = np.asarray(W).T
    if tuple(weight.shape) != tuple(module.weight.shape):
        raise ValueError(
            f"weights of shape {np.shape(W)} do not fit a module whose weight is "
            f"{tuple(module.weight.shape)}"
        )
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
        if module.bias is not None and b is not None:
            module.bias.copy_(torch.from_numpy(np.ascontiguousarray(b)))


#: Weight sparsity from which an ``nn.Linear`` multiplying through ``torch.sparse`` (CSR) is
#: faster than the dense one on the CPU: measured 1.4x at 90% and 2.7x at 95% on a 784x300
#: layer with 4096 samples and one thread (docs/torch.md, "Running the pruned model sparse").
SPARSE_LINEAR_MIN_SPARSITY = 0.9


def sparsify_linear(model, *, min_sparsity: float = SPARSE_LINEAR_MIN_SPARSITY) -> list[str]:
    """Run the pruned ``nn.Linear`` modules of ``model`` through ``torch.sparse``, in place.

    Every ``nn.Linear`` whose weight has at least a fraction ``min_sparsity`` of zeros is
    replaced by a module holding the weight in CSR and computing ``x W^T + b`` with
    ``torch.sparse.mm`` (the same outputs to float rounding; for inference: the CSR weight
    is a buffer, not a trainable parameter). Denser modules stay dense, where dense BLAS
    is faster. Returns the names of the replaced modules.
    """
    torch = _torch()
    min_sparsity = check_scalar("min_sparsity", min_sparsity, low=0.0, high=1.0)
    if type(model) is torch.nn.Linear:
        raise ValueError("model is itself an nn.Linear: wrap it (nn.Sequential) to replace it")
    replaced = []
    for name, module in list(model.named_modules()):
        if type(module) is not torch.nn.Linear:
            continue
        weight = module.weight.detach()
        zeros = 1.0 - int(torch.count_nonzero(weight)) / weight.numel()
        if zeros >= min_sparsity:
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, _sparse_linear_type()(module))
            replaced.append(name)
    return replaced


def _sparse_linear_type():
    """``SparseLinear``, defined on first use (it subclasses ``torch.nn.Module``)."""
    global _SPARSE_LINEAR
    if _SPARSE_LINEAR is None:
        torch = _torch()

        class SparseLinear(torch.nn.Module):
            """An ``nn.Linear`` whose weight is a CSR tensor: ``x W^T + b`` by
            ``torch.sparse.mm`` (leading dimensions of ``x`` kept)."""

            def __init__(self, linear):
                super().__init__()
                self.in_features, self.out_features = linear.in_features, linear.out_features
                with warnings.catch_warnings():  # torch's notice that CSR is "in beta"
                    warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
                    weight = linear.weight.detach().to_sparse_csr()
                self.register_buffer("weight", weight)
                bias = None if linear.bias is None else linear.bias.detach().clone()
                self.register_buffer("bias", bias)

            def forward(self, x):
                rows = x.reshape(-1, self.in_features)
                out = torch.sparse.mm(self.weight, rows.T).T
                if self.bias is not None:
                    out = out + self.bias
                return out.reshape(*x.shape[:-1], self.out_features)

            def extra_repr(self) -> str:
                nnz = self.weight.values().numel()
                return f"{self.in_features} -> {self.out_features}, {nnz} weights (CSR)"

        _SPARSE_LINEAR = SparseLinear
    return _SPARSE_LINEAR


_SPARSE_LINEAR = None


@dataclass(frozen=True)
class ModuleReport:
    """One pruned module's figures."""

    name: str
    kind: str
    shape: tuple[int, int]
    program: str
    nnz_before: int
    nnz: int
    status: str
    residual: float
    radius: float
    seconds: float
    solver: str = ""

    @property
    def removed(self) -> float:
        """Fraction of the module's weights that are zero after pruning."""
        return 1.0 - self.nnz / (self.shape[0] * self.shape[1])

    def cells(self) -> tuple[str, ...]:
        """The module's row of :meth:`PruneResult.summary`."""
        shape, removed = "x".join(map(str, self.shape)), f"{self.removed:.1%}"
        seconds = f"{self.seconds:.2f}"
        return (self.name, shape, self.program, removed, self.status, seconds, self.solver)


@dataclass(frozen=True, repr=False)
class PruneResult:
    """What :func:`prune_model` did: per-module figures and solver results, the masks.

    ``str(result)`` is :meth:`summary` (a table per module), ``.success`` whether every
    module's solve ended ``"optimal"``."""

    method: str
    scheme: str
    modules: tuple[ModuleReport, ...]
    results: dict[str, LayerResult]
    seconds: float

    @property
    def nnz(self) -> int:
        return sum(m.nnz for m in self.modules)

    @property
    def size(self) -> int:
        return sum(m.shape[0] * m.shape[1] for m in self.modules)

    @property
    def removed(self) -> float:
        """Fraction of all pruned modules' weights that are zero."""
        return 1.0 - self.nnz / self.size

    def masks(self, model) -> dict[str, Any]:
        """``{name: bool tensor}`` of the kept weights, in each module's weight layout
        (for ``torch.nn.utils.prune.custom_from_mask``)."""
        return {m.name: model.get_submodule(m.name).weight.detach() != 0 for m in self.modules}

    def apply_masks(self, model) -> None:
        """Attach the masks with ``torch.nn.utils.prune.custom_from_mask``, so fine-tuning
        keeps the pruned weights at zero."""
        _torch()
        from torch.nn.utils import prune

        for name, mask in self.masks(model).items():
            prune.custom_from_mask(model.get_submodule(name), "weight", mask)

    @property
    def success(self) -> bool:
        """Whether every module's solve ended ``"optimal"``."""
        return all(m.status == "optimal" for m in self.modules)

    def summary(self) -> str:
        """A per-module table: shape, program, weights removed, status, seconds, solver
        (``admm+rows`` for a program solved by row generation)."""
        width = max([28, *(len(m.name) for m in self.modules)])
        columns = (("module", width, "<"), ("shape", 10), ("prog", 5), ("removed", 8))
        columns += (("status", 10), ("s", 7), ("solver", 2, "<"))
        rows = [m.cells() for m in self.modules]
        headline = (
            f"{self.method} ({self.scheme}), {len(self.modules)} modules, "
            f"{self.removed:.1%} of {self.size} weights removed, {self.seconds:.2f} s"
        )
        return "\n".join([headline, *format_columns(columns, rows)])

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (
            f"PruneResult(method={self.method!r}, scheme={self.scheme!r}, "
            f"modules={len(self.modules)}, removed={self.removed:.3f}, seconds={self.seconds:.2f})"
        )


def prune_model(
    model,
    batches: Iterable,
    *,
    method: str = "net-trim",
    scheme: str = "parallel",
    eps: float | Mapping[str, float] = DEFAULT_EPS,
    sparsity: float | None = None,
    pattern: str = "unstructured",
    modules: Sequence[str] | None = None,
    programs: Mapping[str, str] | None = None,
    mask: str | Callable | None = None,
    gamma: float | Sequence[float] | Mapping[str, float] = DEFAULT_GAMMA,
    kappa: float = DEFAULT_KAPPA,
    cascade_bound: str = "relaxed",
    solver: str = "auto",
    executor=None,
    n_jobs: int | None = None,
    store_dir: str | os.PathLike | None = None,
    module_batches: Mapping[str, Iterable] | None = None,
    **options: Any,
) -> PruneResult:
    """Prune a PyTorch model's ``nn.Linear`` / ``nn.Conv2d`` modules in place.

    Parameters
    ----------
    model : torch.nn.Module
    batches : iterable
        Calibration batches (see :func:`record`); iterated once per module in the cascade
        scheme, so pass a list or a ``DataLoader``.
    method : {"net-trim", "admm", "iht", "sparsegpt", "wanda", "magnitude"}
        Net-Trim (:func:`~nettrim.trim_layer`: the sparsest weights within ``eps``) or an
        L0 method of :func:`~nettrim.prune_layer` (``sparsity`` / ``pattern``).
    scheme : {"parallel", "cascade"}
        ``"parallel"`` records once and solves every module as an independent job;
        ``"cascade"`` goes in forward order and re-records each module's input from the
        model with the earlier modules already pruned (Net-Trim's cascade budget, as
        :func:`~nettrim.net_trim`; for L0 methods SparseGPT's sequential driver).
    eps : float or dict
        Net-Trim: the relative budget (cascade: the first module's). Parallel: a dict
        ``{name: eps}`` naming every pruned module gives each its own.
    sparsity, pattern
        L0 methods: fraction removed, and ``"unstructured"``, ``"per_output"``, ``"N:M"``...
    modules, programs, mask
        As in :func:`record`.
    gamma, kappa, cascade_bound
        Net-Trim cascade budgets, as in :func:`~nettrim.net_trim`; ``gamma`` may be a dict
        ``{name: gamma}`` naming every module after the first one called.
    solver : str
        Net-Trim's layer solver (``"auto"``, ``"admm"``, ``"clarabel"``, ...).
    executor, n_jobs, store_dir
        Where the parallel jobs run, as in :func:`~nettrim.net_trim`.
    module_batches : dict, optional
        ``{name: batches}``: calibration batches of their own for some modules (e.g. fewer
        images for convolutions, whose every image gives hundreds of patch rows). Each
        module's program is built, and in the cascade re-recorded, on its own batches.
    **options
        Further :func:`~nettrim.trim_layer` (Net-Trim) or :func:`~nettrim.prune_layer`
        (L0) options, e.g. ``active_tol``, ``per_neuron``, ``damping``; and
        ``rows={"all", "generate"}`` (Net-Trim; default ``"all"``):
        Net-Trim: solve every program on all its rows, or (``"generate"``) the programs
        with at least 4 times ``(d_in + 1) * d_out`` rows (conv layers; ``docs/torch.md``
        gives the measurements) by row generation
        (:func:`nettrim.solvers.row_generation.solve_row_generation`: the ball reduced to
        ``d_in + 1`` rows per output, the inequalities off Omega added while violated;
        certified feasible on every row).

    Returns
    -------
    PruneResult
        Per-module figures, the solver results, masks for fine-tuning.
    """
    start = time.perf_counter()
    method = check_choice("method", method, METHODS)
    scheme = check_choice("scheme", scheme, SCHEMES)
    cascade_bound = check_choice("cascade_bound", cascade_bound, CASCADE_BOUNDS)
    _check_method_options(method, eps=eps, sparsity=sparsity, pattern=pattern, gamma=gamma,
                          kappa=kappa, cascade_bound=cascade_bound, solver=solver)  # fmt: skip
    check_cascade_only(scheme, gamma=gamma, kappa=kappa, cascade_bound=cascade_bound)
    if method == "net-trim":
        solver_options = {"solver": solver, **options}
    else:
        solver_options = {"sparsity": sparsity, "pattern": pattern, **options}
    check_stage_options(method, solver_options)  # a misspelled option costs no recording
    _check_batches(batches)
    if iter(batches) is batches:
        batches = list(batches)
    chosen = prunable_modules(model, modules)
    if method != "net-trim":  # an N:M pattern that a module's inputs do not fit
        shapes = {f"module {n!r}": (dense_weights(m)[0].shape, sparsity) for n, m in chosen}
        check_layer_budgets(pattern, shapes, options.get("k"))
    program, folds = find_programs(model, [n for n, _ in chosen], programs)
    fold_batchnorm(model, folds)
    named = dict(chosen)
    batches_of = _module_batches(chosen, batches, module_batches)
    first = next(iter(batches), None)
    if first is None:
        raise ValueError("batches is empty: recording needs at least one batch")
    _batch_mask(first, mask, 0)  # a mask key the batches lack, before any forward pass
    order = _call_order(model, first, chosen)
    original = _original_rows(model, chosen, order, batches_of, program, mask, method, scheme)
    stages = [Stage(n, *dense_weights(named[n]), program[n]) for n in order]
    eps = _in_order("eps", eps, order)
    gamma = _in_order("gamma", gamma, order[1:])
    before = {s.name: int(np.count_nonzero(s.W)) for s in stages}

    def reinput(i: int) -> np.ndarray:
        name = order[i]
        return _record(model, batches_of[name], [(name, named[name])], program, mask=mask,
                       inputs_of=name).X[name]  # fmt: skip

    def on_solved(i: int, result: LayerResult) -> None:
        write_back(named[order[i]], result.W, result.b)

    results, radii, _ = prune_stages(
        stages,
        lambda i: original[order[i]] if order[i] in original.X else (None, None),
        method=method,
        scheme=scheme,
        reinput=reinput,
        on_solved=on_solved,
        eps=eps,
        gamma=gamma,
        kappa=kappa,
        cascade_bound=cascade_bound,
        executor=executor,
        n_jobs=n_jobs,
        store_dir=store_dir,
        options=solver_options,
    )
    reports = tuple(
        ModuleReport(
            name=s.name,
            kind=_geometry(named[s.name])["kind"],
            shape=tuple(s.W.shape),
            program=r.program,
            nnz_before=before[s.name],
            nnz=r.nnz,
            status=r.status.value,
            residual=float(r.info.residual),
            radius=float("nan") if radius is None else float(np.linalg.norm(np.atleast_1d(radius))),
            seconds=float(r.info.seconds),
            solver=r.info.solver,
        )
        for s, r, radius in zip(stages, results, radii, strict=True)
    )  # fmt: skip
    return PruneResult(
        method=method,
        scheme=scheme,
        modules=reports,
        results={s.name: r for s, r in zip(stages, results, strict=True)},
        seconds=time.perf_counter() - start,
    )


def _original_rows(model, chosen, order, batches_of, program, mask, method, scheme):
    """The unpruned model's program rows that the scheme reads: every module's, except for
    an L0 cascade, which reads only the first module's (every later one is re-recorded,
    and its target is the original weights on that input, so holding all the modules'
    rows at once, e.g. a transformer's 36, would only cost memory)."""
    if scheme == "cascade" and method != "net-trim":
        chosen = [(n, m) for n, m in chosen if n == order[0]]
    original = Recording(modules=())
    for group in {id(batches_of[n]): batches_of[n] for n, _ in chosen}.values():
        members = [(n, m) for n, m in chosen if batches_of[n] is group]
        part = _record(model, group, members, program, mask=mask)
        original.X.update(part.X)
        original.Y.update(part.Y)
    return original


def _check_method_options(method: str, **given) -> None:
    """Refuse the budgets of the other kind of method (they would be ignored without a word):
    ``sparsity`` / ``pattern`` with Net-Trim, Net-Trim's with an L0 method."""
    if method == "net-trim":
        defaults = {"sparsity": None, "pattern": "unstructured"}
        hint = "Net-Trim prunes to a budget eps=; method='sparsegpt', 'admm', ... to a sparsity"
    else:
        if given["sparsity"] is None and ":" not in str(given["pattern"]):
            raise ValueError(f"method={method!r} needs sparsity= (or an N:M pattern)")
        defaults = {"eps": DEFAULT_EPS, "gamma": DEFAULT_GAMMA, "kappa": DEFAULT_KAPPA,
                    "cascade_bound": CASCADE_BOUNDS[0], "solver": "auto"}  # fmt: skip
        hint = "the L0 methods prune to sparsity= / pattern=; Net-Trim's budgets are not theirs"
    passed = [name for name, default in defaults.items() if not _is_default(given[name], default)]
    if passed:
        raise ValueError(f"{' and '.join(passed)} given with method={method!r}: {hint}")


def _is_default(value, default) -> bool:
    if isinstance(value, Mapping) or np.ndim(value):
        return False
    return value is default or (value is not None and default is not None and value == default)


def _check_batches(batches) -> None:
    """``batches`` an iterable of batches, not one batch (whose rows would be iterated)."""
    if isinstance(batches, (np.ndarray, _torch().Tensor)):
        raise TypeError(
            f"batches must be an iterable of batches (a list or a DataLoader), got one "
            f"{type(batches).__name__} of shape {tuple(batches.shape)}; pass [x] for a "
            "single batch"
        )


def _in_order(name: str, value, names: list[str]):
    """A ``{module: value}`` dict as a tuple in ``names``' order (anything else as given)."""
    if not isinstance(value, Mapping):
        return value
    if set(value) != set(names):
        missing, unknown = sorted(set(names) - set(value)), sorted(set(value) - set(names))
        raise ValueError(
            f"{name}: a dict must name exactly the modules {names}"
            + (f"; missing {missing}" if missing else "")
            + (f"; not among them {unknown}" if unknown else "")
        )
    return tuple(value[n] for n in names)


def _module_batches(chosen, batches, module_batches) -> dict[str, list]:
    """Each module's calibration batches (listed, so they can be iterated again)."""
    names = {n for n, _ in chosen}
    extra = dict(module_batches or {})
    unknown = sorted(set(extra) - names)
    if unknown:
        raise ValueError(f"module_batches: {unknown} are not among the pruned modules")
    lists = {id(batches): batches}
    out = {}
    for name, _ in chosen:
        group = extra.get(name, batches)
        if id(group) not in lists:
            lists[id(group)] = list(group)
        out[name] = lists[id(group)]
    return out


def _call_order(model, batch, chosen) -> list[str]:
    """The chosen modules in the order one forward pass calls them."""
    torch = _torch()
    order: list[str] = []
    handles = [m.register_forward_hook(lambda *_, n=n: order.append(n)) for n, m in chosen]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _forward(model, batch, 0)
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    return list(dict.fromkeys(order))


# ---------------------------------------------------------------------------------------
# network files: export to and import from the command line


def to_network(model, example) -> tuple[Network, list[str]]:
    """A ``nn.Sequential`` of ``Linear``, ``Conv2d``, ``ReLU``, ``MaxPool2d``
    (non-overlapping), ``Flatten``, ``Dropout`` and ``Identity`` as a :class:`Network`,
    with the names of its prunable modules in order. ``example`` is one input batch (it
    fixes the image size a convolution sees). A BatchNorm after a module is folded first.

    Raises
    ------
    ValueError
        For any other module or arrangement (the message names it); such models are
        pruned with :func:`prune_model` directly.
    """
    torch = _torch()
    nn = torch.nn
    if not isinstance(model, nn.Sequential):
        raise ValueError(
            f"to_network needs an nn.Sequential, got {type(model).__name__}; prune other "
            "models with prune_model"
        )
    _, folds = find_programs(model, [n for n, _ in prunable_modules(model)])
    fold_batchnorm(model, folds)
    x = torch.as_tensor(example)
    layers: list = []
    names: list[str] = []
    with torch.no_grad():
        for name, module in model.named_children():
            shape = tuple(x.shape[1:])
            if isinstance(module, (nn.Identity, nn.Dropout)):
                pass
            elif isinstance(module, nn.ReLU):
                if not layers or not layers[-1].prunable or layers[-1].activation == "relu":
                    raise ValueError(f"module {name!r}: a ReLU must follow a Linear or Conv2d")
                layers[-1] = _with_relu(layers[-1])
            elif isinstance(module, (nn.Linear, nn.Conv2d)):
                _check_supported(name, module)
                W, b = dense_weights(module)
                if isinstance(module, nn.Linear):
                    layers.append(DenseLayer(W, b, "linear"))
                else:
                    layers.append(Conv2dLayer(
                        W, b, shape, module.kernel_size, module.stride, _padding(module),
                        module.dilation, "linear",
                    ))  # fmt: skip
                names.append(name)
            elif isinstance(module, nn.MaxPool2d):
                layers.append(_maxpool(name, module))
            elif isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
                layers.append(FlattenLayer())
            else:
                raise ValueError(
                    f"module {name!r} ({type(module).__name__}) has no nettrim layer kind"
                )
            x = module(x)
    return Network(tuple(layers)), names


def _with_relu(layer):
    return dataclasses.replace(layer, activation="relu")


def _maxpool(name: str, module) -> MaxPool2dLayer:
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    kernel = pair(module.kernel_size)
    stride = pair(module.stride if module.stride is not None else module.kernel_size)
    if stride != kernel or pair(module.padding) != (0, 0) or pair(module.dilation) != (1, 1):
        raise ValueError(
            f"module {name!r}: only non-overlapping max-pooling (stride = kernel_size, no "
            "padding or dilation) has a nettrim layer (an overlapping one is not 1-Lipschitz)"
        )
    if module.ceil_mode:
        raise ValueError(f"module {name!r}: ceil_mode=True is not supported")
    return MaxPool2dLayer(kernel)


def export(model, batches: Iterable, directory: str | os.PathLike, *, mask=None) -> str:
    """Write a ``nn.Sequential`` model for the command line: ``directory/network.npz``
    (:func:`to_network`), ``directory/inputs.npy`` (the calibration inputs, concatenated)
    and the activation store ``directory/store`` of its prunable modules.

    Returns the network file's path. Prune it with ``nettrim prune network.npz --inputs
    inputs.npy --out pruned.npz`` and bring it back with :func:`load_pruned`.
    """
    torch = _torch()
    batches = list(batches)
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    inputs = torch.cat([torch.as_tensor(b) for b in batches])
    network, _ = to_network(model, inputs[:1])
    path = os.path.join(directory, "network.npz")
    network.save(path)
    array = _numpy(inputs)
    inputs_path = os.path.join(directory, "inputs.npy")
    write_atomically(inputs_path, lambda fh: np.save(fh, array, allow_pickle=False))
    record(model, batches, store=os.path.join(directory, "store"), mask=mask)
    return path


def load_pruned(model, path: str | os.PathLike) -> None:
    """Write a pruned network file (written by :func:`export` and pruned, e.g. by
    ``nettrim prune``) back into ``model``'s modules, in place.

    Raises
    ------
    ValueError
        When the file's layers do not match the model's modules (count, kinds, shapes).
    """
    network = Network.load(path)
    chosen = prunable_modules(model)
    layers = [network[l] for l in network.prunable]
    if len(layers) != len(chosen):
        raise ValueError(
            f"{os.fspath(path)} has {len(layers)} dense/conv layers but the model has "
            f"{len(chosen)} nn.Linear/nn.Conv2d modules"
        )
    for (name, module), layer in zip(chosen, layers, strict=True):
        W, _ = dense_weights(module)
        if W.shape != layer.W.shape:
            raise ValueError(
                f"{os.fspath(path)}: layer for module {name!r} has shape {layer.W.shape}, "
                f"the module {W.shape} (nettrim layout)"
            )
    for (_, module), layer in zip(chosen, layers, strict=True):
        write_back(module, layer.W, layer.b)


def load_state(model, path: str | os.PathLike) -> None:
    """Load a state dict file into ``model`` with ``torch.load(weights_only=True)`` (a
    file cannot run code)."""
    torch = _torch()
    model.load_state_dict(torch.load(os.fspath(path), map_location="cpu", weights_only=True))
