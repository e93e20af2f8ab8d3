"""Errors whose messages are meant for the user: they name the file and what was expected."""
from __future__ import annotations


class BrainITError(Exception):
    """Base class: the CLI prints the message and exits with status 2, the app shows it."""


class DataFormatError(BrainITError, ValueError):
    """A data file is missing, malformed, or has the wrong shape or values."""


class MissingWeightsError(BrainITError, FileNotFoundError):
    """Pretrained weights needed by a component are not on this machine."""


class CheckpointError(BrainITError, ValueError):
    """A checkpoint is missing, corrupt, or does not match the code's configuration."""


class UnknownSubjectError(BrainITError, KeyError):
    """A subject name that the dataset or run does not hold (a ``KeyError`` too, for dict-like use)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NonFiniteLossError(BrainITError, FloatingPointError):
    """Training met a NaN or inf loss; it stopped before the step, and the checkpoints on disk are the last good ones."""


def check_loss(value: float, where: str, resume: str = "") -> float:
    """Return ``value`` when it is finite, else raise :class:`NonFiniteLossError`.

    Parameters
    ----------
    value : float
        A loss (or a validation metric) as a Python float.
    where : str
        What was being trained and when (``"BIT semantic, epoch 3, batch 7"``).
    resume : str
        What keeps the last good state, added to the message (``"bit_semantic_state (epoch 2)"``).

    Raises
    ------
    NonFiniteLossError
    """
    if value == value and abs(value) != float("inf"):
        return value
    kept = f"; the last good state is kept ({resume})" if resume else "; nothing was saved from this step on"
    raise NonFiniteLossError(f"{where}: the loss is {value}; stopped{kept}. Check the data for NaN or inf values "
                             "(or lower the learning rate), then train again with --resume")
