"""The output folder of a training run: checked first, staged, resumable, published by rename.

A folder is a run of this tool when it holds :data:`MARKER`, which the run writes
before anything else and which lists the results it published. A non-empty folder
without it holds someone else's files: it is refused unless ``--overwrite``, and even
then only the run's own result files are replaced there.

A run works in ``OUTPUT/.horq-keras-staging/`` (:data:`STAGING`) and never touches the
results of a previous run in ``OUTPUT/`` until it is complete; it then moves its results
into ``OUTPUT/`` with ``os.replace`` (each file atomically), removes the results of the
previous run that it did not make, and removes the staging folder. ``state.json`` in
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

__all__ = ["MARKER", "RESULTS", "STAGES", "STAGING", "RunDir", "RunDirError"]

#: The file that makes a folder a run of this tool (JSON: the tool, the results published).
MARKER = ".horq-keras-run"
#: The staging folder of an unfinished run, inside the output folder.
STAGING = ".horq-keras-staging"
_TOOL = "horq-keras train"

#: Files a finished run leaves in the output folder (those it made).
RESULTS = ("float_model.h5", "model.h5", "history.csv", "run_config.json", "model.tflite",
           "labels.txt", "report.json")
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
        self.staging = self.output / STAGING

    @property
    def state_path(self):
        return self.staging / "state.json"

    @property
    def marker_path(self):
        return self.output / MARKER

    def marker(self):
        """``{"tool": ..., "results": [...]}`` when the folder is a run of this tool, else None."""
        try:
            marker = json.loads(self.marker_path.read_text())
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) and marker.get("tool") == _TOOL else None

    def state(self):
        """``{"stage": ..., "config": ...}`` of an unfinished run, or None."""
        if not self.state_path.is_file():
            return None
        try:
            state = json.loads(self.state_path.read_text())
        except ValueError:
            state = None
        if not isinstance(state, dict) or state.get("stage") not in STAGES:
            raise RunDirError(f"--output-dir: {self.state_path} is not the state of a "
                              f"{_TOOL} run; move {self.staging} away or choose another "
                              f"--output-dir.")
        return state

    def refuse_inside(self, folder, option):
        """Refuse an output folder inside ``folder``, the data of ``option``."""
        folder = pathlib.Path(folder).resolve()
        if self.output.resolve().is_relative_to(folder):
            raise RunDirError(f"--output-dir: {self.output} is inside the data folder {folder} "
                              f"({option}), where the run's files would be taken as data; "
                              f"choose a folder outside it.")

    def check(self, config, overwrite):
        """Refuse, before any write, what this run cannot do; return True when resuming.

        ``config`` must equal the saved one to resume an unfinished run. A finished
        run (``model.h5`` in the folder) is only replaced with ``overwrite``; so is a
        non-empty folder that is not a run of this tool (:data:`MARKER`).
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
        if self.output.is_dir() and self.marker() is None:
            self._check_foreign(overwrite)
            return False
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

    def _check_foreign(self, overwrite):
        """An existing folder without :data:`MARKER`: empty, or refused unless ``overwrite``."""
        names = sorted(path.name for path in self.output.iterdir())
        if STAGING in names:
            raise RunDirError(f"--output-dir: {self.staging} was not made by a {_TOOL} run in "
                              f"this folder ({MARKER} is missing); move it away or choose "
                              f"another --output-dir.")
        if names and not overwrite:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise RunDirError(f"--output-dir: {self.output} is not empty and is not a {_TOOL} "
                              f"run (it holds {shown}); choose another --output-dir, or pass "
                              f"--overwrite to write the run there (its files "
                              f"{', '.join(RESULTS)} would be replaced).")

    def begin(self, config):
        """Mark the folder as a run, create the staging folder and record the configuration
        (a fresh run)."""
        self.output.mkdir(parents=True, exist_ok=True)
        if self.marker() is None:
            write_json(self.marker_path, {"tool": _TOOL, "results": []})
        self.staging.mkdir(exist_ok=True)
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

        Results of the previous run (listed in :data:`MARKER`) that this run did not
        make (a ``model.tflite`` when this run was not converted) are removed after the
        new files are in place; files the tool did not make are never removed.
        """
        state = self.state()
        if "results" not in state:  # recorded first: a resumed publication moves the rest
            state["results"] = [name for name in RESULTS if (self.staging / name).exists()]
            write_json(self.state_path, state)
        for name in state["results"]:
            if (self.staging / name).exists():
                os.replace(self.staging / name, self.output / name)
        for name in set(self.marker()["results"]) - set(state["results"]):
            (self.output / name).unlink(missing_ok=True)
        write_json(self.marker_path, {"tool": _TOOL, "results": state["results"]})
        shutil.rmtree(self.staging)
