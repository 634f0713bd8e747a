"""Walk-forward splits: the out-of-sample windows tile the end of the data, each after the
in-sample window it is judged by; rolling windows slide, anchored ones grow."""

import itertools

import pytest

from veloz.model.errors import CommandRejected
from veloz.research.optimize.walk_forward import Fold, WalkForward, split


def test_rolling_windows_slide_by_the_out_of_sample_length() -> None:
    # 1,000 bars, 3 folds, 0.7 in sample: W = 1000 / (0.7 + 3 * 0.3) = 625,
    # in-sample 437.5 -> 438 bars, out-of-sample (1000 - 438) / 3 = 187.33 bars each.
    folds = split(1_000, WalkForward(folds=3, in_sample=0.7))
    assert folds == [
        Fold(1, (0, 438), (438, 625)),
        Fold(2, (187, 625), (625, 813)),
        Fold(3, (375, 813), (813, 1_000)),
    ]


def test_anchored_windows_start_at_the_first_bar() -> None:
    folds = split(1_000, WalkForward(folds=3, in_sample=0.7, anchored=True))
    assert [f.in_sample for f in folds] == [(0, 438), (0, 625), (0, 813)]
    assert [f.out_of_sample for f in folds] == [(438, 625), (625, 813), (813, 1_000)]


@pytest.mark.parametrize("bars", [20, 97, 1_000, 45_031])
@pytest.mark.parametrize("folds", [1, 2, 5])
@pytest.mark.parametrize("anchored", [False, True])
def test_out_of_sample_always_follows_in_sample_and_tiles_the_end(
    bars: int, folds: int, anchored: bool
) -> None:
    result = split(bars, WalkForward(folds=folds, in_sample=0.6, anchored=anchored))
    assert result[-1].out_of_sample[1] == bars
    for before, after in itertools.pairwise(result):
        assert before.out_of_sample[1] == after.out_of_sample[0]
    for fold in result:
        assert fold.in_sample[1] == fold.out_of_sample[0]
        assert fold.in_sample[0] < fold.in_sample[1] < fold.out_of_sample[1]


def test_too_many_folds_for_the_data_are_refused() -> None:
    with pytest.raises(CommandRejected, match="20 folds over 30 bars"):
        split(30, WalkForward(folds=20, in_sample=0.7))
