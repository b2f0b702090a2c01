"""The slash tree Discord receives is rendered from the command table."""

from __future__ import annotations

from collections.abc import Sequence

from tests.adapters.discord.fake_discord import FakeDiscord
from tests.adapters.discord.harness import Running
from tests.adapters.discord.payloads import Json

MAX_DESCRIPTION = 100  # Discord rejects a longer command or option description


def synced(fake: FakeDiscord) -> dict[str, Json]:
    """The slash tree the bot published, by command name."""
    return {c["name"]: c for c in fake.commands}


def shape(options: Sequence[Json]) -> dict[str, tuple[bool, tuple[str, ...], bool]]:
    """Each synced option's name → (required, choice values, autocomplete)."""
    return {o["name"]: (o.get("required", False), tuple(c["value"] for c in o.get("choices", [])),
                        o.get("autocomplete", False)) for o in options}


async def test_every_command_of_the_table_is_synced_at_start_up(hearth: Running) -> None:
    names = set(synced(hearth.fake))

    assert names == {c.name for c in hearth.app.commands}
    assert {"model", "persona", "reset", "status", "hearth-channel", "moderation"} <= names


async def test_every_subcommand_and_option_is_synced(hearth: Running) -> None:
    tree = synced(hearth.fake)
    for command in hearth.app.commands:
        payload = tree[command.name]
        if not command.subcommands:
            assert shape(payload["options"]) == {
                o.name: (o.required, o.choices, o.complete is not None) for o in command.options
            }, command.name
            continue
        subs = {s["name"]: s for s in payload["options"]}
        assert set(subs) == {s.name for s in command.subcommands}, command.name
        for sub in command.subcommands:
            assert subs[sub.name]["type"] == 1  # a subcommand
            assert shape(subs[sub.name]["options"]) == {
                o.name: (o.required, o.choices, o.complete is not None) for o in sub.options
            }, f"{command.name} {sub.name}"


async def test_descriptions_are_english_with_chinese_localisations(hearth: Running) -> None:
    tree = synced(hearth.fake)
    for command in hearth.app.commands:
        payload = tree[command.name]
        assert payload["description"] == command.help.en
        assert payload["description_localizations"] == {"zh-CN": command.help.zh, "zh-TW": command.help.zh}


async def test_option_descriptions_are_localised_too(hearth: Running) -> None:
    [block] = [s for s in synced(hearth.fake)["moderation"]["options"] if s["name"] == "block"]
    [word] = [o for o in block["options"] if o["name"] == "word"]

    assert word["description"] == "the word or phrase"
    assert word["description_localizations"]["zh-CN"] == "词或短语"


def descriptions(payload: Json) -> list[str]:
    """Every description in a synced command, its options' and their localisations included."""
    found = [payload["description"], *payload.get("description_localizations", {}).values()]
    for option in payload.get("options", []):
        found += descriptions(option)
    return found


async def test_every_description_fits_discords_limit(hearth: Running) -> None:
    texts = [text for payload in hearth.fake.commands for text in descriptions(payload)]

    assert texts
    assert all(1 <= len(text) <= MAX_DESCRIPTION for text in texts), texts


async def test_group_only_commands_are_not_offered_in_direct_messages(hearth: Running) -> None:
    tree = synced(hearth.fake)

    assert tree["hearth-channel"]["contexts"] == [0]  # guilds only
    assert tree["model"]["dm_permission"] is True
