"""liblxc's log lines in error reports (lxactors._errlog): what is kept, what is noise, and
our lxc.log.file line kept out of config files (temporary files only)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lxactors._errlog import HandleLog, is_noise, log_dir, report_lines, strip_from_config


def lxc(level: str, where: str, message: str) -> str:
    """One line as liblxc writes it to a container's log."""
    return f"lxc web 20261201081500.123 {level:<8} {where} - {message}"


# --------------------------------------------------------------------------- report lines


def test_errors_and_warnings_are_kept_shortened() -> None:
    raw = [
        lxc("INFO", "start - start.c:lxc_init:800", "Container \"web\" is initialized"),
        lxc("ERROR", "conf - conf.c:run_buffer:321", "Script exited with status 1"),
        lxc("DEBUG", "conf - conf.c:x:1", "debugging"),
        lxc("WARN", "cgfsng - cgfsng.c:y:2", "Something odd"),
        lxc("TRACE", "commands - commands.c:z:3", "tracing"),
        lxc("NOTICE", "start - start.c:n:4", "noticed"),
        "  ",
        "a line that is not liblxc's  ",
    ]
    assert report_lines(raw) == [
        "ERROR conf - conf.c:run_buffer:321 - Script exited with status 1",
        "WARN cgfsng - cgfsng.c:y:2 - Something odd",
        "a line that is not liblxc's",
    ]


def test_a_line_without_the_container_name_is_shortened_too() -> None:
    line = "lxc-start 20261201081500.123 ERROR    lxc_start - tools/lxc_start.c:main:306 - failed"
    assert report_lines([line]) == ["ERROR lxc_start - tools/lxc_start.c:main:306 - failed"]


def test_only_the_last_twenty_are_kept() -> None:
    raw = [lxc("ERROR", "conf - conf.c:f:1", f"error {i}") for i in range(30)]
    got = report_lines(raw)
    assert len(got) == 20 and got[0].endswith("error 10") and got[-1].endswith("error 29")


def test_noise() -> None:
    noisy = [
        lxc("ERROR", "conf - conf.c:lxc_map_ids:3701", "newuidmap binary is missing"),
        lxc("ERROR", "lxc_start - tools/lxc_start.c:main:306", "The container failed to start"),
        lxc("ERROR", "lxc_start - tools/lxc_start.c:main:309",
            "To get more details, run the container in foreground mode"),
        lxc("ERROR", "cgfsng - cgfsng.c:cgfsng_monitor_destroy:1000", "Failed to destroy"),
        lxc("WARN", "cgfsng - cgfsng.c:fchowmodat:1600", "No such file or directory - Failed to fchownat"),
    ]
    assert all(is_noise(line) for line in noisy)
    assert report_lines(noisy) == []
    # fchowmodat for another reason is a real problem.
    real = lxc("WARN", "cgfsng - cgfsng.c:fchowmodat:1600", "Permission denied - Failed to fchownat")
    assert not is_noise(real) and report_lines([real]) == [
        "WARN cgfsng - cgfsng.c:fchowmodat:1600 - Permission denied - Failed to fchownat"]


# --------------------------------------------------------------------------- config files


def ours() -> str:
    return os.path.join(tempfile.gettempdir(), "lxactors-123-abc", "0-web.log")


def test_our_log_line_is_stripped_and_nothing_else(tmp_path: Path) -> None:
    config = tmp_path / "config"
    body = ("lxc.uts.name = web\n"
            f"lxc.log.file = {ours()}\n"
            "lxc.log.file = /var/log/mine.log\n"
            "# lxc.log.file = /tmp/lxactors-1/a.log\n"
            f"lxc.log.file={ours()}\n"
            "lxc.rootfs.path = dir:/srv/r\xe9\n")
    config.write_text(body, encoding="utf-8")
    strip_from_config(str(config))
    assert config.read_text(encoding="utf-8") == (
        "lxc.uts.name = web\n"
        "lxc.log.file = /var/log/mine.log\n"           # the user's own log is theirs
        "# lxc.log.file = /tmp/lxactors-1/a.log\n"     # a comment is not an item
        "lxc.rootfs.path = dir:/srv/r\xe9\n")
    assert not [p for p in os.listdir(tmp_path) if p != "config"], "temporary file left"


def test_a_given_log_path_is_stripped_wherever_it_is(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("lxc.log.file = /srv/logs/web.log\nlxc.log.level = INFO\n")
    strip_from_config(str(config), "/srv/logs/web.log")
    assert config.read_text() == "lxc.log.level = INFO\n"


def test_bytes_that_are_not_utf8_survive(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_bytes(b"lxc.environment = A=\xff\xfe\n" + f"lxc.log.file = {ours()}\n".encode())
    strip_from_config(str(config))
    assert config.read_bytes() == b"lxc.environment = A=\xff\xfe\n"


def test_a_config_without_our_line_is_not_rewritten(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("lxc.uts.name = web\n")
    before = os.stat(config)
    strip_from_config(str(config))
    after = os.stat(config)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    strip_from_config(str(tmp_path / "absent"))  # nothing to do, no error
    assert os.listdir(tmp_path) == ["config"]


# --------------------------------------------------------------------------- one handle's log


def test_a_handle_log_reads_only_what_is_new() -> None:
    log = HandleLog("web")
    try:
        assert os.path.dirname(log.path) == log_dir() and log.path.endswith("-web.log")
        assert log.read_new() == [] and log.size() == 0  # not written yet
        with open(log.path, "a") as f:
            f.write(lxc("ERROR", "conf - conf.c:a:1", "old failure") + "\n")
        log.mark()
        with open(log.path, "a") as f:
            f.write(lxc("INFO", "start - start.c:b:2", "fine") + "\n")
            f.write(lxc("ERROR", "start - start.c:c:3", "new failure") + "\n")
        assert log.read_new() == ["ERROR start - start.c:c:3 - new failure"]
        assert log.read_new() == []  # read once
        assert [line.rsplit(" - ", 1)[1] for line in log.lines_since(0)] == [
            "old failure", "fine", "new failure"]
        assert log.size() == os.path.getsize(log.path)
    finally:
        log.remove()
    assert not os.path.exists(log.path)
    log.remove()  # gone already is fine


# --------------------------------------------------------------------------- stale log dirs


def test_a_killed_process_log_dir_is_swept_and_nothing_else(tmp_path: Path) -> None:
    """A process killed before its exit handler ran leaves its log directory: the
    next lxactors process removes it; a live pid's, a file, and other names stay."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = tmp_path / f"lxactors-{dead.stdout.strip()}-abcd_123"
    gone.mkdir()
    (gone / "1-c1.log").write_text("x")
    alive = tmp_path / f"lxactors-{os.getpid()}-abcd_123"
    alive.mkdir()
    other = [tmp_path / "lxactors-markers-1000", tmp_path / f"lxactors-{dead.stdout.strip()}-x"]
    for d in other:
        d.mkdir()
    a_file = tmp_path / f"lxactors-{dead.stdout.strip()}-zzzzzzzz"
    a_file.write_text("not a directory")
    from lxactors._errlog import sweep_stale_log_dirs

    assert sweep_stale_log_dirs(str(tmp_path)) == [str(gone)]
    assert not gone.exists() and alive.is_dir() and all(d.is_dir() for d in other)
    assert a_file.is_file()
    assert sweep_stale_log_dirs(str(tmp_path / "missing")) == []
