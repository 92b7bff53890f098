"""The Net-Trim guarantees, checked on a pruned network: Proposition 1, Theorems 1-3.

Notation (DESIGN §5): ``Y^(l)`` the original network's layer outputs on ``X``, ``Yhat^(l)`` the
pruned network's, ``D_l = ||Yhat^(l) - Y^(l)||_F``, ``Omega_l = {Y^(l) > active_tol}``, ``Zhat_l``
the pruned layer's pre-activation on the layer's input (the original input ``Y^(l-1)`` in the
parallel scheme, the pruned ``Yhat^(l-1)`` in the cascade), ``V_l`` the cascade's upper bound
(``Yhat~^(l-1) W~_l``; 0 in the parallel scheme and for the first layer).

Every bound is evaluated with *realized* per-layer figures, not the nominal budgets:

* ``r_l = ||(Zhat_l - Y^(l))_Omega||_F`` (the realized residual; all entries for a linear layer),
* ``q_l = ||max(relu(max(V_l, Zhat_l)), Y^(l)) on Omega^c||_F`` (what the pruned output can
  differ by off Omega; ``||(V_l)_+ on Omega^c||`` when the solve is feasible and
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
  whenever layer ``l``'s solve is feasible.

The bounds hold on the calibration inputs the network was pruned with (they are statements
about the programs' constraints); on held-out inputs they are not guaranteed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .network import DenseLayer, Network
from .schemes import CASCADE_BOUNDS, DEFAULT_GAMMA, DEFAULT_KAPPA, SCHEMES, NetTrimResult
from .solvers import AdmmSettings
from .validation import as_float_dtype, check_choice, check_matrix, check_scalar

#: Relative slack for comparing a realized value with a bound computed from the same
#: floating-point data (both are sums of the same products; 1e-9 covers their rounding).
BOUND_RTOL = 1e-9
#: Relative tolerance on the solver's feasibility (ball and Omega^c inequalities) for the
#: checks against the *nominal* budgets, and on ``||W~_l||_1 = 1`` for link normalization.
FEAS_TOL = 1e-5
LINK_TOL = 1e-6
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
    """Entry-wise ``||W~_l||_1`` of every layer."""
    return tuple(
        float(np.abs(layer.augmented_weights if include_bias else layer.W).sum())
        for layer in network.layers
    )


@dataclass(frozen=True)
class Check:
    """One bound compared with the realized value, and the assumption it rests on."""

    name: str
    assumption: str
    assumption_holds: bool
    bound: float
    realized: float
    holds: bool
    note: str = ""

    @property
    def applicable(self) -> bool:
        return self.assumption_holds

    def line(self) -> str:
        verdict = "holds" if self.holds else "FAILS"
        if not self.assumption_holds:
            verdict = f"not applicable ({verdict} numerically)"
        text = (
            f"{self.name}: realized {self.realized:.6g} <= bound {self.bound:.6g}: "
            f"{verdict}; assumes {self.assumption}: "
            f"{'yes' if self.assumption_holds else 'no'}"
        )
        return text + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class LayerReport:
    """Figures of one layer on the calibration inputs.

    ``discrepancy`` is the layer's output discrepancy on its scheme input (in the cascade it
    is the network's ``D_l``); ``residual`` is ``r_l``, ``off_support`` is ``q_l``,
    ``realized_bound`` is ``e_l``; ``radius`` the nominal absolute budget (``nan`` unknown).
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


@dataclass(frozen=True)
class VerificationReport:
    """What :func:`verify` measured and which guarantees hold.

    ``network_discrepancy[l]`` is ``D_{l+1} = ||Yhat^(l+1) - Y^(l+1)||_F``;
    ``ok`` is true when every check whose assumption holds also holds numerically.
    """

    scheme: str
    layers: tuple[LayerReport, ...]
    network_discrepancy: tuple[float, ...]
    relative_discrepancy: float
    link_normalized: bool
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return all(check.holds for check in self.checks if check.assumption_holds)

    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.assumption_holds and not c.holds)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out

    def __str__(self) -> str:
        lines = [
            f"verify ({self.scheme} scheme): D_L = {self.network_discrepancy[-1]:.6g} "
            f"(relative {self.relative_discrepancy:.4g}); "
            f"link-normalized: {'yes' if self.link_normalized else 'no'}; "
            f"{'OK' if self.ok else 'FAILED'}"
        ]
        lines.append(
            f"{'layer':>5} {'shape':>9} {'nnz':>7} {'discrep.':>10} {'e_l':>10} "
            f"{'radius':>10} {'feasible':>8} {'||W||_2':>8} {'T3 P':>8} {'n':>6}"
        )
        for rep in self.layers:
            feasible = "?" if rep.feasible is None else ("yes" if rep.feasible else "no")
            lines.append(
                f"{rep.layer:>5} {rep.shape[0]:>4}x{rep.shape[1]:<4} {rep.nnz:>7} "
                f"{rep.discrepancy:>10.4g} {rep.realized_bound:>10.4g} {rep.radius:>10.4g} "
                f"{feasible:>8} {rep.spectral_norm:>8.3g} {rep.theorem3_samples:>8.0f} "
                f"{rep.samples:>6}"
            )
        lines += [check.line() for check in self.checks]
        lines += list(self.notes)
        return "\n".join(lines)


def _solver_feas_tol(result: NetTrimResult) -> float:
    """The feasibility tolerance the result's solves were held to (the loosest layer's)."""
    if not any(layer.info.solver.startswith("admm") for layer in result.layers):
        return FEAS_TOL
    options = result.options.get("solver_options") or {}
    return max(FEAS_TOL, float(options.get("feas_tol", AdmmSettings().feas_tol)))


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
    active_tol: float = 0.0,
    mu: float = DEFAULT_MU,
    rtol: float = BOUND_RTOL,
    feas_tol: float | None = None,
    link_tol: float = LINK_TOL,
) -> VerificationReport:
    """Check Proposition 1 and Theorems 1-2 (and the bounds for any network) on ``X``.

    Parameters
    ----------
    original : Network
        The network before pruning.
    pruned : Network or NetTrimResult
        The pruned network; a :class:`~nettrim.schemes.NetTrimResult` also supplies the
        scheme, the absolute budgets, ``gamma`` and ``kappa``.
    X : array-like of shape (n, d_0)
        The calibration inputs the network was pruned with (the guarantees are about them).
    scheme : {"parallel", "cascade"}, optional
        Required when ``pruned`` is a plain Network (default ``"parallel"`` then).
    eps : float or list, optional
        Nominal relative budgets when ``pruned`` is a plain Network: one per layer or one
        for all (parallel), the first layer's (cascade). Without them only the realized
        bounds are checked.
    gamma, kappa, cascade_bound : optional
        The cascade's factors and its bound off Omega (net_trim's defaults when not given;
        taken from ``pruned`` when it is a NetTrimResult).
    active_tol : float
        Omega is ``Y > active_tol`` (as passed to the pruning).
    mu : float
        Theorem 3's ``mu`` for the per-layer sample counts.
    rtol : float
        Relative slack for realized-vs-bound comparisons (rounding only).
    feas_tol : float, optional
        Relative slack when deciding whether a solve was feasible. Default: ``FEAS_TOL``,
        or the ADMM's own ``feas_tol`` when ``pruned`` is a NetTrimResult solved by it
        (its weights are feasible to that tolerance, not to the exact solvers').
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
    if original.dims != net_hat.dims or original.activations != net_hat.activations:
        raise ValueError(
            f"pruned has dims {net_hat.dims} and activations "
            f"{net_hat.activations} but original has {original.dims} and "
            f"{original.activations}; they must match"
        )
    if result is not None:
        if scheme is not None and scheme != result.scheme:
            raise ValueError(f"scheme={scheme!r} but the result was pruned with {result.scheme!r}")
        scheme = result.scheme
        gammas = tuple(result.gamma)
        kappa = result.kappa
        cascade_bound = result.options.get("cascade_bound", "paper")
        if feas_tol is None:
            feas_tol = _solver_feas_tol(result)
    else:
        scheme = check_choice("scheme", scheme or "parallel", SCHEMES)
        gammas = ()
        if scheme == "cascade":
            g = DEFAULT_GAMMA if gamma is None else gamma
            gammas = (
                (check_scalar("gamma", g, low=1.0),) * (len(original) - 1)
                if np.ndim(g) == 0
                else tuple(float(v) for v in g)
            )
        kappa = DEFAULT_KAPPA if kappa is None else check_scalar("kappa", kappa, low=0.0)
        cascade_bound = check_choice(
            "cascade_bound", cascade_bound or CASCADE_BOUNDS[0], CASCADE_BOUNDS
        )
    feas_tol = FEAS_TOL if feas_tol is None else check_scalar("feas_tol", feas_tol, low=0.0)
    dtype = as_float_dtype(X)
    X = check_matrix("X", X, dtype)
    if X.shape[1] != original.dims[0]:
        raise ValueError(
            f"X has {X.shape[1]} columns but the network expects {original.dims[0]} inputs"
        )
    active_tol = check_scalar("active_tol", active_tol, low=0.0)

    L = len(original)
    Y = original.record(X)
    Y_hat = net_hat.record(X)
    D = [float(np.linalg.norm(Y_hat[l + 1] - Y[l + 1])) for l in range(L)]
    norms = link_norms(original)
    normalized = all(abs(c - 1.0) <= link_tol for c in norms)
    pruned_norms = link_norms(net_hat)
    pruned_within = all(c <= 1.0 + link_tol for c in pruned_norms)

    radii = _nominal_radii(result, eps, scheme, original, Y, Y_hat, gammas, kappa, active_tol)
    layers: list[LayerReport] = []
    off_nominal: list[float] = []  # ||(V_l)_+ on Omega^c|| (cascade nominal bound)
    gamma_eff: list[float] = []
    for l in range(L):
        layer, layer_hat = original[l], net_hat[l]
        inp = Y[l] if scheme == "parallel" else Y_hat[l]
        Z_hat = layer_hat.preactivation(inp)
        out = Y[l + 1]
        V = None
        if scheme == "cascade" and l > 0 and layer.activation == "relu":
            V = layer.preactivation(inp)
            if cascade_bound == "relaxed":
                V = np.maximum(V, 0.0)  # the bound the layer was solved with
        if layer.activation == "relu":
            omega = out > active_tol
            R = np.where(omega, Z_hat - out, 0.0)
            upper = np.zeros_like(Z_hat) if V is None else V
            reach = np.maximum(np.maximum(np.maximum(upper, Z_hat), 0.0), out)
            q = float(np.linalg.norm(np.where(omega, 0.0, reach)))
            violation = float(np.max(np.where(omega, -np.inf, Z_hat - upper), initial=0.0))
            off_nominal.append(
                float(np.linalg.norm(np.where(omega, 0.0, np.maximum(np.maximum(upper, 0.0), out))))
            )
        else:
            R, q, violation = Z_hat - out, 0.0, 0.0
            off_nominal.append(0.0)
        r = float(np.linalg.norm(R))
        e = math.hypot(r, q)
        discrepancy = float(np.linalg.norm(layer_hat(inp) - out))
        radius = radii[l]
        feasible = None
        if radius is not None:
            cols = np.linalg.norm(R, axis=0)
            ball_ok = (
                bool(np.all(cols <= radius * (1 + feas_tol) + 1e-12))
                if np.ndim(radius)
                else r <= radius * (1 + feas_tol) + 1e-12
            )
            scale = float(np.abs(out).max(initial=0.0))
            feasible = ball_ok and violation <= feas_tol * max(scale, 1.0)
        col_nnz = np.count_nonzero(layer_hat.W, axis=0)
        layers.append(
            LayerReport(
                layer=l,
                shape=layer.shape,
                nnz=layer_hat.nnz,
                discrepancy=discrepancy,
                residual=r,
                off_support=q,
                realized_bound=e,
                radius=float("nan")
                if radius is None
                else float(np.linalg.norm(np.atleast_1d(radius))),
                feasible=feasible,
                violation=violation,
                spectral_norm=float(np.linalg.norm(layer_hat.W, 2)),
                theorem3_samples=theorem3_samples(
                    int(col_nnz.max(initial=0)), max(layer.shape[0], 2), mu=mu
                ),
                samples=X.shape[0],
            )
        )
        if scheme == "cascade" and l > 0:
            base = float(np.linalg.norm((Y_hat[l] - Y[l]) @ layer.W))
            g = gammas[l - 1] if gammas else 1.0
            gamma_eff.append(max(g, e**2 / base**2) if base > 0 else (g if e == 0 else np.inf))

    figures = _Figures(
        scheme=scheme,
        layers=layers,
        D=D,
        radii=radii,
        off_nominal=off_nominal,
        gammas=gammas,
        gamma_eff=gamma_eff,
        kappa=kappa,
        norms=norms,
        normalized=normalized,
        pruned_within=pruned_within,
    )
    checks = _checks(figures, rtol, feas_tol)
    notes = [
        "Theorem 3 (sample complexity) assumes Gaussian inputs, no bias and eps = 0; it is "
        "not checked from data: column 'T3 P' is (11 s + 7) mu log N for the densest pruned "
        f"neuron (mu = {mu}), column 'n' the samples used.",
    ]
    if result is None and eps is None:
        notes.append("no nominal eps given: only the realized bounds are checked")
    y_norm = float(np.linalg.norm(Y[-1]))
    return VerificationReport(
        scheme=scheme,
        layers=tuple(layers),
        network_discrepancy=tuple(D),
        relative_discrepancy=D[-1] / y_norm if y_norm > 0 else float("nan"),
        link_normalized=normalized,
        checks=tuple(checks),
        notes=tuple(notes),
    )


def _nominal_radii(result, eps, scheme, original, Y, Y_hat, gammas, kappa, active_tol):
    """Absolute per-layer budgets (``None`` where unknown)."""
    L = len(original)
    if result is not None:
        return [np.asarray(r, dtype=np.float64) if np.ndim(r) else float(r) for r in result.radii]
    if eps is None:
        return [None] * L
    if scheme == "parallel":
        eps_list = list(eps) if isinstance(eps, (list, tuple)) else [eps] * L
        if len(eps_list) != L:
            raise ValueError(f"eps has {len(eps_list)} values; the network has {L} layers")
        return [
            check_scalar(f"eps[{l}]", e, low=0.0) * float(np.linalg.norm(Y[l + 1]))
            for l, e in enumerate(eps_list)
        ]
    radii = [check_scalar("eps", eps, low=0.0) * float(np.linalg.norm(Y[1]))]
    for l in range(1, L):
        layer = original[l]
        R = layer.preactivation(Y_hat[l]) - Y[l + 1]
        if layer.activation == "relu":
            R = np.where(Y[l + 1] > active_tol, R, 0.0)
        factor = gammas[l - 1] * (kappa**2 if l == L - 1 else 1.0)
        radii.append(math.sqrt(factor) * float(np.linalg.norm(R)))
    return radii


def _le(realized: float, bound: float, rtol: float) -> bool:
    return realized <= bound * (1 + rtol) + 1e-300


@dataclass(frozen=True)
class _Figures:
    """What :func:`verify` measured, which :func:`_checks` compares with the bounds.

    ``D[l]`` is the network discrepancy after layer ``l``; ``radii`` the nominal absolute
    budgets (``None`` where unknown); ``off_nominal[l]`` is ``||(V_l)_+ on Omega^c||``;
    ``gamma_eff`` the cascade's realized ``gamma~_l``; ``norms`` the original's link norms,
    ``normalized`` whether they are all 1, ``pruned_within`` whether the pruned network's
    are at most 1.
    """

    scheme: str
    layers: list[LayerReport]
    D: list[float]
    radii: list[Any]
    off_nominal: list[float]
    gammas: tuple[float, ...]
    gamma_eff: list[float]
    kappa: float
    norms: tuple[float, ...]
    normalized: bool
    pruned_within: bool


def _checks(fig: _Figures, rtol: float, feas_tol: float) -> list[Check]:
    """The checks; those against nominal budgets allow the solver's ``feas_tol`` slack."""
    checks: list[Check] = []
    known = all(r is not None for r in fig.radii)
    feasible = known and all(rep.feasible for rep in fig.layers)
    feas_text = "every layer's solve feasible (residual <= radius, Omega^c inequalities met)"
    norm_text = (
        "link-normalized original (||W~_l||_1 = 1 for every layer; got "
        + ", ".join(f"{c:.4g}" for c in fig.norms)
        + ")"
    )
    for rep in fig.layers:
        checks.append(
            Check(
                name=f"Proposition 1 (realized), layer {rep.layer}",
                assumption="none (ReLU is 1-Lipschitz)",
                assumption_holds=True,
                bound=rep.realized_bound,
                realized=rep.discrepancy,
                holds=_le(rep.discrepancy, rep.realized_bound, rtol),
            )
        )
        if known and (fig.scheme == "parallel" or rep.layer == 0):
            checks.append(
                Check(
                    name=f"Proposition 1 (nominal eps), layer {rep.layer}",
                    assumption="the layer's solve is feasible, V = 0",
                    assumption_holds=bool(rep.feasible),
                    bound=rep.radius,
                    realized=rep.discrepancy,
                    holds=_le(rep.discrepancy, rep.radius, feas_tol),
                )
            )
    if fig.scheme == "parallel":
        chained = 0.0
        for rep in fig.layers:
            chained = rep.realized_bound + rep.spectral_norm * chained
        checks.append(
            Check(
                name="parallel bound, any network: D_L <= e_L + ||What_L||_2 D_(L-1) (chained)",
                assumption="none",
                assumption_holds=True,
                bound=chained,
                realized=fig.D[-1],
                holds=_le(fig.D[-1], chained, rtol),
            )
        )
        thm1 = float(sum(rep.realized_bound for rep in fig.layers))
        checks.append(
            Check(
                name="Theorem 1: D_L <= sum_l e_l",
                assumption=norm_text + " and pruned ||What~_l||_1 <= 1",
                assumption_holds=fig.normalized and fig.pruned_within,
                bound=thm1,
                realized=fig.D[-1],
                holds=_le(fig.D[-1], thm1, rtol),
                note=""
                if fig.normalized
                else "Theorem 1 not applicable; see the bound for any network",
            )
        )
        if known:
            nominal = float(sum(np.linalg.norm(np.atleast_1d(r)) for r in fig.radii))
            checks.append(
                Check(
                    name="Theorem 1 (nominal): D_L <= sum_l eps_l",
                    assumption=norm_text + "; " + feas_text,
                    assumption_holds=fig.normalized and fig.pruned_within and feasible,
                    bound=nominal,
                    realized=fig.D[-1],
                    holds=_le(fig.D[-1], nominal, feas_tol),
                )
            )
    else:
        last = fig.layers[-1]
        checks.append(
            Check(
                name="cascade bound, any network: D_L <= e_L (e_L on the pruned input)",
                assumption="none",
                assumption_holds=True,
                bound=last.realized_bound,
                realized=fig.D[-1],
                holds=_le(fig.D[-1], last.realized_bound, rtol),
            )
        )
        if known:
            for l, rep in enumerate(fig.layers):
                radius = float(np.linalg.norm(np.atleast_1d(fig.radii[l])))
                bound = math.hypot(radius, fig.off_nominal[l])
                checks.append(
                    Check(
                        name=f"cascade bound (nominal): D_{l + 1}^2 <= eps_{l + 1}^2 + "
                        f"||(V_{l + 1})_+ on Omega^c||^2",
                        assumption="the layer's solve is feasible",
                        assumption_holds=bool(rep.feasible),
                        bound=bound,
                        realized=fig.D[l],
                        holds=_le(fig.D[l], bound, feas_tol),
                    )
                )
        thm2 = fig.layers[0].realized_bound * math.sqrt(
            float(np.prod(fig.gamma_eff)) if fig.gamma_eff else 1.0
        )
        checks.append(
            Check(
                name="Theorem 2: D_L <= e_1 sqrt(prod gamma~_l)",
                assumption=norm_text,
                assumption_holds=fig.normalized,
                bound=thm2,
                realized=fig.D[-1],
                holds=_le(fig.D[-1], thm2, rtol),
                note=("gamma~ = " + ", ".join(f"{g:.4g}" for g in fig.gamma_eff))
                + (
                    ""
                    if fig.normalized
                    else "; Theorem 2 not applicable, see the bound for any network"
                ),
            )
        )
        if known:
            nominal = float(np.linalg.norm(np.atleast_1d(fig.radii[0]))) * math.sqrt(
                float(np.prod(fig.gammas)) if fig.gammas else 1.0
            )
            checks.append(
                Check(
                    name="Theorem 2 (nominal): D_L <= eps_1 sqrt(prod gamma_l)",
                    assumption=norm_text + "; " + feas_text,
                    assumption_holds=fig.normalized and feasible,
                    bound=nominal,
                    realized=fig.D[-1],
                    holds=_le(fig.D[-1], nominal, feas_tol),
                    note=f"kappa = {fig.kappa:g} <= 1 only tightens it",
                )
            )
    return checks
