"""kNN monitor and group accuracies against hand computations and a slow reference."""

import math

import pytest
import torch

from ltcl.evaluation.knn import group_accuracies, knn_predict, per_class_accuracy


def reference_knn(queries, bank, labels, num_classes, k, t):
    out = []
    for q in queries:
        sims = [
            (float(q @ b) / (q.norm() * b.norm()).item(), int(y))
            for b, y in zip(bank, labels, strict=True)
        ]
        sims.sort(key=lambda s: -s[0])
        votes = [0.0] * num_classes
        for s, y in sims[:k]:
            votes[y] += math.exp(s / t)
        out.append(votes)
    return torch.tensor(out)


def test_hand_computable_case():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    scores = knn_predict(torch.tensor([[0.0, 2.0], [3.0, 0.0]]), bank, labels, 2, k=1)
    assert scores.argmax(1).tolist() == [1, 0]
    # k = 3, query along x: votes 0 = e^{1/.1} + e^{cos/.1}, votes 1 = e^{0}
    cos = 0.9 / math.hypot(0.9, 0.1)
    scores = knn_predict(torch.tensor([[1.0, 0.0]]), bank, labels, 2, k=3, temperature=0.1)
    assert scores[0, 0].item() == pytest.approx(math.exp(10) + math.exp(cos / 0.1), rel=1e-5)
    assert scores[0, 1].item() == pytest.approx(1.0, rel=1e-5)


def test_matches_slow_reference_with_chunks():
    g = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(50, 6, generator=g), torch.randn(9, 6, generator=g)
    labels = torch.randint(0, 4, (50,), generator=g)
    fast = knn_predict(queries, bank, labels, 4, k=7, temperature=0.5, chunk_size=4)
    torch.testing.assert_close(
        fast, reference_knn(queries, bank, labels, 4, 7, 0.5), rtol=1e-4, atol=1e-4
    )


def test_k_larger_than_bank_uses_whole_bank():
    scores = knn_predict(torch.randn(2, 3), torch.randn(3, 3), torch.tensor([0, 1, 1]), 2, k=200)
    assert scores.shape == (2, 2)


def test_group_accuracies_and_std_by_hand():
    per_class = per_class_accuracy(
        torch.tensor([0, 0, 1, 1, 2, 0]), torch.tensor([0, 0, 1, 0, 2, 2]), 3
    )
    assert per_class.tolist() == pytest.approx([200 / 3, 100.0, 50.0])
    out = group_accuracies(per_class, {"many": [0], "medium": [1], "few": [2]})
    assert out["all"] == pytest.approx((200 / 3 + 100 + 50) / 3)
    mean = out["all"]
    std = math.sqrt(((200 / 3 - mean) ** 2 + (100 - mean) ** 2 + (50 - mean) ** 2) / 3)
    assert out["std"] == pytest.approx(std)
