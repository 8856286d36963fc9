"""kNN monitor and group accuracies against hand computations and a slow reference."""

import math

import pytest
import torch

from ltcl.evaluation.knn import KNNMonitor, group_accuracies, knn_predict, per_class_accuracy


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


def reference_per_class(pred, target, num_classes):
    out = []
    for c in range(num_classes):
        members = [i for i in range(len(target)) if int(target[i]) == c]
        hits = sum(int(pred[i]) == c for i in members)
        out.append(100.0 * hits / len(members) if members else float("nan"))
    return out


def test_per_class_accuracy_matches_the_reference_and_marks_empty_classes():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (50,), generator=g)  # class 4 has no images
    pred = torch.randint(0, 5, (50,), generator=g)
    got = per_class_accuracy(pred, target, 5).tolist()
    expected = reference_per_class(pred, target, 5)
    assert got[:4] == pytest.approx(expected[:4]) and math.isnan(got[4])


def _monitor_data():
    g = torch.Generator().manual_seed(1)
    bank, bank_labels = torch.randn(30, 8, generator=g), torch.arange(30) % 3
    queries, labels = torch.randn(20, 8, generator=g), torch.arange(20) % 3
    return bank, bank_labels, queries, labels


def _expected_monitor():
    bank, bank_labels, queries, labels = _monitor_data()
    scores = knn_predict(queries, bank, bank_labels, 3, k=5, temperature=0.1)
    return per_class_accuracy(scores.argmax(1), labels, 3)


def test_knn_monitor_keeps_each_image_once():
    bank, bank_labels, queries, labels = _monitor_data()
    monitor = KNNMonitor(3, k=5, temperature=0.1)
    # the evaluation samplers pad the last batch with repeats of the first images
    for lo, hi in ((0, 16), (16, 30), (0, 2)):
        monitor.update(bank[lo:hi], bank_labels[lo:hi], torch.arange(lo, hi), "bank")
    monitor.update(queries, labels, torch.arange(20), "query")
    monitor.update(queries[:3], labels[:3], torch.arange(3), "query")
    torch.testing.assert_close(monitor.compute(), _expected_monitor(), equal_nan=True)


def _monitor_worker(rank, world, port, out_path):
    import os

    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    bank, bank_labels, queries, labels = _monitor_data()
    monitor = KNNMonitor(3, k=5, temperature=0.1)
    # uneven shards; rank 1 pads with a repeat of image 0
    b = range(0, 17) if rank == 0 else [*range(17, 30), 0]
    q = range(0, 9) if rank == 0 else [*range(9, 20), 0, 1]
    b, q = torch.tensor(list(b)), torch.tensor(list(q))
    monitor.update(bank[b], bank_labels[b], b, "bank")
    monitor.update(queries[q], labels[q], q, "query")
    result = monitor.compute()
    if rank == 0:
        torch.save(result, out_path)
    dist.destroy_process_group()


@pytest.mark.ddp
def test_knn_monitor_two_processes_equal_one_process(tmp_path):
    import torch.multiprocessing as mp

    from tests.helpers import free_port

    out = tmp_path / "monitor.pt"
    mp.spawn(_monitor_worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    torch.testing.assert_close(torch.load(out), _expected_monitor(), equal_nan=True)
