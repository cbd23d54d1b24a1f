"""The retrieval benchmark's ground truth: its recall figures are only as right as this."""

from __future__ import annotations

import numpy as np
import pytest

from bench import retrieval_data as rd


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> tuple[rd.Corpus, rd.Queries]:
    monkeypatch.setattr(rd, "COLLECTIONS", 3)
    monkeypatch.setattr(rd, "PER_COLLECTION", 400)
    monkeypatch.setattr(rd, "TOPICS", 30)
    monkeypatch.setattr(rd, "TOPICS_PER_COLLECTION", 10)
    monkeypatch.setattr(rd, "QUERIES", 25)
    data = rd.corpus()
    return data, rd.queries(data)


def test_vectors_are_unit_length_and_collections_are_contiguous(
    small: tuple[rd.Corpus, rd.Queries]
) -> None:
    data, q = small
    assert np.allclose(np.linalg.norm(data.vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(q.vectors, axis=1), 1.0, atol=1e-5)
    assert data.collection.tolist() == sorted(data.collection.tolist())
    assert len(data.texts) == len(data.vectors)
    assert (q.own != q.other).all()


def test_exact_top_k_matches_a_full_sort(small: tuple[rd.Corpus, rd.Queries]) -> None:
    data, q = small
    sims = q.vectors.astype(np.float64) @ data.vectors.astype(np.float64).T
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :rd.K] + 1
    assert (rd.exact_top_k(data, q.vectors) == expected).all()
    filtered = rd.exact_top_k(data, q.vectors, only=q.own)
    for i, c in enumerate(q.own):
        inside = np.flatnonzero(data.collection == c)
        best = inside[np.argsort(-sims[i, inside], kind="stable")[:rd.K]] + 1
        assert filtered[i].tolist() == best.tolist()


def test_recall_counts_shared_ids_and_short_answers_as_misses() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert rd.recall([[4, 3, 2, 1], [5, 6, 7, 8]], truth) == 1.0
    assert rd.recall([[1, 2], [9, 9, 9, 5]], truth) == pytest.approx(3 / 8)
