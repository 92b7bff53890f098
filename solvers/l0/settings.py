"""Settings of the L0 ADMM (:func:`.solve_l0_admm`): the ALPS-style penalty schedule."""

from __future__ import annotations

from dataclasses import dataclass

#: ``factorization="auto"`` factors ``G + rho I`` per penalty up to this many penalties.
CHOLESKY_MAX_PENALTIES = 24
#: ALPS's penalty start, factors and stopping rule (support change only), shared by the named
#: schedules :meth:`AdmmL0Settings.thorough` and :meth:`AdmmL0Settings.short`.
_ALPS_RULES = {
    "rho": 0.1,
    "grow_fast": 1.3,
    "grow": 1.2,
    "grow_slow": 1.1,
    "stop_change": 3e-4,
    "settle_change": 0.0,
}


@dataclass(frozen=True)
class AdmmL0Settings:
    """Settings of :func:`solve_l0_admm` (ALPS-style penalty schedule).

    Attributes
    ----------
    rho : float
        Initial penalty, on the unit-diagonal scaled Gram matrix.
    update_every : int
        Iterations between penalty updates (the support change is measured over them).
    grow_fast, grow, grow_slow : float
        Factors applied to ``rho`` when the fraction of the support that changed since the
        last update is above ``fast_above``, above ``slow_above``, or smaller but not zero.
    fast_above, slow_above : float
        Support-change fractions (of the number of kept entries) that select the factor.
    stop_change : float
        Stop once the support-change fraction falls below this (after ``min_iter``).
    settle_change, objective_tol : float
        Stop, too, once the support-change fraction is below ``settle_change`` (the support
        has settled) and the objective at the B-iterate decreased by less than
        ``objective_tol`` (relative) since the last such check: the run no longer pays.
        Either rule ends the run with status ``optimal``; ``max_iter`` ends it with
        ``max_iter``. The check costs no product with ``G`` (the B-step gives ``G B``).
    min_iter, max_iter : int
        Iteration bounds.
    rho_max : float
        Cap on ``rho``.
    refit_iter : int
        Conjugate-gradient iterations of the final refit (when it is done by CG).
    dtype : {"float32", "float64", "auto"}
        Working precision of the iterations and the refit (``"auto"``: that of ``W0``).
        float32 by default: on the real layers of the benchmark (float64 MNIST layers
        included) it gave the same held-out errors as float64 to 3 digits in 55-80% of
        the time. The weights come back in ``W0``'s dtype and the reported objective is
        accurate to that dtype (float64 ``W0``: one float64 product at the end).
    factorization : {"auto", "eigh", "cholesky"}
        How the B-step solves with ``G + rho I``. ``"eigh"``: one eigendecomposition, then
        each new ``rho`` costs a product ``Q diag(1/(L + rho)) Q^T`` — the right choice for
        long runs with many penalty changes. ``"cholesky"``: a Cholesky factorization per
        ``rho`` (``d^3 / 3`` flops, a small fraction of an eigendecomposition) and two
        triangular solves per iteration (an explicit inverse and one product instead when
        the layer has more than twice as many outputs as inputs) — cheaper when ``rho``
        takes few values. ``"auto"`` picks Cholesky when at most
        :data:`CHOLESKY_MAX_PENALTIES` penalties can occur (``max_iter / update_every``).

    Notes
    -----
    The defaults were chosen on the real layers of ``benchmarks/bench_l0.py`` (the 36
    linear layers of all-MiniLM-L6-v2 on English text, the MNIST MLP's layers; results in
    ``docs/l0.md``): ALPS's schedule with faster penalty growth (1.7 / 1.45 / 1.2 every 2
    iterations instead of 1.3 / 1.2 / 1.1 every 3) from a smaller start (0.06) settles the
    support in 8-18 iterations instead of 30-42, within a few percent of the full
    schedule's error. The run stops by its own rule, not at ``max_iter`` (40, a cap): once
    less than 0.5% of the support moves between checks (the refit then fixes the weights on
    it), or, when up to 2% still moves, once the objective is flat. The smaller start buys
    more exploration at low ``rho`` (lower errors: the 70% median over the MiniLM layers fell
    by about 0.8%), stopping at 0.5% instead of waiting for a flat objective gives the
    iterations back. Once the ADMM has converged its iterate already solves the support's
    least squares, so 3 CG steps of refit suffice (10 or 20 measured no better). With at
    most 21 penalties a Cholesky factorization per penalty is cheaper than an
    eigendecomposition. The start is ``H_K(S W0)``, the Wanda-like scaled-magnitude mask; a
    SparseGPT warm start (``W_init``) measured 0-3% lower errors for one more SparseGPT's
    time, a Wanda warm start no change. :meth:`short` is the earlier 4-iteration run (about
    half the time,
    markedly higher error on real layers); :meth:`thorough` the full ALPS schedule.
    """

    rho: float = 0.06
    update_every: int = 2
    grow_fast: float = 1.7
    grow: float = 1.45
    grow_slow: float = 1.2
    fast_above: float = 0.1
    slow_above: float = 0.005
    stop_change: float = 0.005
    settle_change: float = 0.02
    objective_tol: float = 1e-3
    min_iter: int = 4
    max_iter: int = 40
    rho_max: float = 1e6
    refit_iter: int = 3
    dtype: str = "float32"
    factorization: str = "auto"

    @classmethod
    def thorough(cls) -> AdmmL0Settings:
        """ALPS's full schedule: penalty updates every 3 iterations by 1.3 / 1.2 / 1.1, at
        least 30 and up to 300 iterations (until less than 0.03% of the support moves), 20 CG
        steps of refit."""
        return cls(update_every=3, min_iter=30, max_iter=300, refit_iter=20, **_ALPS_RULES)

    @classmethod
    def short(cls) -> AdmmL0Settings:
        """The earlier four-iteration default: a penalty update (ALPS's factors) after the
        2nd iteration, 3 CG steps of refit; it usually ends at ``max_iter``."""
        return cls(min_iter=4, max_iter=4, **_ALPS_RULES)
