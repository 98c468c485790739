"""``--target ssh://[user@]host[:port]``: a Raspberry Pi or other board reached over OpenSSH.

Every ``ssh``/``scp`` call runs with ``BatchMode=yes`` (no password or passphrase
prompts: keys come from ``--identity`` or ssh-agent), ``StrictHostKeyChecking=yes`` (the
board's host key must already be in ``known_hosts``), ``ConnectTimeout`` and an overall
time limit. These come first on the command line, and ssh keeps the first value it
reads for an option, so nothing later can loosen them; ``--ssh-option`` refuses to try.

A command runs under a remote shell that records its own process group (sshd starts
every session in its own) and the command's in the work directory, and forgets them when
the command ends; the command runs under the board's ``timeout`` (when it has one) a
little past ``--timeout``. When the local side gives up (time-out, Ctrl-C), :meth:`SSHTarget.close`
kills that process group first and only then removes the work directory, so no runner is
left measuring on the board; if this process dies outright, the remote ``timeout`` ends it.
"""

import math
import os
import re
import shlex

from horq_keras.bench.targets import MACHINE_SCRIPT, BenchError, Target, run_command, staged

__all__ = ["SSHTarget", "check_ssh_option", "LOCKED_OPTIONS"]

#: ssh options fixed by horq-keras bench that ``--ssh-option`` may not set.
LOCKED_OPTIONS = ("batchmode", "stricthostkeychecking")

_OPTION = re.compile(r"^([A-Za-z][A-Za-z0-9]*)\s*[= ]\s*(\S.*)$")

# What ssh prints (stderr) when it cannot connect, by cause.
_HOST_KEY = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED")
_AUTH = ("Permission denied", "Too many authentication failures", "no mutual signature")
_UNREACHABLE = (
    "Connection refused", "timed out", "No route to host", "Could not resolve hostname",
    "Network is unreachable", "Connection closed", "Connection reset",
    "kex_exchange_identification",
)

# mktemp's directory pattern; close() only removes a directory that matches it.
_WORKDIR = re.compile(r"^/[^\s'\"]*/horq-bench\.[A-Za-z0-9]{6,}$")

#: File in the work directory holding the process group of the running command.
RUNNING = "running.pgid"
#: Seconds the remote ``timeout`` allows past ``--timeout`` (the local limit acts first).
REMOTE_GRACE = 5


def check_ssh_option(option):
    """Validate one ``--ssh-option`` (``Key=Value``); return it as ``Key=Value``.

    Raises:
        ValueError: for a malformed option or one of :data:`LOCKED_OPTIONS`.
    """
    match = _OPTION.match(option or "")
    if not match:
        raise ValueError(f"`--ssh-option` must look like Key=Value (an ssh -o option); got {option!r}.")
    key, value = match.groups()
    if key.lower() in LOCKED_OPTIONS:
        raise ValueError(
            f"`--ssh-option` may not set {key}: batch mode and host-key checking stay on. "
            "Add the board's host key to known_hosts instead (for example "
            "`ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts`, after checking its fingerprint)."
        )
    return f"{key}={value}"


class SSHTarget(Target):
    """A board over ssh; work files live in a ``mktemp -d`` directory removed at the end."""

    def __init__(self, spec, options):
        super().__init__(spec, options)
        if options.identity is not None and not os.path.isfile(options.identity):
            raise ValueError(f"`--identity` must be a private key file; {options.identity!r} is not a file.")
        self._user_options = [check_ssh_option(option) for option in options.ssh_options]
        self.python = options.remote_python
        self.workdir = None

    # -- command lines ---------------------------------------------------------------

    def _options(self):
        options = [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"ConnectTimeout={self.options.connect_timeout}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
        ]
        if self.options.identity is not None:
            options += ["-i", self.options.identity, "-o", "IdentitiesOnly=yes"]
        for option in self._user_options:
            options += ["-o", option]
        return options

    def _destination(self):
        return f"{self.spec.user}@{self.spec.host}" if self.spec.user else self.spec.host

    def _ssh(self, command, what):
        argv = ["ssh", *self._options()]
        if self.spec.port:
            argv += ["-p", str(self.spec.port)]
        result = run_command([*argv, "--", self._destination(), command],
                             timeout=self.options.timeout, what=what)
        if result.returncode == 255:  # ssh's own failure, not the remote command's
            raise self._connection_error(result.stderr, what)
        return result

    def _connection_error(self, stderr, what):
        message = " ".join(line.strip() for line in stderr.strip().splitlines()[-3:])
        where = f"{self.spec} ({what})"
        if any(text in stderr for text in _HOST_KEY):
            return BenchError(
                f"{where}: host key verification failed — the board's host key is not in "
                "known_hosts or has changed; host-key checking stays on. Check the key's "
                "fingerprint on the board and add it (ssh-keyscan -p PORT HOST >> "
                f"~/.ssh/known_hosts, or --ssh-option UserKnownHostsFile=FILE). ssh said: {message}"
            )
        if any(text in stderr for text in _AUTH):
            return BenchError(
                f"{where}: authentication failed — no key was accepted (batch mode: no "
                "passwords or passphrase prompts). Pass --identity KEYFILE or load the key "
                f"into ssh-agent, and check authorized_keys on the board. ssh said: {message}"
            )
        if any(text in stderr for text in _UNREACHABLE):
            return BenchError(f"{where}: cannot reach the board. ssh said: {message}")
        return BenchError(f"{where}: ssh failed. ssh said: {message or '(nothing)'}")

    # -- Target interface ------------------------------------------------------------

    def open(self):
        script = (
            'set -e; d=$(mktemp -d "${TMPDIR:-/tmp}/horq-bench.XXXXXX"); echo "workdir=$d"; set +e; '
            + MACHINE_SCRIPT
        )
        result = self._ssh(script, "connecting")
        self.workdir = self._read_machine(
            result, lambda workdir: result.returncode == 0 and _WORKDIR.match(workdir),
            "could not create a work directory with mktemp")

    def push(self, files):
        argv = ["scp", "-q", *self._options()]
        if self.spec.port:
            argv += ["-P", str(self.spec.port)]
        host = f"[{self.spec.host}]" if ":" in self.spec.host else self.spec.host
        user = f"{self.spec.user}@" if self.spec.user else ""
        with staged(files) as paths:
            result = run_command([*argv, "--", *paths, f"{user}{host}:{self.workdir}/"],
                                 timeout=self.options.timeout, what="copying files")
        if result.returncode != 0:
            raise self._connection_error(result.stderr, "copying files with scp")
        return {name: f"{self.workdir}/{name}" for name in files}

    def run(self, argv, what):
        pgid = shlex.quote(f"{self.workdir}/{RUNNING}")
        limit = math.ceil(self.options.timeout) + REMOTE_GRACE
        command = shlex.join(argv)
        # The shell's pid (its group: sshd's session) and the command's (GNU timeout
        # makes its own group) are recorded while the command runs.
        script = (
            f"echo $$ > {pgid}; "
            f"if command -v timeout >/dev/null 2>&1; then timeout -s KILL {limit} {command} & "
            f"else {command} & fi; c=$!; echo $c >> {pgid}; wait $c; status=$?; "
            f"rm -f {pgid}; exit $status"
        )
        return self._ssh(script, what)

    def close(self):
        if self.workdir is not None:
            workdir, self.workdir = self.workdir, None
            pgid = shlex.quote(f"{workdir}/{RUNNING}")
            # A command cut short (time-out, Ctrl-C) left its process group: kill it, then
            # remove the work directory.
            script = (
                f"if [ -f {pgid} ]; then for p in $(cat {pgid}); do kill -KILL -- -$p $p "
                f"2>/dev/null; done; fi; {shlex.join(['rm', '-rf', '--', workdir])}"
            )
            result = self._ssh(script, "stopping the runner and removing the work directory")
            self._check_removed(result, workdir)
