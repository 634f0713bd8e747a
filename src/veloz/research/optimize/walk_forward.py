"""Walk-forward splits: optimise on an in-sample window, evaluate the winner on the
out-of-sample window that follows it, then move on.

With `folds` k and `in_sample` fraction f, a window of W bars holds f·W in-sample bars
followed by (1 - f)·W out-of-sample ones, and the k out-of-sample windows tile the end of
the data back to back: N = f·W + k·(1 - f)·W. Rolling windows slide by the out-of-sample
length; anchored ones all start at the first bar and grow. Either way every out-of-sample
bar comes after every bar its parameters were chosen on.
"""

from dataclasses import dataclass
from typing import Annotated

import msgspec

from veloz.model.errors import CommandRejected

# Fewer bars than this cannot hold a warm-up and a trade.
MIN_SEGMENT_BARS = 2


class WalkForward(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    folds: Annotated[int, msgspec.Meta(ge=1, le=100)]
    in_sample: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.7
    anchored: bool = False


@dataclass(frozen=True)
class Fold:
    """Bar indices, end exclusive, of one fold's two windows."""

    number: int  # from 1
    in_sample: tuple[int, int]
    out_of_sample: tuple[int, int]


def split(bars: int, plan: WalkForward) -> list[Fold]:
    """The folds over `bars` bars; CommandRejected when a window would be too short."""
    if not 1 <= plan.folds <= 100:
        raise CommandRejected(f"walk_forward folds must be 1..100, got {plan.folds}")
    if not 0 < plan.in_sample < 1:
        raise CommandRejected(
            f"walk_forward in_sample must be a fraction between 0 and 1, got {plan.in_sample}"
        )
    window = bars / (plan.in_sample + plan.folds * (1 - plan.in_sample))
    first_out = round(plan.in_sample * window)
    out_length = (bars - first_out) / plan.folds
    folds = []
    for index in range(plan.folds):
        out_start = first_out + round(index * out_length)
        out_end = first_out + round((index + 1) * out_length)
        in_start = 0 if plan.anchored else out_start - first_out
        folds.append(Fold(index + 1, (in_start, out_start), (out_start, out_end)))
    shortest = min(
        min(f.in_sample[1] - f.in_sample[0], f.out_of_sample[1] - f.out_of_sample[0]) for f in folds
    )
    if shortest < MIN_SEGMENT_BARS:
        raise CommandRejected(
            f"walk_forward: {plan.folds} folds over {bars} bars leave a window of "
            f"{shortest} bars; use fewer folds or more data"
        )
    return folds
