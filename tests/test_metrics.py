import pytest
import torch

from convperceiver.engine.metrics import aggregate_clips, evaluate_clips, unique_clips


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


def test_duplicated_clips_from_ddp_padding_are_counted_once():
    video = torch.tensor([0, 0, 1, 2, 0])
    clip = torch.tensor([0, 1, 0, 0, 0])  # the last item repeats (video 0, clip 0)
    assert sorted(unique_clips(video, clip).tolist()) == [0, 1, 2, 3]


def test_video_metrics_on_hand_made_scores():
    # videos 0 and 1 are class 0, video 2 is class 1, video 3 is class 2.
    video = torch.tensor([0, 0, 1, 2, 2, 3, 3])
    clip = torch.tensor([0, 1, 0, 0, 1, 0, 0])  # (3, 0) appears twice: DDP padding
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
    result = evaluate_clips(video, clip, logits, labels, num_classes=3, method="mean")
    assert result.num_videos == 4 and result.num_clips == 6
    assert result.video_top1 == pytest.approx(0.5)
    assert result.video_top5 == pytest.approx(1.0)
    assert result.mean_class_accuracy == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert result.clip_top1 == pytest.approx(4 / 6)
    assert result.confusion.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    expected_loss = -torch.tensor([0.7, 0.6, 0.2, 0.8, 0.4, 0.4]).log().mean()
    assert result.loss == pytest.approx(expected_loss.item(), rel=1e-5)
