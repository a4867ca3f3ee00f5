"""The sandbox server itself: a client hanging up is routine, any other handler error is shown."""

from __future__ import annotations

import pytest

from sync_assets.sandbox.server import SandboxServer


def stderr_after_handling(capsys: pytest.CaptureFixture[str], error: Exception) -> str:
    """What the server prints when a request handler raised `error`."""
    server = SandboxServer([])
    try:
        try:
            raise error
        except Exception:
            server.httpd.handle_error(None, ("127.0.0.1", 1))
    finally:
        server.httpd.server_close()
    return capsys.readouterr().err


@pytest.mark.parametrize("hang_up", [BrokenPipeError, ConnectionResetError])
def test_a_client_hanging_up_prints_nothing(capsys, hang_up) -> None:
    assert stderr_after_handling(capsys, hang_up("the client went away")) == ""


def test_any_other_handler_error_still_prints_its_traceback(capsys) -> None:
    err = stderr_after_handling(capsys, ValueError("a bug in a stand-in"))
    assert "Traceback" in err and "ValueError: a bug in a stand-in" in err
