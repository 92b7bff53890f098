"""The result vocabulary every nettrim result speaks (``docs/architecture.md``, "Results").

* ``.success`` — the one success word (``True`` when every solve ended ``"optimal"``, or
  the target was met);
* ``summary()`` — the one rendering method; ``str(result)`` is ``result.summary()``;
* ``.W`` / ``.b`` — weights and bias of a layer; ``.network`` and ``.layers`` of a network.

A renamed name keeps a deprecated alias for one release (:func:`deprecated_alias`).
"""

from __future__ import annotations

import warnings
from typing import Any


class NetworkResult:
    """What the network-level results share: ``network``, ``layers`` and the figures of
    them. Subclasses (frozen dataclasses) hold the fields and write :meth:`summary`."""

    network: Any
    layers: tuple
    scheme: str
    seconds: float

    @property
    def nnz(self) -> int:
        """Non-zero weights of the pruned network (biases not counted)."""
        return self.network.nnz

    @property
    def sparsity(self) -> float:
        """Fraction of the network's weights that are zero (biases not counted)."""
        return 1.0 - self.network.nnz / self.network.size

    @property
    def success(self) -> bool:
        """Whether every layer's solve ended ``"optimal"`` (layers not pruned aside)."""
        return all(result.success for result in self.layers if result is not None)

    def summary(self) -> str:  # pragma: no cover - every subclass writes its own
        raise NotImplementedError

    def _headline(self, method: str) -> str:
        """The first line of :meth:`summary`: scheme, method, layers, sparsity, time."""
        return (
            f"{self.scheme} {method}, {len(self.layers)} layers, "
            f"sparsity {self.sparsity:.1%}, {self.seconds:.2f} s"
        )

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        # subclasses are dataclasses declared with repr=False, so this one is theirs
        return (
            f"{type(self).__name__}(scheme={self.scheme!r}, layers={len(self.layers)}, "
            f"sparsity={self.sparsity:.3f}, seconds={self.seconds:.2f})"
        )


def deprecated_alias(old: str, new: str) -> property:
    """A read-only attribute ``old`` that returns ``new`` with a ``DeprecationWarning``
    (a method stays callable: ``report.format()`` warns, then calls ``report.summary()``)."""

    def get(self):
        warnings.warn(
            f"{type(self).__name__}.{old} is deprecated, use .{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, new)

    return property(get, doc=f"Deprecated alias of ``{new}``.")
