"""Writing task files through the real SQLite store: a write is one event carrying the
content, per project, read back as the project's file; every refused write records
nothing; the backend config's defaults reach what a run dispatch reads."""

from __future__ import annotations

import pytest

from adapters.task_files import shipped
from commands.backend_config import task_defaults
from commands.handlers import COMMANDS, HANDLERS
from commands.processor import process_batch
from commands.task_files import WriteTaskFile, written_task_files
from commands.unit_of_work import UnitOfWork
from domain.task_files import MAX_WRITTEN_TASK_FILES, TaskFiles, task_files_key
from tests.conftest import sub

TASKS_PY = shipped("twin")["tasks.py"].content
NEW_TASK = "from calibration.tasks import Task\n\n\nclass CheckX(Task):\n    name = 'CheckX'\n"


def send(store, *commands, project: str = "default"):
    return process_batch([sub(c, project=project) for c in commands], store)


def write(path: str, content: str) -> WriteTaskFile:
    return WriteTaskFile(path=path, content=content)


def test_the_write_command_is_registered():
    """commands/handlers.py registers TASK_FILE_HANDLERS (commands/task_files.py)."""
    assert WriteTaskFile in HANDLERS and COMMANDS["task_files.write"] is WriteTaskFile


def test_a_write_is_one_event_and_the_project_reads_it_back(sqlite_store):
    edited = TASKS_PY + "\n# reviewed by the lab\n"
    (reply,) = send(sqlite_store, write("twin/tasks.py", edited))
    assert reply.status == "accepted" and len(reply.event_ids) == 1, reply
    files = sqlite_store.load(TaskFiles, task_files_key("default"))
    assert files.files == {"twin/tasks.py": edited}
    (again,) = send(sqlite_store, write("twin/tasks.py", TASKS_PY))  # a second version
    assert again.position > reply.position
    assert (
        sqlite_store.load(TaskFiles, task_files_key("default")).files["twin/tasks.py"] == TASKS_PY
    )


def test_files_belong_to_their_project(sqlite_store):
    send(sqlite_store, write("twin/experimental/check_x.py", NEW_TASK), project="lab-a")
    assert sqlite_store.load(TaskFiles, task_files_key("lab-b")) is None
    assert (
        "twin/experimental/check_x.py"
        in sqlite_store.load(TaskFiles, task_files_key("lab-a")).files
    )


def test_a_written_backend_config_sets_the_defaults_a_handler_reads(sqlite_store):
    config = "tasks: [CheckT1, CheckRabi]\ndefaults:\n  CheckT1: {shots: 500, points: 12}\n"
    (reply,) = send(sqlite_store, write("twin/backend.yaml", config))
    assert reply.status == "accepted", reply
    uow = UnitOfWork(sqlite_store)
    defaults = task_defaults(written_task_files(uow, "default"))
    assert defaults["CheckT1"] == {"shots": 500, "points": 12, "t1_guess_us": 100.0}
    assert defaults["CheckRabi"]["shots"] == 2000
    assert task_defaults(written_task_files(UnitOfWork(sqlite_store), "other"))["CheckT1"][
        "shots"
    ] == 2000  # fmt: skip


def yaml_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    return "\n".join(lines) + "\n"


BAD = [
    ("../../etc/passwd", "x", "invalid_task_file_path"),
    ("twin/../../jwt.secret", "x", "invalid_task_file_path"),
    ("/etc/passwd", "x", "invalid_task_file_path"),
    ("twin\\tasks.py", "x", "invalid_task_file_path"),
    ("twin/tasks.py\x00", "x", "invalid_task_file_path"),
    ("twin//tasks.py", "x", "invalid_task_file_path"),
    ("qubex/tasks.py", "x", "unknown_task_backend"),
    ("twin/run.sh", "echo", "task_file_type_not_allowed"),
    ("twin/tasks.py", TASKS_PY + "\ndef broken(:\n", "python_syntax_error"),
    ("twin/tasks.py", TASKS_PY.replace("class CheckRabi(Task):", "class Rabi:"),
     "task_class_removed"),
    ("twin/experimental/notes.py", "x = 1\n", "no_task_class"),
    ("twin/experimental/deep.py", "x = " + "-" * 50_000 + "1", "task_file_too_complex"),
    ("twin/backend.yaml", yaml_bomb(), "task_file_too_complex"),
    ("twin/backend.yaml", "a: " + "[" * 40 + "]" * 40 + "\n", "task_file_too_complex"),
    ("twin/backend.yaml", "x: !!python/object/apply:os.system ['id']\n", "invalid_task_file_yaml"),
    ("twin/backend.yaml", "defaults:\n  CheckT1: {points: 100000}\n", "invalid_backend_config"),
    ("twin/fits.py", "#" * (200 * 1024), "task_file_too_large"),
    ("twin/fits.py", "x = '\ud800'\n", "invalid_task_file_text"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "content", "code"), BAD, ids=[c for _, _, c in BAD])
def test_a_refused_write_records_nothing_and_leaves_the_file_as_it_was(
    sqlite_store, path, content, code
):
    send(sqlite_store, write("twin/fits.py", "# the lab's fits\n"))
    before = sqlite_store.max_position()
    (reply,) = send(sqlite_store, write(path, content))
    assert (reply.status, reply.code) == ("rejected", code), reply
    assert sqlite_store.max_position() == before
    files = sqlite_store.load(TaskFiles, task_files_key("default")).files
    assert files == {"twin/fits.py": "# the lab's fits\n"}


def test_a_project_writes_at_most_so_many_files(sqlite_store):
    send(sqlite_store, *[write(f"twin/x/check_{i}.py", NEW_TASK)
                         for i in range(MAX_WRITTEN_TASK_FILES)])  # fmt: skip
    before = sqlite_store.max_position()
    (more,) = send(sqlite_store, write("twin/x/one_more.py", NEW_TASK))
    assert (more.status, more.code) == ("rejected", "too_many_task_files")
    assert sqlite_store.max_position() == before
    (over,) = send(sqlite_store, write("twin/x/check_0.py", NEW_TASK + "# v2\n"))
    assert over.status == "accepted", over  # writing over one of them is still allowed
