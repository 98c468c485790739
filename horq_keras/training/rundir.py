"""The output folder of a training run: checked first, staged, resumable, published by rename.

A run works in ``OUTPUT/.partial/`` and never touches the results of a previous run
in ``OUTPUT/`` until it is complete; it then moves its results into ``OUTPUT/`` with
``os.replace`` (each file atomically) and removes the staging folder. ``state.json`` in
the staging folder records the stage reached — ``training``, ``trained`` (``model.h5``
saved), ``converted`` (``model.tflite`` and ``report.json`` written) — and the run's
configuration, so an interrupt at any point resumes with the same command: training
from its ``BackupAndRestore`` state, or conversion, or publication.
"""

import json
import os
import pathlib
import shutil

from horq_keras.files import atomic_write_text

__all__ = ["RESULTS", "STAGES", "RunDir", "RunDirError"]

#: Files a finished run leaves in the output folder (those it made).
RESULTS = ("float_model.h5", "model.h5", "history.csv", "run_config.json", "model.tflite",
           "report.json")
#: Stages recorded in ``state.json``, in order.
STAGES = ("training", "trained", "converted")


class RunDirError(ValueError):
    """The output folder cannot take this run; the message names ``--output-dir``."""


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


class RunDir:
    """``--output-dir`` and its staging folder (see the module docstring)."""

    def __init__(self, output_dir):
        self.output = pathlib.Path(output_dir)
        self.staging = self.output / ".partial"

    @property
    def state_path(self):
        return self.staging / "state.json"

    def state(self):
        """``{"stage": ..., "config": ...}`` of an unfinished run, or None."""
        if not self.state_path.is_file():
            return None
        return json.loads(self.state_path.read_text())

    def check(self, config, overwrite):
        """Refuse, before any write, what this run cannot do; return True when resuming.

        ``config`` must equal the saved one to resume an unfinished run. A finished
        run (``model.h5`` in the folder) is only replaced with ``overwrite``.
        """
        if self.output.exists() and not self.output.is_dir():
            raise RunDirError(f"--output-dir: {self.output} exists and is not a directory.")
        existing = self.output
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise RunDirError(f"--output-dir: {existing}, a parent of {self.output}, is not a "
                              f"directory.")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise RunDirError(f"--output-dir: cannot write in {existing}.")
        state = self.state()
        if state is not None:
            if state["config"] != config:
                changed = sorted(key for key in {*config, *state["config"]}
                                 if config.get(key) != state["config"].get(key))
                raise RunDirError(
                    f"--output-dir: {self.output} holds an unfinished run with other options "
                    f"({', '.join(changed)} differ); rerun it with its options (saved in "
                    f"{self.state_path}) to resume, delete {self.staging} to start over, or "
                    f"choose another --output-dir.")
            return True
        if (self.output / "model.h5").exists() and not overwrite:
            raise RunDirError(f"--output-dir: {self.output} already holds a finished run "
                              f"(model.h5); pass --overwrite to replace it (the old files stay "
                              f"until the new run is complete) or choose another --output-dir.")
        return False

    def begin(self, config):
        """Create the staging folder and record the configuration (a fresh run)."""
        self.staging.mkdir(parents=True, exist_ok=True)
        write_json(self.staging / "run_config.json", config)
        self.set_stage("training", config)

    def set_stage(self, stage, config=None):
        config = self.state()["config"] if config is None else config
        write_json(self.state_path, {"stage": stage, "config": config})

    def stage_reached(self, stage):
        state = self.state()
        return state is not None and STAGES.index(state["stage"]) >= STAGES.index(stage)

    def publish(self):
        """Move the results into the output folder (each by rename); drop the staging.

        Results of the previous run that this run did not make (a ``model.tflite``
        when this run was not converted) are removed after the new files are in place.
        """
        state = self.state()
        if "results" not in state:  # recorded first: a resumed publication moves the rest
            state["results"] = [name for name in RESULTS if (self.staging / name).exists()]
            write_json(self.state_path, state)
        for name in state["results"]:
            if (self.staging / name).exists():
                os.replace(self.staging / name, self.output / name)
        for name in RESULTS:
            if name not in state["results"]:
                (self.output / name).unlink(missing_ok=True)
        shutil.rmtree(self.staging)
