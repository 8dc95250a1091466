"""Customer controls on a chat: stop or resume promotions, block (and report) or unblock.

Each control is a message to the business in the shape the platform records as a consent or
quality signal (see tidings.sdk.messages), remembered in the chat's sealed settings so the
screen shows it. Blocking also asks the network core to refuse that account's envelopes
(`DeviceClient.block_business`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tidings.sdk.client import DeviceClient
from tidings.sdk.conversations import Conversations
from tidings.sdk.errors import SdkError
from tidings.tui.screens import BlockReport

if TYPE_CHECKING:
    from tidings.tui.app import ChatApp


class Controls:
    def __init__(self, client: DeviceClient, conversations: Conversations) -> None:
        self.client = client
        self.conversations = conversations

    async def set_promotions(self, peer: str, stop: bool) -> None:
        await self.client.stop_promotions(peer, stop)
        self.conversations.update(peer, promotions_stopped=stop)

    async def block(self, peer: str, report: bool, reason: str | None) -> None:
        # The SDK tells the business's platform first (once the network refuses its envelopes
        # it would never know), then the network.
        await self.client.block_business(peer, report=report, reason=reason)
        self.conversations.update(peer, blocked=True)

    async def unblock(self, peer: str) -> None:
        await self.client.unblock_business(peer)
        self.conversations.update(peer, blocked=False)

    # -- from the app's key bindings --------------------------------------------------------

    def toggle_promotions(self, app: ChatApp, peer: str) -> None:
        stop = not self.conversations.settings(peer).promotions_stopped
        done = "Promotions stopped" if stop else "Promotions resumed"
        app.run_worker(self._run(app, self.set_promotions(peer, stop), done), group="controls")

    def block_or_unblock(self, app: ChatApp, peer: str) -> None:
        settings = self.conversations.settings(peer)
        if settings.blocked:
            app.run_worker(self._run(app, self.unblock(peer), "Unblocked"), group="controls")
            return

        def chosen(choice: tuple[bool, str | None] | None) -> None:
            if choice is not None:
                report, reason = choice
                done = "Blocked and reported" if report else "Blocked"
                app.run_worker(
                    self._run(app, self.block(peer, report, reason), done), group="controls"
                )

        title = settings.verified_name or settings.name or peer
        app.push_screen(BlockReport(title), chosen)

    @staticmethod
    async def _run(app: ChatApp, action: Any, done: str) -> None:
        try:
            await action
        except SdkError as exc:
            app.notify(f"{done.split()[0]} failed: {exc.message}", severity="error")
            return
        app.notify(done)
        await app.refresh_screen()
