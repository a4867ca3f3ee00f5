"""The sandbox server itself: a client hanging up is routine, any other handler error is shown."""

from __future__ import annotations

import pytest

from sync_assets.sandbox.server import SandboxServer


@pytest.mark.parametrize("hang_up", [BrokenPipeError, ConnectionResetError])
def test_a_client_hanging_up_prints_nothing(capsys, hang_up) -> None:
    server = SandboxServer([])
    try:
        try:
            raise hang_up("the client went away")
        except ConnectionError:
            server.httpd.handle_error(None, ("127.0.0.1", 1))
    finally:
        server.httpd.server_close()
    assert capsys.readouterr().err == ""


def test_any_other_handler_error_still_prints_its_traceback(capsys) -> None:
    server = SandboxServer([])
    try:
        try:
            raise ValueError("a bug in a stand-in")
        except ValueError:
            server.httpd.handle_error(None, ("127.0.0.1", 1))
    finally:
        server.httpd.server_close()
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: a bug in a stand-in" in err
