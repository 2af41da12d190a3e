"""The twin's configuration for the command side and the runner: the shipped YAML files
plus a project's written ones, parsed into backends (cached by content)."""

from __future__ import annotations

import hashlib
from functools import lru_cache

from commands.twin import TwinConfigError
from config.catalog import ConfigFileError
from config.twin_files import TWIN_CONFIG, load_backends, model_for, read_dir
from twin.circuits import CircuitError, parse
from twin.controller import ControllerError, check_command
from twin.device import Backend


def digest(files: dict[str, str]) -> str:
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return h.hexdigest()


_LOADED: dict[str, dict[str, Backend]] = {}


def backends_for(files: dict[str, str]) -> dict[str, Backend]:
    key = digest(files)
    if key not in _LOADED:
        try:
            _LOADED[key] = load_backends(files)
        except ConfigFileError as err:
            raise TwinConfigError("invalid_config", str(err)) from None
        if len(_LOADED) > 64:  # a few past configurations are enough
            _LOADED.pop(next(iter(_LOADED)))
    return _LOADED[key]


@lru_cache(maxsize=4096)
def _width(circuit: str) -> int:
    return parse(circuit).num_qubits


class TwinCatalog:
    """commands.ports.TwinPort over config/twin/ (or another directory)."""

    def __init__(self, root=TWIN_CONFIG) -> None:
        self.files = read_dir(root)
        backends_for(self.files)  # a bad shipped file stops the start

    def base_files(self) -> dict[str, str]:
        return self.files

    def check_files(self, files: dict[str, str]) -> None:
        for path in files:
            try:
                model_for(path)
            except ConfigFileError as err:
                raise TwinConfigError("invalid_config_path", str(err)) from None
        backends_for(files)

    def backend(self, files: dict[str, str], backend_id: str) -> Backend:
        backends = backends_for(files)
        if backend_id not in backends:
            raise TwinConfigError(
                "unknown_backend",
                f"unknown backend '{backend_id}'; known: {sorted(backends)}",
                not_found=True,
            )
        return backends[backend_id]

    def check_controller(self, files, backend_id, command_type, payload) -> None:
        backend = self.backend(files, backend_id)
        try:
            check_command(backend, command_type, payload)
        except ControllerError as err:
            raise TwinConfigError(err.code, err.message) from None

    def check_job(self, files, backend_id, circuits, shots) -> None:
        backend = self.backend(files, backend_id)
        limits = backend.limits
        if shots < 1 or shots > limits.max_shots:
            raise TwinConfigError(
                "invalid_shots", f"shots must be between 1 and {limits.max_shots} (max_shots)"
            )
        if len(circuits) > limits.max_circuits_per_job:
            raise TwinConfigError(
                "too_many_circuits",
                f"{len(circuits)} circuits; a job may have at most"
                f" {limits.max_circuits_per_job} (max_circuits_per_job)",
            )
        for i, circuit in enumerate(circuits):
            try:
                width = _width(circuit) if isinstance(circuit, str) else parse(circuit).num_qubits
            except CircuitError as err:
                raise TwinConfigError(err.code, f"circuits[{i}]: {err.message}") from None
            except Exception as err:  # noqa: BLE001 - anything else the parser hits is bad input
                raise TwinConfigError("invalid_circuit", f"circuits[{i}]: {err}") from None
            if width > backend.device.num_qubits:
                raise TwinConfigError(
                    "too_many_qubits",
                    f"circuits[{i}] uses {width} qubits; {backend_id} has"
                    f" {backend.device.num_qubits}",
                )
