"""The Net-Trim guarantees, checked on a pruned network: the budgets, Proposition 1,
Theorems 1-3.

Notation (``docs/networks.md``): ``Y^(l)`` the original network's layer outputs on ``X``,
``Yhat^(l)`` the pruned network's, ``D_l = ||Yhat^(l) - Y^(l)||_F``,
``Omega_l = {Y^(l) > active_tol}``, ``Zhat_l`` the pruned layer's pre-activation on the layer's
input (the original input ``Y^(l-1)`` in the parallel scheme, the pruned ``Yhat^(l-1)`` in the
cascade), ``V_l`` the cascade's bound off Omega (:mod:`nettrim.budgets`; 0 in the parallel
scheme and for the first layer).

First, each layer's **budget** is checked: the pruned layer meets the budget claimed for it,
``||(Zhat_l - Y^(l))_Omega||_F <= radius_l`` and ``Zhat_l <= V_l`` off Omega, to a stated
feasibility tolerance (the rule of :mod:`nettrim.solvers.feasibility`; by default the one
each layer was solved to, recorded by the pruning). A layer outside its budget fails the
verification.

Then every bound is evaluated with *realized* per-layer figures:

* ``r_l = ||(Zhat_l - Y^(l))_Omega||_F`` (the realized residual; all entries for a linear layer),
* ``q_l = ||max(relu(max(V_l, Zhat_l)), Y^(l)) on Omega^c||_F`` (what the pruned output can
  differ by off Omega; ``||(V_l)_+ on Omega^c||`` when the bounds are met exactly and
  ``active_tol = 0``),
* ``e_l = sqrt(r_l^2 + q_l^2)`` bounds the layer's output discrepancy (Proposition 1, with the
  ReLU 1-Lipschitz), with no assumption.

Network level:

* parallel, any network: ``D_l <= e_l + ||What_l||_2 D_{l-1}`` (spectral norm, bias row
  excluded), chained from ``D_0 = 0``;
* Theorem 1 (parallel, link-normalized network): ``D_l <= sum_{j<=l} e_j``;
* cascade, any network: ``D_l <= e_l`` (there ``e_l`` is computed on the pruned input);
* Theorem 2 (cascade, link-normalized network): ``D_L <= e_1 sqrt(prod_{l>=2} gamma~_l)`` with
  ``gamma~_l = max(gamma_l, e_l^2 / ||(Yhat^(l-1) - Y^(l-1)) W_l||_F^2)`` — equal to ``gamma_l``
  whenever layer ``l`` meets its budget exactly.

The nominal forms (``eps_l`` in place of ``e_l``) are evaluated as the theorems state them,
with what they assume (link normalization, exact feasibility), and compared with the realized
discrepancy to the same feasibility tolerance as the budgets.

The bounds hold on the calibration inputs the network was pruned with (they are statements
about the programs' constraints); on held-out inputs they are not guaranteed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from .budgets import absolute_radius, cascade_budget
from .conv import patch_multiplicity
from .layer import LayerResult
from .network import Conv2dLayer, DenseLayer, MaxPool2dLayer, Network
from .schemes import CASCADE_BOUNDS, DEFAULT_GAMMA, DEFAULT_KAPPA, SCHEMES, NetTrimResult
from .solvers import AdmmSettings
from .solvers.exact import ZERO_RTOL
from .solvers.feasibility import EXACT_FEAS_TOL, allowed_residual, allowed_violation
from .validation import as_float_dtype, check_choice, check_network_inputs, check_scalar

#: Relative slack for comparing a realized value with a bound computed from the same
#: floating-point data (both are sums of the same products; 1e-9 covers their rounding).
BOUND_RTOL = 1e-9
#: Tolerance on ``||W~_l||_1 = 1`` for link normalization.
LINK_TOL = 1e-6
#: The feasibility tolerance for a pruned network that records none (a file not written by
#: ``nettrim prune``): the ADMM's default, the loosest of the solvers' defaults.
DEFAULT_FEAS_TOL = AdmmSettings().feas_tol
#: The key of :attr:`Network.metadata` under which the pruning is recorded.
PRUNING_KEY = "pruning"
#: Default ``mu`` of Theorem 3 (success probability ``1 - N^(1 - mu)``).
DEFAULT_MU = 2.0
#: Theorem 3's constants: ``P = (11 s + 7) mu log N``.
_T3_SLOPE, _T3_OFFSET = 11.0, 7.0


def theorem3_samples(s: int, N: int, *, mu: float = DEFAULT_MU) -> float:
    """Theorem 3's sample count ``P = (11 s + 7) mu log N``.

    With ``P`` Gaussian samples ``x_p ~ N(0, I_N)`` and ``y_p = relu(w*^T x_p)`` for an
    ``s``-sparse ``w*`` (no bias), ``w*`` is the unique solution of (P1) with ``eps = 0`` with
    probability at least ``1 - N^(1 - mu)``.

    Parameters
    ----------
    s : int
        Non-zeros of the neuron's weight vector, ``>= 0``.
    N : int
        Its input dimension, ``>= 2``.
    mu : float
        ``> 1``.

    Examples
    --------
    >>> round(theorem3_samples(5, 100, mu=2.0), 1)
    571.0
    """
    s = check_scalar("s", s, low=0, integer=True)
    N = check_scalar("N", N, low=2, integer=True)
    mu = check_scalar("mu", mu, low=1.0, low_inclusive=False)
    return (_T3_SLOPE * s + _T3_OFFSET) * mu * math.log(N)


@dataclass(frozen=True)
class LinkNormalized:
    """A link-normalized network and the scales that produced it.

    ``network`` computes ``output_scale * original(X)`` for ReLU/linear layers, so its
    predictions (arg-max) are the original's. ``scales[l]`` divided layer ``l``'s weights.
    """

    network: Network
    scales: tuple[float, ...]
    output_scale: float


def link_normalize(network: Network, *, include_bias: bool = True) -> LinkNormalized:
    """Rescale a ReLU network so that every layer has entry-wise ``||W~_l||_1 = 1``.

    By positive homogeneity (``relu(a z) = a relu(z)`` for ``a > 0``), dividing layer ``l``'s
    weights by ``a_l`` and its bias by ``s_{l-1} a_l`` (``s_l = a_1 ... a_l``) scales every
    later output by ``1 / s_l``; with ``a_l = ||W_l||_1 + ||b_l||_1 / s_{l-1}`` each layer
    becomes link-normalized. The last output is the original's divided by ``s_L``.

    Parameters
    ----------
    network : Network
        ReLU / linear layers.
    include_bias : bool
        Count the bias row in the norm (as when the bias is penalized, the default).

    Returns
    -------
    LinkNormalized
    """
    if not isinstance(network, Network):
        raise TypeError(f"network must be a nettrim.Network, got {type(network).__name__}")
    if not network.is_dense:
        raise ValueError(
            "link_normalize rescales dense ReLU/linear chains; this network has convolutions "
            "or pooling (verify bounds it through each layer's Lipschitz constant instead)"
        )
    scale = 1.0
    layers, scales = [], []
    for l, layer in enumerate(network.layers):
        W = np.asarray(layer.W, dtype=np.float64)
        b = None if layer.b is None else np.asarray(layer.b, dtype=np.float64)
        norm = float(np.abs(W).sum())
        if include_bias and b is not None:
            norm += float(np.abs(b).sum()) / scale
        if not norm > 0:
            raise ValueError(f"layer {l} has all-zero weights; it cannot be link-normalized")
        dtype = np.asarray(layer.W).dtype
        new_b = None if b is None else (b / (scale * norm)).astype(dtype)
        layers.append(DenseLayer((W / norm).astype(dtype), new_b, layer.activation))
        scales.append(norm)
        scale *= norm
    return LinkNormalized(Network(tuple(layers)), tuple(scales), 1.0 / scale)


def link_norms(network: Network, *, include_bias: bool = True) -> tuple[float, ...]:
    """Entry-wise ``||W~_l||_1`` of every layer with weights (dense and conv)."""
    return tuple(
        float(np.abs(layer.augmented_weights if include_bias else layer.W).sum())
        for layer in (network[l] for l in network.prunable)
    )


# ---------------------------------------------------------------------------------------
# the record of a pruning: what verify judges a pruned network file against


def solved_tolerance(layer: LayerResult, options: Mapping[str, Any]) -> tuple[float, float | None]:
    """``(feas_tol, zero_rtol)``: the feasibility tolerance a layer's weights were solved to,
    and (exact path) the fraction of the largest weight below which its entries were
    rounded to zero before measuring (``None`` for the ADMM)."""
    backend = layer.info.solver.split("+")[0]  # "clarabel+reweighted": Clarabel's rounds
    if backend == "admm":
        settings = options.get("solver_options") or {}
        return float(settings.get("feas_tol", DEFAULT_FEAS_TOL)), None
    tol = options.get("tol")
    feas_tol = EXACT_FEAS_TOL if tol is None else max(EXACT_FEAS_TOL, float(tol))
    return feas_tol, ZERO_RTOL.get(backend)


def pruning_record(result: NetTrimResult) -> dict[str, Any]:
    """What a pruning claims and how it was solved, as plain JSON data.

    ``scheme``, ``eps`` (per layer in the parallel scheme, the first layer's in the cascade),
    ``per_neuron``, ``gamma``, ``kappa``, ``cascade_bound``, ``active_tol``, and per layer
    the ``solver``, ``status``, ``feas_tol`` and ``zero_rtol`` of
    :func:`solved_tolerance`. ``nettrim prune`` stores it in the network file
    (:func:`with_pruning_record`), so that ``nettrim verify`` judges the file alone.
    """
    if not isinstance(result, NetTrimResult):
        raise TypeError(f"result must be a NetTrimResult, got {type(result).__name__}")

    def plain(e):
        return np.asarray(e, dtype=np.float64).tolist() if np.ndim(e) else float(e)

    layers = []
    for res in result.layers:
        feas_tol, zero_rtol = solved_tolerance(res, result.options)
        layers.append(
            {
                "solver": res.info.solver,
                "status": res.status.value,
                "feas_tol": feas_tol,
                "zero_rtol": zero_rtol,
            }
        )
    eps = [plain(e) for e in result.eps] if result.scheme == "parallel" else plain(result.eps[0])
    return {
        "scheme": result.scheme,
        "eps": eps,
        "per_neuron": bool(result.per_neuron),
        "gamma": [float(g) for g in result.gamma],
        "kappa": float(result.kappa),
        "cascade_bound": result.options.get("cascade_bound", CASCADE_BOUNDS[0]),
        "active_tol": float(result.options.get("active_tol", 0.0)),
        "layers": layers,
    }


def with_pruning_record(result: NetTrimResult) -> Network:
    """``result.network`` with :func:`pruning_record` in its metadata (saved with the file)."""
    metadata = {**result.network.metadata, PRUNING_KEY: pruning_record(result)}
    return replace(result.network, metadata=metadata)


# ---------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class Check:
    """One bound compared with the realized value, and the assumption it rests on.

    ``allowed`` is what ``realized`` was compared with when the comparison allows a
    feasibility ``tolerance`` (the bound widened by the rule of
    :mod:`nettrim.solvers.feasibility`); ``nan`` when only rounding is allowed.
    """

    name: str
    assumption: str
    assumption_holds: bool
    bound: float
    realized: float
    holds: bool
    note: str = ""
    allowed: float = math.nan
    tolerance: float = math.nan

    @property
    def applicable(self) -> bool:
        return self.assumption_holds

    @property
    def within_tolerance(self) -> bool:
        """Holds only thanks to the tolerance: above the bound, within what is allowed."""
        return self.holds and self.realized > self.bound * (1 + BOUND_RTOL)

    def summary(self) -> str:
        verdict = "holds" if self.holds else "FAILS"
        if self.within_tolerance or (not self.holds and math.isfinite(self.allowed)):
            verdict += (
                f" {'within' if self.holds else 'beyond'} tolerance (allowed "
                f"{self.allowed:.6g} at feasibility tolerance {self.tolerance:g})"
            )
        if not self.assumption_holds:
            verdict = f"not applicable ({verdict} numerically)"
        text = (
            f"{self.name}: realized {self.realized:.6g} <= bound {self.bound:.6g}: "
            f"{verdict}; assumes {self.assumption}: "
            f"{'yes' if self.assumption_holds else 'no'}"
        )
        return text + (f" ({self.note})" if self.note else "")

    __str__ = summary

    def line(self) -> str:
        """Deprecated alias of :meth:`summary`."""
        warnings.warn("Check.line() is deprecated; use summary()", DeprecationWarning, 2)
        return self.summary()


@dataclass(frozen=True)
class LayerReport:
    """Figures of one layer with weights (dense or conv) on the calibration inputs.

    ``layer`` is the layer's position in the network (pooling and flattening count);
    every figure is measured on the rows of the layer's dense program (a convolution's
    patch rows, :meth:`~nettrim.network.Conv2dLayer.program_input`). ``discrepancy`` is
    the layer's output discrepancy on its scheme input (in the cascade it is the
    network's ``D_l``); ``residual`` is ``r_l``, ``off_support`` is ``q_l``,
    ``realized_bound`` is ``e_l``; ``radius`` the claimed absolute budget (``nan`` unknown;
    the norm of the per-column radii in per-neuron mode) and ``allowed_residual`` the
    residual the tolerance ``feas_tol`` allows; ``violation`` the largest ``Zhat - V`` off
    Omega and ``allowed_violation`` its allowance; ``feasible`` whether the layer meets its
    budget to ``feas_tol`` (``None`` when no budget is known), ``exact`` whether it meets it
    without the tolerance (every column's ball, no violation). ``spectral_norm`` is the
    pruned dense weights' ``||What||_2``; ``lipschitz`` the pruned layer's Lipschitz
    constant on its input, which chains the bounds: ``||What||_2`` for a dense layer,
    ``sqrt(m) ||What||_2`` for a convolution (``docs/verify.md``).
    """

    layer: int
    shape: tuple[int, int]
    nnz: int
    discrepancy: float
    residual: float
    off_support: float
    realized_bound: float
    radius: float
    feasible: bool | None
    violation: float
    spectral_norm: float
    theorem3_samples: float
    samples: int
    allowed_residual: float = math.nan
    allowed_violation: float = math.nan
    feas_tol: float = math.nan
    exact: bool | None = None
    lipschitz: float = math.nan

    @property
    def budget(self) -> str:
        """``"met"``, ``"within tol"`` (met only thanks to the tolerance), ``"FAILS"``, ``"?"``."""
        if self.feasible is None:
            return "?"
        if not self.feasible:
            return "FAILS"
        return "met" if self.exact else "within tol"


@dataclass(frozen=True)
class VerificationReport:
    """What :func:`verify` measured and which guarantees hold.

    ``network_discrepancy[l]`` is ``D_{l+1} = ||Yhat^(l+1) - Y^(l+1)||_F``; ``success`` is
    true when every layer meets its budget and every check whose assumption holds also
    holds; ``tolerance`` says which feasibility tolerance judged the budgets, and why.
    """

    scheme: str
    layers: tuple[LayerReport, ...]
    network_discrepancy: tuple[float, ...]
    relative_discrepancy: float
    link_normalized: bool
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    tolerance: str = ""

    @property
    def success(self) -> bool:
        return all(check.holds for check in self.checks if check.assumption_holds)

    @property
    def ok(self) -> bool:
        """Deprecated alias of :attr:`success`."""
        warnings.warn("VerificationReport.ok is deprecated; use .success", DeprecationWarning, 2)
        return self.success

    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.assumption_holds and not c.holds)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["success"] = self.success
        out["layers"] = [
            {**row, "budget": rep.budget}
            for row, rep in zip(out["layers"], self.layers, strict=True)
        ]
        return out

    def summary(self) -> str:
        """The verdict, the per-layer table, every check and the notes."""
        lines = [
            f"verify ({self.scheme} scheme): D_L = {self.network_discrepancy[-1]:.6g} "
            f"(relative {self.relative_discrepancy:.4g}); "
            f"link-normalized: {'yes' if self.link_normalized else 'no'}; "
            f"{'OK' if self.success else 'FAILED'}",
            f"budgets judged at feasibility tolerance {self.tolerance}",
            f"{'layer':>5} {'shape':>9} {'nnz':>7} {'discrep.':>10} {'e_l':>10} "
            f"{'residual':>10} {'radius':>10} {'violation':>9} {'budget':>10} {'tol':>7} "
            f"{'||W||_2':>8} {'T3 P':>8} {'n':>6}" + (f" {'Lip':>8}" if self._convolutions else ""),
        ]
        for rep in self.layers:
            lines.append(
                f"{rep.layer:>5} {rep.shape[0]:>4}x{rep.shape[1]:<4} {rep.nnz:>7} "
                f"{rep.discrepancy:>10.4g} {rep.realized_bound:>10.4g} {rep.residual:>10.4g} "
                f"{rep.radius:>10.4g} {rep.violation:>9.2g} {rep.budget:>10} "
                f"{rep.feas_tol:>7.2g} {rep.spectral_norm:>8.3g} "
                f"{rep.theorem3_samples:>8.0f} {rep.samples:>6}"
                + (f" {rep.lipschitz:>8.3g}" if self._convolutions else "")
            )
        lines.append(
            "budget: residual <= radius and violation <= 0 ('met'), or within the allowance "
            "of the tolerance tol ('within tol': residual <= radius + max(tol radius, "
            "tol^2 ||Y_Omega||), violation <= tol max|Y|)"
        )
        lines += [check.summary() for check in self.checks]
        lines += list(self.notes)
        failed = self.failed()
        if failed:
            lines.append(f"FAILED, {len(failed)} checks: " + "; ".join(c.name for c in failed))
        return "\n".join(lines)

    __str__ = summary

    @property
    def _convolutions(self) -> bool:
        """Whether some layer's Lipschitz constant is not its ``||What||_2`` (a convolution
        whose pixels feed several patches): the table then shows both."""
        return any(
            not math.isclose(rep.lipschitz, rep.spectral_norm, rel_tol=1e-6)
            for rep in self.layers
            if math.isfinite(rep.lipschitz)
        )


# ---------------------------------------------------------------------------------------
# verify


@dataclass(frozen=True)
class _Claims:
    """What the pruned network is claimed to meet: the scheme and its budgets (``eps``
    ``None`` when unknown) and the tolerance per layer (``tols``) with its ``source``."""

    scheme: str
    eps: list | None
    per_neuron: bool
    gammas: tuple[float, ...]
    kappa: float
    cascade_bound: str
    active_tol: float
    tols: tuple[float, ...]
    source: str


def _only_hidden_widths_differ(original: Network, pruned: Network) -> bool:
    """Whether ``pruned`` looks shrunk from ``original``: same depth, inputs and outputs."""
    a, b = original.dims, pruned.dims
    return len(a) == len(b) and a[0] == b[0] and a[-1] == b[-1] and a != b


def _geometry(layer) -> tuple:
    """A layer's kind and the shape of what it computes (its weights left out)."""
    if isinstance(layer, Conv2dLayer):
        return ("conv2d", layer.in_shape, layer.kernel_size, layer.stride, layer.padding,
                layer.dilation)  # fmt: skip
    if isinstance(layer, MaxPool2dLayer):
        return ("maxpool2d", layer.kernel_size)
    return (type(layer).__name__,)


def _same_structure(a: Network, b: Network) -> bool:
    return len(a) == len(b) and all(
        _geometry(x) == _geometry(y) for x, y in zip(a.layers, b.layers, strict=True)
    )


def _kinds(network: Network) -> str:
    return "-".join(type(layer).__name__.removesuffix("Layer") for layer in network.layers)


def _chain_notes(net_hat: Network) -> list[str]:
    """How the bounds chain through a network with convolutions or pooling."""
    if net_hat.is_dense:
        return []
    convs = [
        f"layer {l}: m = "
        f"{patch_multiplicity(layer.kernel_size, stride=layer.stride, dilation=layer.dilation)}"
        for l, layer in enumerate(net_hat.layers)
        if isinstance(layer, Conv2dLayer)
    ]
    return [
        "bounds chained through each layer's Lipschitz constant (column 'Lip'): "
        "sqrt(m) ||What||_2 for a convolution, m the most patches one input pixel falls in ("
        + ", ".join(convs)
        + "); non-overlapping max-pooling and flattening are 1-Lipschitz; Theorems 1-2 are "
        "stated for dense chains and not applied (docs/verify.md)"
    ]


def verify(
    original: Network,
    pruned: Network | NetTrimResult,
    X,
    *,
    scheme: str | None = None,
    eps: float | list | None = None,
    gamma: float | list | None = None,
    kappa: float | None = None,
    cascade_bound: str | None = None,
    active_tol: float | None = None,
    per_neuron: bool | None = None,
    mu: float = DEFAULT_MU,
    rtol: float = BOUND_RTOL,
    feas_tol: float | None = None,
    allow_loose_tol: bool = False,
    link_tol: float = LINK_TOL,
) -> VerificationReport:
    """Check each layer's budget, Proposition 1 and Theorems 1-2 (and the bounds for any
    network) on ``X``.

    Parameters
    ----------
    original : Network
        The network before pruning.
    pruned : Network or NetTrimResult
        The pruned network. A :class:`~nettrim.schemes.NetTrimResult`, or a Network read
        from a file written by ``nettrim prune`` (:func:`with_pruning_record`), also supplies
        the scheme, the budgets and the tolerance each layer was solved to; the options
        below override them (a claim to check).
    X : array-like of shape (n, d_0), or (n, c, h, w) for a network with convolutions
        The calibration inputs the network was pruned with (the guarantees are about them).
        With convolutions and pooling every layer with weights is checked on its dense
        program's rows and the bounds chain through each layer's ``lipschitz()``
        (``docs/verify.md``); Theorems 1-2, stated for dense chains, are not applied.
    scheme : {"parallel", "cascade"}, optional
        ``"parallel"`` when neither given nor recorded; must agree with the record.
    eps : float or list, optional
        The claimed relative budgets: one per layer or one for all (parallel), the first
        layer's (cascade); entries may be arrays of one per neuron with ``per_neuron``.
        Without them (and without a record) only the realized bounds are checked.
    gamma, kappa, cascade_bound : optional
        The cascade's factors and its bound off Omega (the record's, else net_trim's
        defaults).
    active_tol : float, optional
        Omega is ``Y > active_tol`` (the record's, else 0).
    per_neuron : bool, optional
        Budgets per output neuron (the record's, else ``False``).
    mu : float
        Theorem 3's ``mu`` for the per-layer sample counts.
    rtol : float
        Relative slack for realized-vs-bound comparisons (rounding only).
    feas_tol : float, optional
        The feasibility tolerance of the budget checks (and of the nominal bounds). Default:
        each layer's recorded tolerance, else ``DEFAULT_FEAS_TOL``. A tighter one may always
        be given; one looser than recorded raises ``ValueError`` unless ``allow_loose_tol``.
    allow_loose_tol : bool
        Accept a ``feas_tol`` looser than the recorded one (the report says so).
    link_tol : float
        Tolerance on ``||W~_l||_1 = 1``.

    Returns
    -------
    VerificationReport
    """
    if not isinstance(original, Network):
        raise TypeError(f"original must be a nettrim.Network, got {type(original).__name__}")
    result = pruned if isinstance(pruned, NetTrimResult) else None
    net_hat = result.network if result is not None else pruned
    if not isinstance(net_hat, Network):
        raise TypeError(
            f"pruned must be a nettrim.Network or a NetTrimResult, got {type(pruned).__name__}"
        )
    if not _same_structure(original, net_hat):
        raise ValueError(
            "pruned and original have different layers (kinds or convolution/pooling "
            f"geometry): {_kinds(net_hat)} vs {_kinds(original)}; they must match"
        )
    if original.dims != net_hat.dims or original.activations != net_hat.activations:
        raise ValueError(
            f"pruned has dims {net_hat.dims} and activations "
            f"{net_hat.activations} but original has {original.dims} and "
            f"{original.activations}; they must match"
            + (
                " (the same inputs and outputs but narrower hidden layers: a network "
                "nettrim.shrink removed neurons from is no longer layer-for-layer comparable; "
                "verify the masked network before shrinking, whose outputs shrink keeps)"
                if _only_hidden_widths_differ(original, net_hat)
                else ""
            )
        )
    record = pruning_record(result) if result is not None else net_hat.metadata.get(PRUNING_KEY)
    claims = _claims(
        len(original.prunable),
        record,
        dict(
            scheme=scheme,
            eps=eps,
            gamma=gamma,
            kappa=kappa,
            cascade_bound=cascade_bound,
            active_tol=active_tol,
            per_neuron=per_neuron,
        ),
        feas_tol,
        allow_loose_tol,
    )
    X = check_network_inputs(original, X, as_float_dtype(X))
    mu = check_scalar("mu", mu, low=1.0, low_inclusive=False)
    figures = _measure(original, net_hat, X, claims, mu)
    figures.normalized = all(abs(c - 1.0) <= link_tol for c in figures.norms)
    figures.pruned_within = all(c <= 1.0 + link_tol for c in link_norms(net_hat))
    checks = [c for build in _CHECKS[claims.scheme] for c in build(figures, rtol)]
    notes = [
        *_chain_notes(net_hat),
        "Theorem 3 (sample complexity) assumes Gaussian inputs, no bias and eps = 0; it is "
        "not checked from data: column 'T3 P' is (11 s + 7) mu log N for the densest pruned "
        f"neuron (mu = {mu}), column 'n' the samples used.",
    ]
    if claims.eps is None:
        notes.append("no eps given or recorded: only the realized bounds are checked")
    y_norm = float(np.linalg.norm(figures.Y[-1]))
    return VerificationReport(
        scheme=claims.scheme,
        layers=tuple(figures.layers),
        network_discrepancy=tuple(figures.D),
        relative_discrepancy=figures.D[-1] / y_norm if y_norm > 0 else float("nan"),
        link_normalized=figures.normalized,
        checks=tuple(checks),
        notes=tuple(notes),
        tolerance=claims.source,
    )


def _claims(n_layers: int, record, given: dict, feas_tol, allow_loose_tol: bool) -> _Claims:
    """The claims to check: ``given`` (verify's options, ``None`` where not given) over the
    ``record`` of the pruning, over the defaults; the tolerance per layer."""
    record = dict(record or {})
    if given["scheme"] is not None and record.get("scheme", given["scheme"]) != given["scheme"]:
        raise ValueError(
            f"scheme={given['scheme']!r} but the network was pruned with {record['scheme']!r}"
        )

    def pick(key, default):
        value = given[key]
        return record.get(key, default) if value is None else value

    scheme = check_choice("scheme", pick("scheme", "parallel"), SCHEMES)
    cascade_only = [k for k in ("gamma", "kappa", "cascade_bound") if given[k] is not None]
    if scheme == "parallel" and cascade_only:
        raise ValueError(
            f"{', '.join(cascade_only)} apply to scheme='cascade' only; the scheme checked "
            "is 'parallel'"
        )
    per_neuron = bool(pick("per_neuron", False))
    eps = _eps_list(pick("eps", None), scheme, n_layers, per_neuron)
    gammas: tuple[float, ...] = ()
    if scheme == "cascade":
        g = pick("gamma", DEFAULT_GAMMA)
        gammas = tuple(
            check_scalar("gamma", v, low=1.0)
            for v in ([g] * (n_layers - 1) if np.ndim(g) == 0 else g)
        )
        if len(gammas) != n_layers - 1:
            raise ValueError(f"gamma has {len(gammas)} values; give one, or {n_layers - 1}")
    kappa = check_scalar("kappa", pick("kappa", DEFAULT_KAPPA), low=0.0, low_inclusive=False)
    bound = check_choice("cascade_bound", pick("cascade_bound", CASCADE_BOUNDS[0]), CASCADE_BOUNDS)
    active_tol = check_scalar("active_tol", pick("active_tol", 0.0), low=0.0)
    tols, source = _tolerances(n_layers, record.get("layers"), feas_tol, allow_loose_tol)
    return _Claims(scheme, eps, per_neuron, gammas, kappa, bound, active_tol, tols, source)


def _eps_list(eps, scheme: str, n_layers: int, per_neuron: bool) -> list | None:
    """Per layer (parallel: a list gives one per layer, one value serves all) or the first
    layer's alone (cascade); a value is a scalar or one entry per neuron."""
    if eps is None:
        return None

    def one(name, e):
        if np.ndim(e) == 0:
            return check_scalar(name, e, low=0.0)
        e = np.asarray(e, dtype=np.float64)
        if e.ndim != 1 or not np.isfinite(e).all() or (e < 0).any():
            raise ValueError(f"{name} must be a number or one finite value >= 0 per neuron")
        return e

    if scheme == "cascade":
        if np.ndim(eps) and not per_neuron:
            raise ValueError(
                "scheme='cascade' takes one eps (the first layer's; one per neuron with "
                "per_neuron=True); gamma sets the later layers' budgets"
            )
        return [one("eps", eps)]
    if isinstance(eps, (list, tuple)):
        if len(eps) != n_layers:
            raise ValueError(f"eps has {len(eps)} values; the network has {n_layers} layers")
        return [one(f"eps[{l}]", e) for l, e in enumerate(eps)]
    return [one("eps", eps)] * n_layers


def _tolerances(n_layers: int, layers, feas_tol, allow_loose_tol: bool):
    """The feasibility tolerance per layer and a sentence on where it comes from."""
    recorded = [float(layer["feas_tol"]) for layer in layers] if layers else None
    if recorded is not None and len(recorded) != n_layers:
        raise ValueError(f"the record has {len(recorded)} layers; the network has {n_layers}")
    base = recorded or [DEFAULT_FEAS_TOL] * n_layers
    origin = "recorded with the pruning" if recorded else "default: none recorded"
    zero = sorted({layer["zero_rtol"] for layer in layers or () if layer.get("zero_rtol")})
    rounding = (
        f"; exact solves rounded weights below {', '.join(f'{z:g}' for z in zero)} of their "
        "layer's largest to zero before they were measured"
        if zero
        else ""
    )
    if feas_tol is None:
        return tuple(base), f"{_tols_text(base)} ({origin}){rounding}"
    feas_tol = check_scalar("feas_tol", feas_tol, low=0.0)
    loose = [l for l, b in enumerate(base) if feas_tol > b]
    if loose and not allow_loose_tol:
        raise ValueError(
            f"feas_tol={feas_tol:g} is looser than the tolerance layer {loose[0]} was solved "
            f"to ({base[loose[0]]:g}, {origin}); a looser judgement must be asked for "
            "(allow_loose_tol=True, --allow-loose-tol)"
        )
    text = f"{feas_tol:g} (given; {_tols_text(base)} {origin})"
    if loose:
        text = f"{feas_tol:g} (given, LOOSER than the {_tols_text(base)} {origin}, as asked)"
    return (feas_tol,) * n_layers, text + rounding


def _tols_text(tols) -> str:
    values = sorted(set(tols))
    return f"{values[0]:g}" if len(values) == 1 else "/".join(f"{t:g}" for t in values)


@dataclass
class _Figures:
    """What :func:`verify` measured, which the check builders compare with the bounds.

    ``D[l]`` is the network discrepancy after layer ``l``; ``radii`` the claimed absolute
    budgets (``None`` where unknown); ``off_nominal[l]`` is ``||(V_l)_+ on Omega^c||``;
    ``gamma_eff`` the cascade's realized ``gamma~_l``; ``norms`` the original's link norms,
    ``normalized`` whether they are all 1, ``pruned_within`` whether the pruned network's
    are at most 1; ``target_norms[l]`` is ``||Y^(l)||_F``; ``lipschitz[l]`` the pruned
    network's layer ``l``'s Lipschitz constant, ``dense`` whether every layer is dense.
    ``layers``, ``radii``, ``off_nominal``, ``relu`` and the verdicts have one entry per
    weighted layer, ``D`` and ``lipschitz`` one per layer.
    """

    claims: _Claims
    Y: list[np.ndarray]
    layers: list[LayerReport]
    D: list[float]
    radii: list[Any]
    off_nominal: list[float]
    gamma_eff: list[float]
    target_norms: list[float]
    norms: tuple[float, ...]
    lipschitz: list[float] = field(default_factory=list)
    dense: bool = True
    normalized: bool = False
    pruned_within: bool = False
    relu: list[bool] = field(default_factory=list)
    ball_ok: list[bool | None] = field(default_factory=list)
    bounds_ok: list[bool | None] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return all(r is not None for r in self.radii)

    @property
    def tol(self) -> float:
        return max(self.claims.tols)


def _measure(original: Network, net_hat: Network, X: np.ndarray, claims: _Claims, mu: float):
    """Every layer's figures on ``X`` (:class:`_Figures`, link normalization left to set),
    each weighted layer's on the rows of its dense program."""
    Y = original.record(X)
    Y_hat = net_hat.record(X)
    fig = _Figures(
        claims=claims,
        Y=Y,
        layers=[],
        D=[_distance(Y_hat[l + 1], Y[l + 1]) for l in range(len(original))],
        radii=[],
        off_nominal=[],
        gamma_eff=[],
        target_norms=[],
        norms=link_norms(original),
        lipschitz=[layer.lipschitz() for layer in net_hat.layers],
        dense=original.is_dense,
    )
    positions = original.prunable
    for i, l in enumerate(positions):
        layer = original[l]
        program = _program(layer)
        inp = layer.program_input(Y[l] if claims.scheme == "parallel" else Y_hat[l])
        out = layer.program_output(Y[l + 1])
        radius, upper = _budget(program, i, len(positions), inp, out, claims)
        _measure_layer(fig, l, program, net_hat[l], inp, out, radius, upper, mu)
        if claims.scheme == "cascade" and i > 0:
            e = fig.layers[-1].realized_bound
            base = float(np.linalg.norm((inp - layer.program_input(Y[l])) @ layer.W))
            g = claims.gammas[i - 1]
            fig.gamma_eff.append(max(g, e**2 / base**2) if base > 0 else (g if e == 0 else np.inf))
    return fig


def _distance(A: np.ndarray, B: np.ndarray) -> float:
    """``||A - B||_F`` in float64, as every layer's figures are (:func:`_measure_layer`): a
    norm of float32 arrays accumulates in float32, and ``D_L`` would then exceed the
    ``e_L`` it equals by float32 rounding (seen: 3e-8 relative, 30 times ``BOUND_RTOL``)."""
    return float(np.linalg.norm(np.asarray(A, np.float64) - np.asarray(B, np.float64)))


def _program(layer) -> DenseLayer:
    """A weighted layer's dense program (a dense layer is its own)."""
    if isinstance(layer, DenseLayer):
        return layer
    return DenseLayer(layer.W, layer.b, layer.activation)


def _budget(layer: DenseLayer, i: int, n_layers: int, inp, out, claims: _Claims):
    """The ``i``-th weighted layer's claimed absolute radius (``None`` without a claim) and
    its bound ``V`` off Omega (``None``: 0), by the rule of :mod:`nettrim.budgets`."""
    if claims.eps is None:
        return None, None
    if claims.scheme == "parallel" or i == 0:
        return absolute_radius(
            out, claims.eps[i if claims.scheme == "parallel" else 0], claims.per_neuron
        ), None
    return cascade_budget(
        layer,
        inp,
        out,
        gamma=claims.gammas[i - 1],
        kappa=claims.kappa if i == n_layers - 1 else 1.0,
        per_neuron=claims.per_neuron,
        active_tol=claims.active_tol,
        cascade_bound=claims.cascade_bound,
    )


def _measure_layer(fig: _Figures, l: int, layer, network_hat, inp, out, radius, upper, mu):
    """Append layer ``l``'s figures to ``fig``: its report, budget verdicts and bounds;
    ``layer`` is the original's dense program, ``inp`` and ``out`` its rows."""
    claims, layer_hat = fig.claims, _program(network_hat)
    # every figure in float64 from one product: norms of float32 arrays accumulate in
    # float32, in an order that depends on the CPU's kernels, and a realized value and its
    # bound (BOUND_RTOL apart at most) would then differ by float32 rounding
    Z_hat = np.asarray(layer_hat.preactivation(inp), dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    Y_hat = np.maximum(Z_hat, 0.0) if layer.activation == "relu" else Z_hat
    if layer.activation == "relu":
        omega = out > claims.active_tol
        R = np.where(omega, Z_hat - out, 0.0)
        V = np.zeros_like(Z_hat) if upper is None else upper
        reach = np.maximum(np.maximum(np.maximum(V, Z_hat), 0.0), out)
        q = float(np.linalg.norm(np.where(omega, 0.0, reach)))
        violation = float(np.max(np.where(omega, -np.inf, Z_hat - V), initial=0.0))
        off = float(np.linalg.norm(np.where(omega, 0.0, np.maximum(np.maximum(V, 0.0), out))))
        targets = np.where(omega, out, 0.0)
    else:
        R, q, violation, off, targets = Z_hat - out, 0.0, 0.0, 0.0, out
    r = float(np.linalg.norm(R))
    tol = claims.tols[len(fig.layers)]
    ball_ok = bounds_ok = exact = None
    allowed_r = allowed_v = math.nan
    if radius is not None:
        per_column = np.ndim(radius) == 1
        scale = np.linalg.norm(targets, axis=0) if per_column else float(np.linalg.norm(targets))
        allowed = allowed_residual(radius, scale, tol)
        measured = np.linalg.norm(R, axis=0) if per_column else r
        ball_ok = bool(np.all(measured <= allowed))
        exact = bool(np.all(measured <= radius * (1 + BOUND_RTOL))) and violation <= 0
        allowed_r = float(np.linalg.norm(np.atleast_1d(allowed)))
        allowed_v = allowed_violation(float(np.abs(targets).max(initial=0.0)), tol)
        bounds_ok = violation <= allowed_v
    col_nnz = np.count_nonzero(layer_hat.W, axis=0)
    fig.layers.append(
        LayerReport(
            layer=l,
            shape=layer.shape,
            nnz=layer_hat.nnz,
            discrepancy=float(np.linalg.norm(Y_hat - out)),
            residual=r,
            off_support=q,
            realized_bound=math.hypot(r, q),
            radius=math.nan if radius is None else float(np.linalg.norm(np.atleast_1d(radius))),
            feasible=None if radius is None else bool(ball_ok and bounds_ok),
            violation=violation,
            spectral_norm=float(np.linalg.norm(layer_hat.W, 2)),
            theorem3_samples=theorem3_samples(
                int(col_nnz.max(initial=0)), max(layer.shape[0], 2), mu=mu
            ),
            samples=inp.shape[0],
            allowed_residual=allowed_r,
            allowed_violation=allowed_v,
            feas_tol=tol,
            exact=exact,
            lipschitz=fig.lipschitz[l],
        )
    )
    fig.radii.append(radius)
    fig.off_nominal.append(off)
    fig.relu.append(layer.activation == "relu")
    fig.ball_ok.append(ball_ok)
    fig.bounds_ok.append(bounds_ok)


# ---------------------------------------------------------------------------------------
# the checks: one builder per guarantee, listed per scheme in _CHECKS


def _le(realized: float, bound: float, rtol: float) -> bool:
    return realized <= bound * (1 + rtol) + 1e-300


def _realized(name, assumption, applies, bound, realized, rtol, note="") -> Check:
    """A bound from realized figures: it holds up to rounding (``rtol``)."""
    return Check(name, assumption, applies, bound, realized, _le(realized, bound, rtol), note)


def _tolerated(name, assumption, applies, bound, realized, allowed, tol, rtol, note="") -> Check:
    """A bound from claimed budgets: it holds up to the budgets' tolerance (``allowed``)."""
    holds = _le(realized, allowed, rtol)
    return Check(name, assumption, applies, bound, realized, holds, note, allowed, tol)


def _norm_text(fig: _Figures) -> str:
    return (
        "link-normalized original (||W~_l||_1 = 1 for every layer; got "
        + ", ".join(f"{c:.4g}" for c in fig.norms)
        + ")"
    )


def _budget_checks(fig: _Figures, rtol: float) -> list[Check]:
    """Each layer meets the budget claimed for it (ball and bounds off Omega), to its tol."""
    checks = []
    for i, (rep, ball_ok) in enumerate(zip(fig.layers, fig.ball_ok, strict=True)):
        if ball_ok is None:
            continue
        l, bounds_ok = rep.layer, fig.bounds_ok[i]
        per = " (per neuron)" if np.ndim(fig.radii[i]) else ""
        checks.append(
            Check(
                f"budget, layer {l}: ||(Zhat - Y)_Omega||_F <= radius{per}",
                "none",
                True,
                rep.radius,
                rep.residual,
                ball_ok,
                allowed=rep.allowed_residual,
                tolerance=rep.feas_tol,
            )
        )
        if fig.relu[i]:
            checks.append(
                Check(
                    f"budget, layer {l}: max (Zhat - V) off Omega <= 0",
                    "none",
                    True,
                    0.0,
                    rep.violation,
                    bounds_ok,
                    allowed=rep.allowed_violation,
                    tolerance=rep.feas_tol,
                )
            )
    return checks


def _proposition1(fig: _Figures, rtol: float) -> list[Check]:
    checks = []
    for i, rep in enumerate(fig.layers):
        l = rep.layer
        checks.append(
            _realized(
                f"Proposition 1 (realized), layer {l}",
                "none (ReLU is 1-Lipschitz)",
                True,
                rep.realized_bound,
                rep.discrepancy,
                rtol,
            )
        )
        if rep.feasible is not None and (fig.claims.scheme == "parallel" or i == 0):
            checks.append(
                _tolerated(
                    f"Proposition 1 (nominal eps), layer {l}",
                    "the layer meets its budget, V = 0",
                    True,
                    rep.radius,
                    rep.discrepancy,
                    rep.allowed_residual,
                    rep.feas_tol,
                    rtol,
                )
            )
    return checks


def _parallel_any(fig: _Figures, rtol: float) -> list[Check]:
    """``D_l <= e_l + Lip(What_l) D_(l-1)`` through every weighted layer and
    ``D_l <= Lip_l D_(l-1)`` through pooling and flattening (``Lip_l = 1``)."""
    chained, e = 0.0, {rep.layer: rep.realized_bound for rep in fig.layers}
    for l, lipschitz in enumerate(fig.lipschitz):
        chained = e.get(l, 0.0) + lipschitz * chained
    if fig.dense:
        name = "parallel bound, any network: D_L <= e_L + ||What_L||_2 D_(L-1) (chained)"
    else:
        name = "parallel bound, any network: D_L <= e_L + Lip(What_L) D_(L-1) (chained)"
    return [_realized(name, "none", True, chained, fig.D[-1], rtol)]


def _after_last(fig: _Figures) -> float:
    """The Lipschitz constant of the layers after the last weighted one (1 or none)."""
    return float(np.prod(fig.lipschitz[fig.layers[-1].layer + 1 :]))


def _dense_only(fig: _Figures, theorem: str) -> str:
    return (
        ""
        if fig.dense
        else f"{theorem} is stated for dense chains (a convolution's Lipschitz constant "
        "can exceed its ||W~||_1); see the bound for any network"
    )


def _theorem1(fig: _Figures, rtol: float) -> list[Check]:
    bound = float(sum(rep.realized_bound for rep in fig.layers))
    note = "" if fig.normalized else "Theorem 1 not applicable; see the bound for any network"
    note = _dense_only(fig, "Theorem 1") or note
    assumption = _norm_text(fig) + " and pruned ||What~_l||_1 <= 1"
    applies = fig.dense and fig.normalized and fig.pruned_within
    return [
        _realized("Theorem 1: D_L <= sum_l e_l", assumption, applies, bound, fig.D[-1], rtol, note)
    ]


def _theorem1_nominal(fig: _Figures, rtol: float) -> list[Check]:
    if not fig.known:
        return []
    bound = float(sum(rep.radius for rep in fig.layers))
    allowed = float(sum(rep.allowed_residual for rep in fig.layers))
    assumption = _norm_text(fig) + "; every layer meets its budget"
    applies = fig.dense and fig.normalized and fig.pruned_within
    return [
        _tolerated(
            "Theorem 1 (nominal): D_L <= sum_l eps_l",
            assumption,
            applies,
            bound,
            fig.D[-1],
            allowed,
            fig.tol,
            rtol,
            _dense_only(fig, "Theorem 1"),
        )
    ]


def _cascade_any(fig: _Figures, rtol: float) -> list[Check]:
    name = "cascade bound, any network: D_L <= e_L (e_L on the pruned input)"
    bound = fig.layers[-1].realized_bound * _after_last(fig)
    return [_realized(name, "none", True, bound, fig.D[-1], rtol)]


def _cascade_nominal(fig: _Figures, rtol: float) -> list[Check]:
    if not fig.known:
        return []
    checks = []
    for i, rep in enumerate(fig.layers):
        off, l = fig.off_nominal[i], rep.layer
        name = (
            f"cascade bound (nominal): D_{l + 1}^2 <= eps_{l + 1}^2 + "
            f"||(V_{l + 1})_+ on Omega^c||^2"
        )
        checks.append(
            _tolerated(
                name,
                "the layer meets its budget",
                True,
                math.hypot(rep.radius, off),
                fig.D[l],
                math.hypot(rep.allowed_residual, off),
                rep.feas_tol,
                rtol,
            )
        )
    return checks


def _theorem2(fig: _Figures, rtol: float) -> list[Check]:
    bound = fig.layers[0].realized_bound * math.sqrt(float(np.prod(fig.gamma_eff)))
    note = "gamma~ = " + ", ".join(f"{g:.4g}" for g in fig.gamma_eff)
    if not fig.normalized:
        note += "; Theorem 2 not applicable, see the bound for any network"
    if not fig.dense:
        note += "; " + _dense_only(fig, "Theorem 2")
    return [
        _realized(
            "Theorem 2: D_L <= e_1 sqrt(prod gamma~_l)",
            _norm_text(fig),
            fig.dense and fig.normalized,
            bound,
            fig.D[-1],
            rtol,
            note,
        )
    ]


def _theorem2_nominal(fig: _Figures, rtol: float) -> list[Check]:
    if not fig.known:
        return []
    factor = math.sqrt(float(np.prod(fig.claims.gammas)))
    first = fig.layers[0]
    return [
        _tolerated(
            "Theorem 2 (nominal): D_L <= eps_1 sqrt(prod gamma_l)",
            _norm_text(fig) + "; every layer meets its budget",
            fig.dense and fig.normalized,
            first.radius * factor,
            fig.D[-1],
            first.allowed_residual * factor,
            fig.tol,
            rtol,
            note=f"kappa = {fig.claims.kappa:g} <= 1 only tightens it"
            + ("; " + _dense_only(fig, "Theorem 2") if not fig.dense else ""),
        )
    ]


_CHECKS: dict[str, tuple[Callable[[_Figures, float], list[Check]], ...]] = {
    "parallel": (_budget_checks, _proposition1, _parallel_any, _theorem1, _theorem1_nominal),
    "cascade": (
        _budget_checks,
        _proposition1,
        _cascade_any,
        _cascade_nominal,
        _theorem2,
        _theorem2_nominal,
    ),
}
