"""How the points to evaluate are chosen: every point of a grid, random draws, or Optuna's
TPE sampler. Each search hands out batches (`ask`) and hears their scores back (`tell`) in
the order it gave them, so a seed gives the same points however many workers evaluate them.

Optuna asks `OPTUNA_BATCH` trials at a time from the same model and is told all their
scores, in trial order, before the next batch: a fixed batch, not the number of workers,
so that one, two or twenty workers see the same study.
"""

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from veloz.model.errors import CommandRejected
from veloz.research.optimize.space import ParameterSpace, points_key

OPTUNA_BATCH = 8
# Draws (random) or asks (Optuna) allowed per wanted trial before giving up on more: the
# valid part of a space (fast < slow) may be small or already used up.
_ATTEMPTS_PER_TRIAL = 50


class Method(StrEnum):
    GRID = "grid"
    RANDOM = "random"
    OPTUNA = "optuna"


class Search(Protocol):
    prunes: bool  # whether a batch is first scored on the first half of the period

    def ask(self) -> list[dict[str, Any]]:
        """The next points to evaluate (searched values only); empty when done."""
        ...

    def prune(self, early: Sequence[float | None]) -> list[bool]:
        """Given the last batch's scores on the first half of the period, which trials stop
        there (True)."""
        ...

    def tell(self, scores: Sequence[float | None]) -> None:
        """The scores of the last batch, in its order (None: the trial does not count)."""
        ...


class GridSearch:
    prunes = False

    def __init__(self, points: Sequence[dict[str, Any]]) -> None:
        self._points: list[dict[str, Any]] | None = list(points)

    def ask(self) -> list[dict[str, Any]]:
        points, self._points = self._points or [], None
        return points

    def prune(self, early: Sequence[float | None]) -> list[bool]:
        return [False] * len(early)

    def tell(self, scores: Sequence[float | None]) -> None:
        pass


class RandomSearch:
    """`trials` distinct valid points drawn uniformly with numpy's PCG64 from `seed`."""

    prunes = False

    def __init__(self, space: ParameterSpace, trials: int, seed: int) -> None:
        self._space, self._trials, self._seed = space, trials, seed
        self._done = False

    def ask(self) -> list[dict[str, Any]]:
        if self._done:
            return []
        self._done = True
        rng = np.random.default_rng(self._seed)
        seen: set[tuple[str, ...]] = set()
        points: list[dict[str, Any]] = []
        for _ in range(self._trials * _ATTEMPTS_PER_TRIAL):
            if len(points) == self._trials:
                break
            point = {d.name: d.draw(rng) for d in self._space.dimensions}
            key = points_key(point, self._space.names)
            if key in seen:
                continue
            seen.add(key)
            try:
                self._space.check(point)
            except CommandRejected:
                continue
            points.append(point)
        return points

    def prune(self, early: Sequence[float | None]) -> list[bool]:
        return [False] * len(early)

    def tell(self, scores: Sequence[float | None]) -> None:
        pass


class OptunaSearch:
    """TPE (`TPESampler(seed=seed)`), maximising, with Optuna's median pruner: each trial
    reports its score on the first half of the period, and one below the median of the
    trials before it at that point stops there (from the second batch on). A combination
    the strategy refuses is told FAILED and not counted; a trial without a score, pruned
    or not, is told PRUNED."""

    prunes = True

    def __init__(self, space: ParameterSpace, trials: int, seed: int) -> None:
        # Imported here: optuna takes ~0.5 s to import and only this method needs it.
        import optuna  # noqa: PLC0415

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self._optuna = optuna
        self._space, self._trials = space, trials
        self._study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=OPTUNA_BATCH, n_warmup_steps=0),
        )
        self._asked = 0
        self._attempts = 0
        self._pending: list[Any] = []

    def ask(self) -> list[dict[str, Any]]:
        failed = self._optuna.trial.TrialState.FAIL
        points: list[dict[str, Any]] = []
        budget = self._trials * _ATTEMPTS_PER_TRIAL
        while len(points) < min(OPTUNA_BATCH, self._trials - self._asked):
            if self._attempts >= budget:
                break
            self._attempts += 1
            trial = self._study.ask()
            point = {d.name: d.suggest(trial) for d in self._space.dimensions}
            try:
                self._space.check(point)
            except CommandRejected:
                self._study.tell(trial, state=failed)
                continue
            self._pending.append(trial)
            points.append(point)
        self._asked += len(points)
        return points

    def prune(self, early: Sequence[float | None]) -> list[bool]:
        stop = []
        for trial, value in zip(self._pending, early, strict=True):
            if value is not None:  # an unscored half says nothing: the trial goes on
                trial.report(value, step=0)
            stop.append(value is not None and trial.should_prune())
        return stop

    def tell(self, scores: Sequence[float | None]) -> None:
        pruned = self._optuna.trial.TrialState.PRUNED
        for trial, score in zip(self._pending, scores, strict=True):
            if score is None:
                self._study.tell(trial, state=pruned)
            else:
                self._study.tell(trial, score)
        self._pending = []


def new_search(
    method: Method,
    space: ParameterSpace,
    *,
    grid: Sequence[dict[str, Any]],
    trials: int | None,
    seed: int,
) -> Search:
    if method is Method.GRID:
        return GridSearch(grid)
    assert trials is not None
    if method is Method.RANDOM:
        return RandomSearch(space, trials, seed)
    return OptunaSearch(space, trials, seed)
