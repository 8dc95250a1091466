"""First run of `tidings chat` on a new profile: the registration form, its errors, and an
account that works afterwards."""

from __future__ import annotations

import asyncio
from datetime import UTC

from textual.widgets import Input, Label

from conftest import issue_invite
from tidings.tui.app import ChatApp
from tidings.tui.onboarding import RegisterScreen

PHONE = "+15550100001"


async def test_register_from_the_form_after_a_wrong_code(server, tmp_path) -> None:
    code = await asyncio.to_thread(issue_invite, server.settings, PHONE, server.clock)
    app = ChatApp(tmp_path / "alice", clock=server.clock, tz=UTC, open_files=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.wait_until(lambda: isinstance(app.screen, RegisterScreen))
        form = app.screen
        error = form.query_one("#error", Label)

        form.query_one("#server", Input).value = server.url
        await pilot.click("#register")
        await pilot.pause()
        assert "Fill in the server, your phone number and the code" in str(error.render())

        # The next attempts are sent with Enter in the code field: a button ignores clicks for
        # a moment after it was pressed, so a second click at once could be dropped.
        form.query_one("#phone", Input).value = PHONE
        code_field = form.query_one("#code", Input)
        code_field.value = "000000" if code != "000000" else "111111"
        code_field.focus()
        await pilot.press("enter")
        # The server's answer: until this attempt says "Registering…", the label still holds
        # the message above, which mentions the code too.
        await app.wait_until(
            lambda: not any(s in str(error.render()) for s in ("Registering", "Fill in")),
            timeout=20,
        )
        assert "code" in str(error.render()).lower()  # the server's reason, shown on the form
        assert isinstance(app.screen, RegisterScreen)

        code_field.value = code
        await pilot.press("enter")
        await app.wait_until(lambda: app.connection == "online")
        assert app.client is not None and app.client.phone == PHONE
        assert not isinstance(app.screen, RegisterScreen)
