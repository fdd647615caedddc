from lxactors import liblxc


def test_version_is_5_0() -> None:
    assert liblxc.get_version().startswith("5.0.")


def test_clone_start_stop(make_container) -> None:
    c = make_container(start=True)
    assert c.state() == "RUNNING"
    pid = c.init_pid()
    assert pid is not None and pid > 1
    c.stop()
    assert c.state() == "STOPPED"
    assert c.init_pid() is None
