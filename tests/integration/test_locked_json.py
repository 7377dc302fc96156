"""The locked read-modify-write of a JSON file that the simulated commands' state files and the
fault file share (kubeupgrade.sandbox.quickjson.LockedJson): no update is lost between processes,
a block that fails writes nothing, and no way out of a block leaves the lock held."""

import fcntl
import json
import multiprocessing
import os
import subprocess
import sys

import pytest

from kubeupgrade.sandbox.quickjson import LockedJson


def lock_is_free(path) -> bool:
    with open(os.path.splitext(path)[0] + ".lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def add_many(path: str, key: str, times: int) -> None:
    for _ in range(times):
        with LockedJson(path) as data:
            data[key] = data.get(key, 0) + 1
            data["total"] += 1


def test_concurrent_processes_lose_no_update(tmp_path):
    path = str(tmp_path / "state.json")
    with open(path, "w") as file:
        json.dump({"total": 0}, file, indent=1)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=add_many, args=(path, f"p{i}", 150)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    with open(path) as file:
        assert json.load(file) == {"total": 600, "p0": 150, "p1": 150, "p2": 150, "p3": 150}
    assert lock_is_free(path)


def test_a_block_that_fails_writes_nothing_and_frees_the_lock(tmp_path):
    path = str(tmp_path / "state.json")
    with open(path, "w") as file:
        file.write('{"held": ["kubelet"]}')
    locked = LockedJson(path)
    with pytest.raises(RuntimeError), locked as data:
        data["held"].clear()
        raise RuntimeError("the command gave up half-way")
    with open(path) as file:
        assert file.read() == '{"held": ["kubelet"]}'
    assert lock_is_free(path)


@pytest.mark.parametrize("content", ['{"held": [', "", "\x00\x01"])
def test_a_damaged_file_is_refused_and_leaves_no_lock(tmp_path, content):
    path = str(tmp_path / "state.json")
    with open(path, "w") as file:
        file.write(content)
    locked = LockedJson(path)  # kept alive, as a traceback keeps it: its lock must be closed
    with pytest.raises(ValueError), locked:
        pass
    assert lock_is_free(path)
    with open(path) as file:
        assert file.read() == content


def test_a_missing_file_is_an_error_unless_a_default_is_given(tmp_path):
    path = str(tmp_path / "deeper" / "faults.json")
    with pytest.raises(FileNotFoundError), LockedJson(path):
        pass
    default: list = []
    with LockedJson(path, missing=default) as entries:
        assert entries == []
    assert not os.path.exists(path), "nothing changed, nothing written"
    with LockedJson(path, missing=default) as entries:
        entries.append({"id": "a"})
    assert default == [], "the default is not the caller's list"
    with open(path) as file:
        assert json.load(file) == [{"id": "a"}]
    assert lock_is_free(path)


def test_an_unchanged_file_is_not_rewritten(tmp_path):
    path = str(tmp_path / "state.json")
    with open(path, "w") as file:
        file.write('{"a":1}')
    before = os.stat(path)
    with LockedJson(path) as data:
        data["a"] = 1
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    with LockedJson(path) as data:
        data["a"] = 2
    assert os.stat(path).st_ino != before.st_ino  # replaced whole, by rename


def test_in_a_process_that_never_imported_json_malformed_text_gets_the_json_packages_error():
    # A simulated command starts without `json`; the accelerator, asked to name an error
    # before json.decoder is imported, cannot (it raised SystemError), so quickjson asks json.
    texts = ['[1', '{"a": "x', '["\\u0001 \x01"]', '{"a" 1}', "[1] x", "", "nul"]
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from kubeupgrade.sandbox import quickjson\n"
            "assert 'json' not in sys.modules and 'json.decoder' not in sys.modules\n"
            "for text in sys.argv[2:]:\n"
            "    try:\n"
            "        quickjson.loads(text)\n"
            "    except Exception as error:\n"
            "        print(type(error).__name__, error)\n"
            "    else:\n"
            "        print('no error')\n")
    result = subprocess.run([sys.executable, "-S", "-c", code, checkout, *texts], capture_output=True,
                            text=True, timeout=60, check=True)
    expected = []
    for text in texts:
        with pytest.raises(json.JSONDecodeError) as error:
            json.loads(text)
        expected.append(f"JSONDecodeError {error.value}")
    assert result.stdout.splitlines() == expected
