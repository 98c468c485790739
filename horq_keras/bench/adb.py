"""``--target adb[:serial]``: an Android phone over the Android Debug Bridge.

The phone runs LCE's ``lce_benchmark_model`` (release asset
``lce_benchmark_model_android_arm64``): ``--benchmark-binary`` names the local file that
is pushed with the models into ``<device dir>/horq-bench`` (``/data/local/tmp`` by
default, the one place where adb's shell user may run programs), which is removed at
the end. Before anything else, ``adb devices`` must list the phone as ``device``.
"""

import posixpath
import shlex

from horq_keras.bench.targets import MACHINE_SCRIPT, BenchError, Target, run_command, staged

__all__ = ["ADBTarget", "parse_adb_devices", "DEVICES_TIMEOUT"]

#: Seconds ``adb devices`` may take (it starts adb's server when none runs).
DEVICES_TIMEOUT = 30.0

_STATE_HINTS = {
    "unauthorized": "unlock the phone and accept the 'Allow USB debugging?' prompt",
    "offline": "reconnect the cable or restart adb (adb kill-server)",
    "no permissions": "fix the USB udev rules for your user (see adb's documentation)",
}


def parse_adb_devices(text):
    """``{serial: state}`` from the output of ``adb devices``.

    Format (Android's adb documentation): a ``List of devices attached`` header, then one
    ``SERIAL<TAB>STATE`` line per device, STATE being ``device`` when usable, or
    ``offline``, ``unauthorized``, ``no permissions ...``; lines starting with ``*`` are
    messages from the adb server.
    """
    devices = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue
        serial, _, state = line.partition("\t") if "\t" in line else line.partition(" ")
        devices[serial.strip()] = state.strip()
    return devices


class ADBTarget(Target):
    """An Android device: files go to ``<device_dir>/horq-bench``, removed at the end."""

    def __init__(self, spec, options):
        super().__init__(spec, options)
        self.serial = spec.serial
        self.workdir = posixpath.join(options.device_dir, "horq-bench")
        self._created = False
        self._started_server = False

    def _adb(self, *args, what):
        return run_command(["adb", "-s", self.serial, *args], timeout=self.options.timeout,
                           what=what)

    def _pick_device(self):
        result = run_command(["adb", "devices"], timeout=min(self.options.timeout, DEVICES_TIMEOUT),
                             what="listing Android devices (adb devices)")
        # adb starts its server daemon when none runs, and says so; bench stops it at the end.
        self._started_server = "daemon started successfully" in result.stdout + result.stderr
        if result.returncode != 0:
            raise BenchError(f"`adb devices` failed (exit status {result.returncode}): "
                             f"{result.stderr.strip()[-500:]}")
        devices = parse_adb_devices(result.stdout)
        ready = [serial for serial, state in devices.items() if state == "device"]
        if self.serial is None:
            if not devices:
                raise BenchError(
                    "no Android device attached: `adb devices` lists none. Connect a phone "
                    "with USB debugging enabled (Settings > Developer options), or use "
                    "`adb connect HOST:PORT` for wireless debugging, then retry."
                )
            if len(ready) != 1:
                listing = ", ".join(f"{serial} ({state})" for serial, state in devices.items())
                raise BenchError(
                    f"`--target adb` needs exactly one usable device; `adb devices` lists: "
                    f"{listing}. Name one with --target adb:SERIAL."
                )
            return ready[0]
        if self.serial not in devices:
            raise BenchError(
                f"Android device {self.serial!r} is not attached; `adb devices` lists: "
                f"{', '.join(devices) or 'none'}."
            )
        state = devices[self.serial]
        if state != "device":
            hint = next((h for key, h in _STATE_HINTS.items() if state.startswith(key)), "")
            raise BenchError(f"Android device {self.serial!r} is {state!r}, not ready: {hint}.")
        return self.serial

    def open(self):
        self.serial = self._pick_device()
        script = f"mkdir -p {shlex.quote(self.workdir)} && echo workdir=ok; {MACHINE_SCRIPT}"
        result = self._adb("shell", script, what="connecting")
        self._read_machine(result, lambda workdir: workdir == "ok",
                           f"cannot create {self.workdir} on the device (set --device-dir to "
                           f"a writable directory)")
        self._created = True

    def push(self, files):
        with staged(files) as paths:
            result = self._adb("push", *paths, self.workdir + "/", what="pushing files")
        if result.returncode != 0:
            raise BenchError(f"{self.spec}: adb push failed: {result.stderr.strip()[-500:]}")
        return {name: posixpath.join(self.workdir, name) for name in files}

    def run(self, argv, what):
        return self._adb("shell", shlex.join(argv), what=what)

    def close(self):
        try:
            if self._created:
                self._created = False
                result = self._adb("shell", shlex.join(["rm", "-rf", self.workdir]),
                                   what="removing the work directory")
                self._check_removed(result, self.workdir)
        finally:
            if self._started_server:
                self._started_server = False
                run_command(["adb", "kill-server"], timeout=DEVICES_TIMEOUT,
                            what="stopping the adb server that bench started")
