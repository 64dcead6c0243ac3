import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from convperceiver.engine.metrics import (
    VideoScores,
    aggregate_clips,
    evaluate_clips,
    unique_views,
)


def logits_for(probabilities):
    return torch.tensor(probabilities).log()


def test_mean_aggregation_averages_softmax_per_video():
    video = torch.tensor([3, 3, 1, 3])
    logits = logits_for([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6]])
    videos, scores = aggregate_clips(video, logits, method="mean")
    assert videos.tolist() == [1, 3]
    torch.testing.assert_close(scores, torch.tensor([[0.3, 0.7], [0.5, 0.5]]))


def test_majority_vote_counts_argmax_and_differs_from_mean():
    # Two weak votes for class 1 beat one confident vote for class 0; the mean disagrees.
    video = torch.tensor([0, 0, 0])
    logits = logits_for([[0.99, 0.01], [0.45, 0.55], [0.45, 0.55]])
    _, majority = aggregate_clips(video, logits, method="majority")
    _, mean = aggregate_clips(video, logits, method="mean")
    assert majority.argmax().item() == 1
    assert mean.argmax().item() == 0


def test_majority_ties_are_broken_by_mean_probability():
    video = torch.tensor([0, 0])
    logits = logits_for([[0.6, 0.4, 0.0001], [0.1, 0.2, 0.7]])
    _, scores = aggregate_clips(video, logits, method="majority")
    # One vote each for classes 0 and 2; class 2 has the higher mean probability.
    assert scores.argmax().item() == 2


def test_unknown_aggregation_is_refused():
    with pytest.raises(ValueError, match="mean, majority"):
        aggregate_clips(torch.tensor([0]), torch.zeros(1, 2), method="max")


def test_duplicated_views_from_ddp_padding_are_counted_once():
    video = torch.tensor([0, 0, 1, 2, 0])
    view = torch.tensor([0, 1, 0, 0, 0])  # the last item repeats (video 0, view 0)
    assert sorted(unique_views(video, view).tolist()) == [0, 1, 2, 3]


def test_video_metrics_on_hand_made_scores():
    # videos 0 and 1 are class 0, video 2 is class 1, video 3 is class 2.
    video = torch.tensor([0, 0, 1, 2, 2, 3, 3])
    view = torch.tensor([0, 1, 0, 0, 1, 0, 0])  # (3, 0) appears twice: DDP padding
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    logits = logits_for(
        [
            [0.7, 0.2, 0.1],
            [0.6, 0.3, 0.1],  # video 0 right
            [0.2, 0.5, 0.3],  # video 1 wrong (class 1), class 0 second
            [0.1, 0.8, 0.1],
            [0.3, 0.4, 0.3],  # video 2 right
            [0.5, 0.1, 0.4],
            [0.5, 0.1, 0.4],  # video 3 wrong (class 0)
        ]
    )
    result = evaluate_clips(video, view, logits, labels, num_classes=3, method="mean")
    assert result.num_videos == 4 and result.num_clips == 6
    assert result.video_top1 == pytest.approx(0.5)
    assert result.video_top5 == pytest.approx(1.0)
    assert result.mean_class_accuracy == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert result.clip_top1 == pytest.approx(4 / 6)
    assert result.confusion.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    expected_loss = -torch.tensor([0.7, 0.6, 0.2, 0.8, 0.4, 0.4]).log().mean()
    assert result.loss == pytest.approx(expected_loss.item(), rel=1e-5)
    assert result.video_labels.tolist() == [0, 0, 1, 2]


def test_three_crops_of_each_clip_all_count():
    # One video, 2 clips x 3 crops: views 0..5, each crop its own view.
    video = torch.zeros(6, dtype=torch.long)
    view = torch.arange(6)
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    metric = VideoScores(num_classes=4)
    metric.update(video, view, logits, torch.zeros(6, dtype=torch.long))
    result = metric.compute()
    assert result.num_clips == 3 * 2
    torch.testing.assert_close(result.video_scores[0], logits.softmax(-1).mean(0))
    first_crops = logits[::3].softmax(-1).mean(0)  # what counting one crop per clip gave
    assert not torch.allclose(result.video_scores[0], first_crops)


def test_video_scores_over_batches_equal_one_evaluation_of_all_views():
    torch.manual_seed(0)
    video = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    view = torch.tensor([0, 1, 0, 1, 0, 1, 2])
    logits, labels = torch.randn(7, 3), torch.tensor([0, 0, 1, 1, 2, 2, 2])
    metric = VideoScores(num_classes=3, aggregate="majority")
    for part in (slice(0, 3), slice(3, 3), slice(3, 7)):  # the middle batch is empty
        metric.update(video[part], view[part], logits[part], labels[part])
    expected = evaluate_clips(video, view, logits, labels, num_classes=3, method="majority")
    result = metric.compute()
    assert result.metrics() == expected.metrics()
    torch.testing.assert_close(result.video_scores, expected.video_scores)


def test_video_scores_without_views_compute_nothing():
    assert VideoScores(num_classes=3).compute() is None


def test_video_scores_refuse_logits_of_another_class_count():
    with pytest.raises(ValueError, match="3 classes"):
        VideoScores(num_classes=3).update(
            torch.tensor([0]), torch.tensor([0]), torch.zeros(1, 4), torch.tensor([0])
        )


# 5 videos x 2 views on 2 ranks: rank 1's shard is padded with a repeat of (video 0, view 0),
# ranks hold different counts, and rank 0 has an empty batch.
VIDEO = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
VIEW = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
SHARDS = {0: [[0, 2, 4], [], [6, 8]], 1: [[1, 3, 5, 7], [9, 0]]}


def _rank_scores(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    logits, labels = torch.randn(10, 3), VIDEO % 3
    metric = VideoScores(num_classes=3)
    for batch in SHARDS[rank]:
        items = torch.tensor(batch, dtype=torch.long)
        metric.update(VIDEO[items], VIEW[items], logits[items], labels[items])
    result = metric.compute()
    with open(os.path.join(folder, f"rank{rank}.json"), "w") as handle:
        json.dump({**result.metrics(), "scores": result.video_scores.tolist()}, handle)
    dist.destroy_process_group()


def test_video_scores_gather_every_rank_and_count_each_view_once(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_rank_scores, args=(port, str(tmp_path)), nprocs=2)
    torch.manual_seed(0)
    logits = torch.randn(10, 3)
    expected = evaluate_clips(VIDEO, VIEW, logits, VIDEO % 3, num_classes=3)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert result["num_videos"] == 5 and result["num_clips"] == 10
        assert result["video_top1"] == pytest.approx(expected.video_top1)
        assert result["loss"] == pytest.approx(expected.loss, rel=1e-6)
        torch.testing.assert_close(torch.tensor(result["scores"]), expected.video_scores)
