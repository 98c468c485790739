"""Where ``horq-keras bench`` runs: the ``--target`` string, bounded commands, machine facts.

A target is ``local``, ``ssh://[user@]host[:port]`` or ``adb[:serial]``. Each kind is a
class (:mod:`.local`, :mod:`.ssh`, :mod:`.adb`, built on :class:`Target` here) with the
same small interface; :func:`horq_keras.bench.registry.make_target` picks the class of a
``--target`` string. A target is used as a context manager::

    with make_target(spec, options) as target:    # connects, makes a work directory
        target.machine                           # dict of facts about the machine
        paths = target.push({"model.tflite": path})  # copies; {name: path there}
        result = target.run(argv, "what it does")    # runs there (CompletedProcess)
    # leaving the block removes the work directory

Every command runs as an argument list (no local shell) with a time limit; any failure
becomes a :class:`BenchError` whose message says what failed and how to fix it.
"""

import contextlib
import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import urllib.parse
import warnings

from horq_keras._checks import positive_integer

__all__ = [
    "BenchError",
    "Target",
    "TargetOptions",
    "TargetSpec",
    "TARGET_FORMS",
    "MACHINE_SCRIPT",
    "parse_target",
    "parse_machine",
    "run_command",
    "staged",
]

#: The accepted forms of ``--target``.
TARGET_FORMS = ("local", "ssh://[user@]host[:port]", "adb", "adb:SERIAL")

# Host names, IP addresses, user names and adb serials: no spaces, no leading "-" (which
# ssh or adb would read as an option).
_NAME = re.compile(r"^[A-Za-z0-9_.:%-]+$")

#: POSIX shell script that prints ``key=value`` facts about the machine it runs on (Linux,
#: Raspberry Pi OS, Android's toybox shell, macOS); unknown facts are simply left out.
MACHINE_SCRIPT = "; ".join([
    'echo "system=$(uname -s)"',
    'echo "release=$(uname -r)"',
    'echo "machine=$(uname -m)"',
    'echo "hostname=$(uname -n)"',
    'echo "cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc 2>/dev/null)"',
    "[ -r /proc/device-tree/model ] && echo \"board=$(tr -d '\\000' < /proc/device-tree/model)\"",
    "grep -m1 -E '^(model name|Hardware|Model)[[:space:]]*:' /proc/cpuinfo 2>/dev/null"
    " | sed 's/^[^:]*:[[:space:]]*/cpu=/'",
    '[ "$(uname -s)" = Darwin ] && echo "cpu=$(sysctl -n machdep.cpu.brand_string)"',
    "command -v getprop >/dev/null 2>&1"
    ' && echo "android_device=$(getprop ro.product.manufacturer) $(getprop ro.product.model)"'
    ' && echo "android_version=$(getprop ro.build.version.release)"',
    "true",
])


class BenchError(RuntimeError):
    """A benchmark could not run: target unreachable, authentication failed, runner or
    benchmark binary missing, a model the runner cannot load, a command timed out."""


@dataclasses.dataclass(frozen=True)
class TargetSpec:
    """A parsed ``--target``: ``kind`` is ``"local"``, ``"ssh"`` or ``"adb"``."""

    kind: str
    host: str = None
    user: str = None
    port: int = None
    serial: str = None

    def __str__(self):
        if self.kind == "ssh":
            host = f"[{self.host}]" if ":" in self.host else self.host
            user = f"{self.user}@" if self.user else ""
            port = f":{self.port}" if self.port else ""
            return f"ssh://{user}{host}{port}"
        if self.kind == "adb":
            return f"adb:{self.serial}" if self.serial else "adb"
        return "local"


def _bad_target(spec, why):
    return ValueError(
        f"`--target` must be one of {', '.join(TARGET_FORMS)}; got {spec!r} ({why})."
    )


def _checked_name(value, spec, what):
    if not _NAME.match(value) or value.startswith("-"):
        raise _bad_target(spec, f"invalid {what} {value!r}")
    return value


def parse_target(spec):
    """Parse ``--target`` (see :data:`TARGET_FORMS`) into a :class:`TargetSpec`.

    Raises:
        ValueError: naming ``--target`` and the accepted forms.
    """
    if not isinstance(spec, str) or not spec:
        raise _bad_target(spec, "empty")
    if spec == "local":
        return TargetSpec("local")
    if spec == "adb":
        return TargetSpec("adb")
    if spec.startswith("adb:"):
        return TargetSpec("adb", serial=_checked_name(spec[4:], spec, "adb serial"))
    if spec.startswith("ssh://"):
        parts = urllib.parse.urlsplit(spec)
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.password:
            raise _bad_target(spec, "only user, host and port may be given")
        try:
            port = parts.port
        except ValueError as error:
            raise _bad_target(spec, str(error)) from None
        if not parts.hostname:
            raise _bad_target(spec, "no host")
        user = _checked_name(parts.username, spec, "user") if parts.username else None
        return TargetSpec("ssh", host=_checked_name(parts.hostname, spec, "host"),
                          user=user, port=port)
    raise _bad_target(spec, "unknown kind")


def parse_machine(text):
    """Dict of the ``key=value`` lines printed by :data:`MACHINE_SCRIPT` (empty values dropped)."""
    facts = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier() and value.strip():
            facts[key] = value.strip()
    return facts


def run_command(argv, *, timeout, what):
    """Run ``argv`` (a list, no shell) and capture its text output, within ``timeout`` s.

    Raises:
        BenchError: when the program is not installed or the command outlives ``timeout``.
    """
    try:
        return subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            errors="replace", timeout=timeout, check=False,
        )
    except FileNotFoundError:
        raise BenchError(f"{what}: {argv[0]!r} is not installed or not on PATH.") from None
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"{what} timed out after {timeout:g} s (raise --timeout if the model is slow): "
            f"{shlex.join(argv)}"
        ) from None


@dataclasses.dataclass(frozen=True)
class TargetOptions:
    """How to reach a target and how long to wait for it.

    Attributes:
        timeout: limit in seconds of every command (copy, run, clean-up), > 0.
        connect_timeout: ssh ``ConnectTimeout`` in seconds (TCP connect and banner), >= 1.
        identity: private key file for ssh (``-i``; the path only, never its contents).
        ssh_options: extra ``Key=Value`` ssh options (``-o``); host-key checking and
            batch mode cannot be turned off.
        remote_python: Python interpreter on an ssh target that runs the runner.
        device_dir: writable, executable directory on an adb target.
    """

    timeout: float = 300.0
    connect_timeout: int = 10
    identity: str = None
    ssh_options: tuple = ()
    remote_python: str = "python3"
    device_dir: str = "/data/local/tmp"

    def __post_init__(self):
        if not self.timeout > 0:
            raise ValueError(f"`timeout` must be a number of seconds > 0; got {self.timeout!r}.")
        positive_integer(self.connect_timeout, "connect_timeout", "seconds")
        if not self.remote_python or self.remote_python.startswith("-"):
            raise ValueError(
                f"`remote_python` must name a Python interpreter; got {self.remote_python!r}."
            )
        if not self.device_dir.startswith("/"):
            raise ValueError(
                f"`device_dir` must be an absolute path on the device; got {self.device_dir!r}."
            )


class Target:
    """Base of the targets: context manager over :meth:`open` / :meth:`close`.

    Subclasses set ``machine`` (dict) in :meth:`open` and implement :meth:`push` and
    :meth:`run`; ``python`` is the interpreter that runs the Python runner there (``None``
    where there is none).
    """

    python = None

    def __init__(self, spec, options):
        self.spec = spec
        self.options = options
        self.machine = {}

    def __enter__(self):
        try:
            self.open()
        except BaseException:
            self.__exit__(None, None, None)  # what open() left behind (adb's server)
            raise
        return self

    def __exit__(self, *exc_info):
        try:
            self.close()
        except BenchError as error:  # the measurements stand; say what was left behind
            warnings.warn(f"clean-up on {self.spec} failed: {error}", RuntimeWarning, stacklevel=2)

    def open(self):
        raise NotImplementedError

    def _read_machine(self, result, workdir_ok, failure):
        """Keep the facts :data:`MACHINE_SCRIPT` printed as ``machine``; return the
        ``workdir`` fact, or raise ``BenchError`` (``failure`` and the output) when
        ``workdir_ok(workdir)`` is false."""
        facts = parse_machine(result.stdout)
        workdir = facts.pop("workdir", None)
        if not workdir or not workdir_ok(workdir):
            output = (result.stdout + result.stderr).strip()[-500:]
            raise BenchError(
                f"{self.spec}: {failure} (exit status {result.returncode}): {output}")
        self.machine = facts
        return workdir

    @staticmethod
    def _check_removed(result, workdir):
        if result.returncode != 0:
            raise BenchError(f"could not remove {workdir}: {result.stderr.strip()}")

    def close(self):
        """Remove what :meth:`push` copied (nothing to do by default)."""

    def push(self, files):
        """Copy ``{name: local path}`` to the target; return ``{name: path there}``."""
        raise NotImplementedError

    def run(self, argv, what):
        """Run ``argv`` on the target; return the ``CompletedProcess`` (any exit status)."""
        raise NotImplementedError


@contextlib.contextmanager
def staged(files):
    """Yield local copies of ``{name: path}`` named ``name`` in a temporary directory.

    Copy tools (scp, adb push) keep a source's own file name; staging gives every file
    the name it must have on the target, whatever it is called here.
    """
    with tempfile.TemporaryDirectory(prefix="horq-bench-") as directory:
        paths = []
        for name, path in files.items():
            paths.append(os.path.join(directory, name))
            shutil.copyfile(path, paths[-1])
        yield paths
