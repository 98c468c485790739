"""``--target local``: benchmark on this machine, with this Python for the runner."""

import os
import sys

from horq_keras.bench.targets import MACHINE_SCRIPT, Target, parse_machine, run_command

__all__ = ["LocalTarget"]


class LocalTarget(Target):
    """This machine: files stay where they are; commands run directly (no shell)."""

    python = sys.executable

    def open(self):
        result = run_command(["sh", "-c", MACHINE_SCRIPT], timeout=self.options.timeout,
                             what="describing this machine")
        self.machine = parse_machine(result.stdout)

    def push(self, files):
        return {name: os.path.abspath(path) for name, path in files.items()}

    def run(self, argv, what):
        return run_command(argv, timeout=self.options.timeout, what=what)
