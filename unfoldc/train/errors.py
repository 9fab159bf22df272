"""Errors the training subsystem reports to users.

Every class here is a user error: the CLI prints its message (no traceback) and exits with 1.
Anything else escaping training is a bug.
"""

from __future__ import annotations


class TrainError(Exception):
    """Base class of training errors whose message is meant for the user."""


class DataError(TrainError):
    """A data file or problem description is unusable (missing arrays, wrong shapes...)."""


class WeightsError(TrainError):
    """A weights file does not fit the network (other spec, other shapes, unreadable)."""


class ConfigError(TrainError):
    """Inconsistent training options (unknown scheme, bad weights, resume mismatch...)."""


class TrainingDiverged(TrainError):
    """The loss became NaN/infinite or exploded; the last good checkpoint was kept."""
