"""The rules a task file write meets before anything is recorded, on their own: paths,
Python that must parse and keep its task classes, YAML within its limits, the backend
config's schema, and the default run parameters a config gives runs."""

from __future__ import annotations

import pytest

from adapters.task_files import shipped, shipped_sources
from calibration.tasks import TASKS
from commands.backend_config import offered_tasks, task_defaults
from commands.task_file_rules import (
    HELPER_MODULES,
    MAX_TASK_FILE_BYTES,
    TaskPath,
    parse_python,
    shipped_task_classes,
    task_classes,
    task_path,
)
from commands.task_files import check_content
from domain.errors import DomainError, Kind

CONFIG = "twin/backend.yaml"


def refusal(path: str, content: str = "") -> DomainError:
    with pytest.raises(DomainError) as refused:
        check_content(task_path(path), content)
    return refused.value


def shipped_text(relative: str) -> str:
    return shipped("twin")[relative].content


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../../etc/passwd", "invalid_task_file_path"),
        ("twin/../../etc/passwd", "invalid_task_file_path"),
        ("twin/./tasks.py", "invalid_task_file_path"),
        ("/etc/passwd", "invalid_task_file_path"),
        ("/twin/tasks.py", "invalid_task_file_path"),
        ("twin\\..\\tasks.py", "invalid_task_file_path"),
        ("twin/tasks.py\x00.yaml", "invalid_task_file_path"),
        ("twin//tasks.py", "invalid_task_file_path"),
        ("twin/tasks.py/", "invalid_task_file_path"),
        ("twin/.hidden.py", "invalid_task_file_path"),
        ("twin/a b.py", "invalid_task_file_path"),
        ("twin/%2e%2e/x.py", "invalid_task_file_path"),
        ("twin", "invalid_task_file_path"),
        ("twin/a/b/c/d/e.py", "invalid_task_file_path"),
        ("twin/" + "a" * 200 + ".py", "invalid_task_file_path"),
        ("qubex/tasks.py", "unknown_task_backend"),
        ("Twin/tasks.py", "unknown_task_backend"),
        ("twin/tasks.pyc", "task_file_type_not_allowed"),
        ("twin/knowledge/CheckT1.md", "task_file_type_not_allowed"),
        ("twin/backend.yml", "task_file_type_not_allowed"),
    ],
)
def test_a_bad_path_is_refused_with_a_stable_code(path, code):
    with pytest.raises(DomainError) as refused:
        task_path(path)
    assert (refused.value.code, refused.value.kind) == (code, Kind.MALFORMED)
    assert len(refused.value.message) < 400  # the path is not echoed in full


def test_a_good_path_names_its_backend_and_its_place_in_the_directory():
    assert task_path("twin/experimental/check_x.py") == TaskPath("twin", "experimental/check_x.py")
    assert task_path("twin/backend.yaml").is_backend_config
    assert not task_path("twin/experimental/backend.yaml").is_backend_config


def test_every_shipped_file_passes_its_own_checks():
    for relative, f in shipped("twin").items():
        check_content(task_path(f"twin/{relative}"), f.content)


def test_the_helper_list_matches_the_installed_package():
    """A module of calibration/ either defines tasks qledger runs (they must stay) or
    is a helper (it only has to parse): a new module must be put on one side."""
    for relative in shipped_sources():
        if not relative.endswith(".py"):
            continue
        runs = shipped_task_classes(relative)
        assert bool(runs) != (relative in HELPER_MODULES), (
            f"calibration/{relative}: add it to HELPER_MODULES in commands/task_file_rules.py"
            " if it defines no task class, or its task classes to TASKS"
        )
    assert HELPER_MODULES <= set(shipped_sources()), "a helper module that is not shipped"


def test_a_syntax_error_names_its_line_and_column():
    source = shipped_text("tasks.py") + "\nclass Broken(Task:\n    pass\n"
    err = refusal("twin/tasks.py", source)
    line = source.count("\n", 0, source.index("class Broken")) + 1
    assert err.code == "python_syntax_error" and err.kind is Kind.INVALID
    assert f"line {line}, column " in err.message


@pytest.mark.parametrize(
    "source",
    ["x = " + "-" * 50_000 + "1", "x = a" + ".b" * 30_000, "x = " + "lambda: " * 5_000 + "1"],
)
def test_python_nested_past_the_parser_is_refused_not_crashed(source):
    assert refusal("twin/experimental/deep.py", source).code == "task_file_too_complex"


def test_a_nul_byte_in_python_is_a_syntax_error():
    assert refusal("twin/fits.py", "x = 1\x00\n").code == "python_syntax_error"


def test_tasks_py_may_not_drop_a_task_class():
    source = shipped_text("tasks.py").replace("class CheckT1(Task):", "class Gone:")
    err = refusal("twin/tasks.py", source)
    assert err.code == "task_class_removed" and "CheckT1" in err.message


def test_a_task_class_kept_under_another_base_of_the_same_file_still_counts():
    source = shipped_text("tasks.py").replace(
        "class CheckT1(Task):", "class Decay(Task):\n    pass\n\n\nclass CheckT1(Decay):"
    )
    check_content(task_path("twin/tasks.py"), source)


def test_a_new_python_file_must_define_a_task_class_and_a_helper_need_not():
    assert refusal("twin/experimental/notes.py", "x = 1\n").code == "no_task_class"
    check_content(task_path("twin/fits.py"), "import numpy as np\n")
    check_content(
        task_path("twin/experimental/check_x.py"),
        "from calibration.tasks import Task\n\n\nclass CheckX(Task):\n    name = 'CheckX'\n",
    )


def test_task_classes_are_found_by_reading_never_by_running():
    source = (
        "import os\nos.system('touch /tmp/pwned-by-listing')\n"
        "from calibration import tasks\n\n"
        "class Base(tasks.Task):\n    task_type = 'coupling'\n\n"
        "class CheckZ(Base):\n    name: str = 'CheckZ'\n    description = ('two ' 'parts')\n\n"
        "class NotATask:\n    name = 'Nope'\n"
    )
    found = task_classes(parse_python("x.py", source))
    assert [(c.class_name, c.name, c.task_type) for c in found] == [
        ("Base", None, "coupling"),
        ("CheckZ", "CheckZ", "coupling"),
    ]
    assert found[1].description == "two parts"


def test_content_over_the_limit_is_too_large():
    err = refusal("twin/fits.py", "#" * (MAX_TASK_FILE_BYTES + 1))
    assert (err.code, err.kind) == ("task_file_too_large", Kind.TOO_LARGE)


def test_text_that_is_not_unicode_is_refused():
    assert refusal("twin/fits.py", "x = '\ud800'\n").code == "invalid_task_file_text"


def yaml_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (yaml_bomb(), "task_file_too_complex"),
        ("a: " + "[" * 40 + "]" * 40 + "\n", "task_file_too_complex"),
        ("".join(f"{' ' * 2 * i}k{i}:\n" for i in range(40)) + " " * 80 + "v\n",
         "task_file_too_complex"),
        ("a: &a [1, 2]\n" + "".join(f"b{i}: &b{i} [*{'a' if i == 0 else f'b{i - 1}'}]\n"
                                    for i in range(40)), "task_file_too_complex"),
        ("x: [" + "1, " * 12_000 + "]\n", "task_file_too_complex"),
        ("x: !!python/object/apply:os.system ['touch /tmp/pwned']\n", "invalid_task_file_yaml"),
        ("x: [1, 2\n", "invalid_task_file_yaml"),
        ("x: " + "9" * 5000 + "\n", "invalid_task_file_yaml"),
        ("x: 2024-02-31\n", "invalid_task_file_yaml"),
    ],
)  # fmt: skip
def test_hostile_yaml_is_refused_with_a_coded_422(content, code):
    err = refusal("twin/experimental/notes.yaml", content)
    assert (err.code, err.kind) == (code, Kind.INVALID), err.message


def test_a_yaml_syntax_error_names_its_line():
    assert "line 2, column 6:" in refusal(CONFIG, "description: x\n  bad: indent\n").message


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("description: x\ntypo: 1\n", "typo: unknown key"),
        ("tasks: [CheckT1, RunMyScript]\n", "tasks.1: 'RunMyScript' is not a task qledger runs"),
        ("tasks: [CheckT1, CheckT1]\n", "listed twice"),
        (
            "defaults:\n  CheckT1:\n    points: 1000\n",
            ":3: defaults.CheckT1.points: points must be",
        ),
        ("defaults:\n  CheckT1:\n    colour: red\n", "takes no run parameter 'colour'"),
        ("defaults:\n  CheckT1:\n    shots: true\n", "shots must be an integer"),
        (
            "defaults:\n  CheckT1:\n    shots: 1" + "0" * 400 + "\n",
            "shots must be between 1 and 100000",
        ),
        ("defaults:\n  Nope: {shots: 1}\n", "'Nope' is not a task"),
        ("categories:\n  Mine: [Nope]\n", "categories.Mine.0"),
        ("- just\n- a list\n", "(top level)"),
    ],
)
def test_the_backend_config_is_held_to_its_schema_and_the_tasks_bounds(content, said):
    err = refusal(CONFIG, content)
    assert err.code == "invalid_backend_config" and said in err.message, err.message


def test_the_shipped_config_gives_each_task_its_own_defaults():
    own = {n: {p: s.default for p, s in t.parameters.items()} for n, t in TASKS.items()}
    assert task_defaults({}) == own
    assert task_defaults({CONFIG: shipped_text("backend.yaml")}) == own
    assert offered_tasks({}) == list(TASKS) == offered_tasks({CONFIG: shipped_text("backend.yaml")})


def test_a_written_config_sets_defaults_over_the_tasks_own():
    written = "tasks: [CheckT1]\ndefaults:\n  CheckT1: {shots: 500}\n"
    check_content(task_path(CONFIG), written)
    defaults = task_defaults({CONFIG: written})
    assert defaults["CheckT1"] == {"shots": 500, "points": 24, "t1_guess_us": 100.0}
    assert defaults["CheckRabi"] == {"shots": 2000, "max_pulses": 60}
    assert offered_tasks({CONFIG: written}) == ["CheckT1"]
    defaults["CheckT1"]["shots"] = 1  # a caller's copy: the cache is not touched
    assert task_defaults({CONFIG: written})["CheckT1"]["shots"] == 500


def test_a_stale_stored_config_falls_back_to_the_tasks_own_defaults():
    """Checked when written, but a later qledger may have dropped a task or a parameter,
    or narrowed a bound: what no longer holds is left out, never raised."""
    stored = "defaults:\n  Gone: {shots: 5}\n  CheckT1: {shots: 500, retired: 1, points: 9999}\n"
    assert task_defaults({CONFIG: stored})["CheckT1"] == {
        "shots": 500, "points": 24, "t1_guess_us": 100.0,
    }  # fmt: skip
    assert task_defaults({CONFIG: "not: [valid"})["CheckT1"]["shots"] == 2000
