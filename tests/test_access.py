from bot.access import AccessPolicy
from bot.config import AccessConfig
from bot.types import IncomingMessage


def message(**kw: object) -> IncomingMessage:
    values: dict[str, object] = {"platform": "discord", "workspace": "G1", "channel": "C1", "thread": "T1",
                                 "message_id": "1", "user": "U1", "text": "hi"}
    values.update(kw)
    return IncomingMessage(**values)  # type: ignore[arg-type]


def test_empty_lists_allow_everyone_and_make_everyone_admin() -> None:
    policy = AccessPolicy(AccessConfig())
    assert policy.check(message()).allowed
    assert policy.is_admin(message())


def test_channel_allow_list_counts_thread_parents() -> None:
    policy = AccessPolicy(AccessConfig(allow_channels=["C9"]))
    assert not policy.check(message()).allowed
    assert "channel" in policy.check(message()).reason
    assert policy.check(message(channel="T5", parent_channels=("C9",))).allowed
    assert policy.check(message(is_dm=True)).allowed  # DMs are governed by allow_dms


def test_users_and_roles() -> None:
    policy = AccessPolicy(AccessConfig(allow_users=["U2"], allow_roles=["R1"]))
    assert not policy.check(message()).allowed
    assert policy.check(message(user="U2")).allowed
    assert policy.check(message(roles=frozenset({"R1"}))).allowed


def test_block_list_wins_and_dms_can_be_turned_off() -> None:
    policy = AccessPolicy(AccessConfig(block_users=["U1"], allow_dms=False))
    assert not policy.check(message()).allowed
    refusal = policy.check(message(user="U3", is_dm=True))
    assert not refusal.allowed and "Direct messages" in refusal.reason


def test_workspace_allow_list() -> None:
    policy = AccessPolicy(AccessConfig(allow_workspaces=["G2"]))
    assert not policy.check(message()).allowed
    assert policy.check(message(workspace="G2")).allowed


def test_admins_by_user_or_role() -> None:
    policy = AccessPolicy(AccessConfig(admins=["U9", "R-admin"]))
    assert not policy.is_admin(message())
    assert policy.is_admin(message(user="U9"))
    assert policy.is_admin(message(roles=frozenset({"R-admin"})))
