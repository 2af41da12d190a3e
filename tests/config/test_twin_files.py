"""The twin's YAML files: the shipped ones load; a bad one is refused naming file and line."""

from __future__ import annotations

import pytest

from config.catalog import ConfigFileError
from config.twin_files import load_backends, model_for, read_dir

SHIPPED = read_dir()


def test_the_shipped_backends_load():
    backends = load_backends(SHIPPED)
    assert {b: backends[b].device.num_qubits for b in backends} == {
        "ibm_jakarta_like": 7, "line_5": 5, "heavy_hex_27": 27, "square_64": 64, "square_100": 100,
    }  # fmt: skip
    jakarta = backends["ibm_jakarta_like"].device
    assert jakarta.coupling_map == ((0, 1), (1, 2), (1, 3), (3, 5), (4, 5), (5, 6))
    assert set(jakarta.basis_gates) == {"cx", "id", "rz", "sx", "x"}
    assert "noisy_day" in backends["line_5"].scenarios


@pytest.mark.parametrize(
    ("path", "change", "expected"),
    [
        ("noise/line_5.yaml", ("drift:", "drifft:"), "noise/line_5.yaml:13: drifft: unknown key"),
        ("devices/line_5.yaml", ("[cx, id", "[cz, id"), "basis_gates may use only"),
        ("noise/line_5.yaml", ('"3-4"', '"0-4"'), "edge '0-4' is not in the coupling map"),
        ("backends.yaml", ("noise: line_5", "noise: line_6"), "no noise file 'line_6'"),
    ],
)
def test_a_bad_file_is_refused_with_where(path, change, expected):
    files = dict(SHIPPED)
    assert change[0] in files[path]
    files[path] = files[path].replace(change[0], change[1], 1)
    with pytest.raises(ConfigFileError) as err:
        load_backends(files)
    assert expected in str(err.value)


def test_only_known_places_are_config_files():
    with pytest.raises(ConfigFileError):
        model_for("../../etc/passwd")
    with pytest.raises(ConfigFileError):
        model_for("noise/sub/x.yaml")
