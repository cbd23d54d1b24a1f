"""The Slack app manifest a deployment pastes into "Create New App → From a manifest"."""

from __future__ import annotations

import json

import pytest

from functions.slack.manifest import manifest


def test_manifest_points_slack_at_the_events_route() -> None:
    data = manifest("https://charla.example.com/")
    events = data["settings"]["event_subscriptions"]
    assert events["request_url"] == "https://charla.example.com/slack/events"
    assert events["bot_events"] == ["app_mention", "message.im", "message.channels",
                                    "message.groups", "message.mpim"]
    assert data["settings"]["socket_mode_enabled"] is False


def test_manifest_keeps_a_path_prefix() -> None:
    data = manifest("https://example.com/prod//")
    assert data["settings"]["event_subscriptions"]["request_url"] == (
        "https://example.com/prod/slack/events")


def test_manifest_asks_only_for_the_scopes_it_uses() -> None:
    scopes = manifest("https://charla.example.com")["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}  # no user scopes: Charla never acts as a person
    assert sorted(scopes["bot"]) == sorted(["app_mentions:read", "chat:write", "im:history",
                                            "channels:history", "groups:history",
                                            "mpim:history"])


def test_manifest_has_a_bot_user_people_can_dm() -> None:
    data = manifest("https://charla.example.com", name="Helpdesk")
    assert data["display_information"]["name"] == "Helpdesk"
    assert data["features"]["bot_user"]["display_name"] == "Helpdesk"
    home = data["features"]["app_home"]
    assert home["messages_tab_enabled"] is True
    assert home["messages_tab_read_only_enabled"] is False


def test_manifest_is_plain_json() -> None:
    data = manifest("https://charla.example.com")
    assert json.loads(json.dumps(data)) == data
    assert data["display_information"]["name"] == "Charla"
    assert set(data) == {"_metadata", "display_information", "features", "oauth_config",
                         "settings"}


@pytest.mark.parametrize("url", ["http://charla.example.com", "charla.example.com", "",
                                 "https://", "ftp://charla.example.com", "HTTP://x.example"])
def test_a_url_that_is_not_https_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="https://"):
        manifest(url)


@pytest.mark.parametrize("name", ["", "   ", "x" * 36])
def test_a_name_slack_would_refuse_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        manifest("https://charla.example.com", name=name)
