"""`forget`: a person deletes what they wrote (or an admin deletes a person's data), after a confirmation.

The confirmation is a short code the first reply gives, valid for 5 to 10 minutes and only for the same person
asking about the same subject, so a stray `forget confirm` cannot delete anything and any replica can check it
(nothing is kept between the two messages).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable

from bot.access import AccessPolicy
from bot.types import IncomingMessage
from storage.store import Store

WINDOW = 300.0
_REFERENCE = re.compile(r"^<@!?([A-Za-z0-9]+)(?:\|[^>]*)?>$|^([A-Za-z0-9]{1,32})$")


class ForgetCommand:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def run(self, message: IncomingMessage, args: str, access: AccessPolicy, prefix: str) -> str:
        words = args.split()
        subject, own = message.user, True
        if words and words[0].lower() == "user":
            if not access.is_admin(message):
                return "Only admins can delete someone else's data."
            match = _REFERENCE.match(words[1]) if len(words) > 1 else None
            if match is None:
                return (f"Give the person's id: `{prefix}forget user U0123ABCD` (Slack: their profile → ⋮ → Copy "
                        "member ID; Discord: right-click → Copy User ID).")
            subject, own, words = match.group(1) or match.group(2), False, words[2:]
        who = "your" if own else f"`{subject}`'s"
        command = f"{prefix}forget" + ("" if own else f" user {subject}")
        if words and words[0].lower() == "confirm":
            if len(words) < 2 or not self._valid(words[1], message, subject):
                return f"That confirmation code is wrong or expired. Start again with `{command}`."
            done = await self._store.forget_user(message.platform, message.workspace, subject)
            return (f"Deleted {who} data in this workspace: {done.messages} messages, {done.conversations} "
                    f"conversations, {done.attachments} files, {done.turns} questions' records and "
                    f"{done.feedback} ratings. Usage totals (tokens and cost, no content) are kept for billing.")
        count = await self._store.count_user_messages(message.platform, message.workspace, subject)
        if not count:
            return f"There is nothing of {who} stored in this workspace."
        code = self._code(message, subject, self._clock())
        return (f"This permanently deletes {who} {count} stored messages in this workspace, the conversations only "
                f"{'you' if own else 'they'} took part in (answers included), {who} files and ratings. Messages "
                f"already shown in chat stay where they are. To go ahead, send `{command} confirm {code}` within "
                "5 minutes.")

    def _code(self, message: IncomingMessage, subject: str, at: float) -> str:
        window = int(at // WINDOW)
        seed = f"forget:{message.platform}:{message.workspace}:{message.user}:{subject}:{window}"
        return hashlib.sha256(seed.encode()).hexdigest()[:6]

    def _valid(self, code: str, message: IncomingMessage, subject: str) -> bool:
        now = self._clock()
        return code.lower() in {self._code(message, subject, now), self._code(message, subject, now - WINDOW)}
