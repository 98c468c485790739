"""The Keras callbacks of a ``horq-keras train`` stage: a stop at a non-finite loss,
per-epoch atomic checkpoint, ``history.csv`` over every resume, the stage's end before
its backup is removed.

:func:`make_callbacks` puts them in the order that keeps the history, the stage's
result and ``BackupAndRestore``'s backup consistent whenever the run is interrupted.
"""

import csv
import io
import math
import time
import warnings

import h5py
import tensorflow as tf

from horq_keras.files import atomic_write_bytes, atomic_write_text

__all__ = ["EpochCheckpoint", "FinishStage", "HistoryCSV", "NonFiniteLoss",
           "StopOnNonFiniteLoss", "make_callbacks", "save_model_atomic"]


def save_model_atomic(model, path):
    """Save ``model`` as HDF5, atomically (written in memory, then put in place).

    HDF5 is the run's format on purpose (``convert``, ``verify`` and larq load it), so
    tf_keras' advice to use another format is not shown to the user.
    """
    buffer = io.BytesIO()
    with warnings.catch_warnings(), h5py.File(buffer, "w") as h5_file:
        warnings.filterwarnings("ignore", "You are saving your model as an HDF5 file",
                                UserWarning)
        model.save(h5_file)
    atomic_write_bytes(path, buffer.getvalue())


class NonFiniteLoss(ValueError):
    """The training loss became NaN or infinite (exit code 2)."""


class StopOnNonFiniteLoss(tf.keras.callbacks.Callback):
    """Raise :class:`NonFiniteLoss` at the first batch whose loss is not finite.

    First in the callbacks: ``fit`` stops before the epoch's checkpoint, history row and
    backup are written, so they keep the last good epoch.
    """

    def __init__(self, checkpoint):
        super().__init__()
        self.checkpoint, self.epoch = checkpoint, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            kept = (f"the model of the last good epoch is kept in {self.checkpoint}"
                    if self.checkpoint.is_file() else "no epoch had finished")
            raise NonFiniteLoss(f"training stopped: the loss became {loss} in epoch "
                                f"{self.epoch + 1}, batch {batch + 1}; {kept}. Try a lower "
                                f"--learning-rate, or check the data.")


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Save ``model`` after every epoch (atomically): a loadable model of the last epoch."""

    def __init__(self, path, model):
        super().__init__()
        self.path, self.saved_model = path, model

    def on_epoch_end(self, epoch, logs=None):
        save_model_atomic(self.saved_model, self.path)


class HistoryCSV(tf.keras.callbacks.Callback):
    """``history.csv``, one row per finished epoch with its metrics and its wall time
    (``seconds``, validation included, in the process that finished the epoch; the part
    of an epoch that an interrupt lost is not counted), rewritten atomically every epoch.

    A resumed run starts at the epoch after its backup; rows of later epochs (written
    before an interrupt that the backup did not see) are dropped, and the earlier rows
    are kept, so :meth:`history` and :meth:`seconds` describe the whole run however
    often it was resumed. Placed before ``BackupAndRestore``: if the file cannot be
    written, the epoch is not backed up either, so the history and the backup never
    disagree.
    """

    def __init__(self, path):
        super().__init__()
        self.path, self.rows, self.epoch_start = path, [], None

    def on_epoch_begin(self, epoch, logs=None):
        if self.epoch_start is None:  # the first epoch of this process
            if self.path.is_file():
                with open(self.path, newline="") as handle:
                    self.rows = [row for row in csv.DictReader(handle)
                                 if int(row["epoch"]) < epoch]
        self.epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()},
                          "seconds": time.perf_counter() - self.epoch_start})
        text = io.StringIO()
        writer = csv.DictWriter(text, self._columns(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, text.getvalue())

    def history(self):
        """``{metric: [value of each finished epoch]}`` over the whole run."""
        metrics = [key for key in self._columns() if key not in ("epoch", "seconds")]
        return {metric: [float(row[metric]) for row in self.rows] for metric in metrics}

    def _columns(self):
        return list(dict.fromkeys(key for row in self.rows for key in row))

    def seconds(self):
        """Wall time of the run's finished epochs, summed over every resume (a row
        written before the ``seconds`` column existed counts 0)."""
        return sum(float(row.get("seconds") or 0.0) for row in self.rows)


class FinishStage(tf.keras.callbacks.Callback):
    """Call ``finish(epochs_run, history)`` when ``fit`` ends, before
    ``BackupAndRestore`` deletes its backup: the stage's result is saved before its
    backup is gone, so an interrupt at any point leaves one or the other.
    ``epochs_run`` are the epochs this ``fit`` trained (0-based; a resumed run starts
    after its backup); ``history`` is the :class:`HistoryCSV` of the whole run."""

    def __init__(self, finish, history):
        super().__init__()
        self.finish, self.history_csv = finish, history

    def on_train_end(self, logs=None):
        self.finish(self.model.history.epoch, self.history_csv)


def make_callbacks(stage_dir, model, tensorboard=None, finish=None, backup=None):
    """A stop at a non-finite loss, history (atomic), the stage's end, backup state
    (``backup``, default ``BackupAndRestore`` in ``stage_dir/backup``), per-epoch
    checkpoint, TensorBoard.

    The order matters: Keras calls callbacks in list order, so the history row and the
    stage's result are written before the backup of the same epoch (or its removal).
    """
    history = HistoryCSV(stage_dir / "history.csv")
    callbacks = [StopOnNonFiniteLoss(stage_dir / "checkpoint.h5"), history]
    if finish is not None:
        callbacks.append(FinishStage(finish, history))
    callbacks += [
        backup or tf.keras.callbacks.BackupAndRestore(str(stage_dir / "backup")),
        EpochCheckpoint(stage_dir / "checkpoint.h5", model),
    ]
    if tensorboard is not None:
        callbacks.append(tf.keras.callbacks.TensorBoard(str(tensorboard)))
    return callbacks
