"""A reload can never silently close the server: an empty or truncated wasp.toml is invalid
(`wasp validate` says why), and a reload that would listen on nothing is refused (event 9005)
while the running configuration keeps serving."""

from __future__ import annotations

from process_support import events, last_seq, one_pool, pid_of, wait_event


def test_validate_rejects_an_empty_and_a_truncated_file(wasp_server, tmp_path):
    full = wasp_server.expand(one_pool(), 8080)
    for name, text in (("empty", ""), ("truncated", full[:full.index("[[sites]]")])):
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        result = wasp_server.run_wasp("validate", "-c", str(path), cwd=tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode != 0, (name, output)
        assert "sites" in output and "no site is defined" in output, (name, output)


def test_reloading_an_empty_file_keeps_the_port_open_and_the_workers_serving(wasp_server):
    server = wasp_server(one_pool('start_mode = "always_running"'))
    first = pid_of(server)
    good = server.config.read_text()
    mark = last_seq(server)
    server.config.write_text("")
    # --run-dir: the CLI would refuse the empty file itself before asking the server.
    result = wasp_server.run_wasp("reload", "--run-dir", str(server.run_dir), cwd=server.dir)
    assert result.returncode != 0, result.stdout
    assert "no site is defined" in result.stdout + result.stderr
    [event] = wait_event(server, 9005, 10, after=mark)
    assert "no site is defined" in event["problems"]
    assert not [e for e in events(server, 9004) if e["seq"] > mark]
    assert pid_of(server) == first
    server.config.write_text(good)
    server.cli("reload")
    assert pid_of(server) == first


def test_a_reload_that_would_listen_on_nothing_is_refused(wasp_server):
    server = wasp_server(one_pool('start_mode = "always_running"'))
    first = pid_of(server)
    mark = last_seq(server)
    text = server.config.read_text()
    server.config.write_text(text.replace('id = 1\n', 'id = 1\nserver_auto_start = false\n', 1))
    result = server.cli("reload", check=False)
    assert result.returncode != 0, result.stdout
    [event] = wait_event(server, 9005, 10, after=mark)
    assert "listens on nothing" in event["problems"]
    assert pid_of(server) == first
