"""PHP serialization of the shapes WordPress stores, checked against PHP's own serialize()."""
from __future__ import annotations

import json
import subprocess

import pytest

from wpmsync import phpserial
from wpmsync.roles import SiteRoles, level_of_caps

SAMPLES = [
    {"subscriber": True},
    {"editor": True, "edit_special": False, "level_3": True},
    {"a": {"name": "Éditeur", "capabilities": {"read": True, "level_0": True}}},
    ["admin", "boss"],
    {"n": None, "i": -7, "f": 1.5, "s": "ünïcode \"quoted\""},
]


@pytest.mark.parametrize("value", SAMPLES)
def test_dumps_matches_php_serialize(value):
    php = subprocess.run(["php", "-r", "echo serialize(json_decode(stream_get_contents(STDIN), true));"],
                         input=json.dumps(value), capture_output=True, text=True, check=True).stdout
    assert phpserial.dumps(value) == php
    loaded = phpserial.loads(php)
    assert phpserial.dumps(loaded) == php


@pytest.mark.parametrize("text", [
    'O:8:"stdClass":0:{}', 'a:1:{s:3:"abc";b:1;', 's:5:"abc";', "a:1:{i:0;r:1;}", "x", "",
    'a:1:{s:10:"subscriber";b:1;}trailing',
])
def test_loads_refuses_objects_and_broken_text(text):
    with pytest.raises(phpserial.PHPSerialError):
        phpserial.loads(text)


def test_user_level_follows_wp_user():
    roles = SiteRoles(2, {
        "editor": {"name": "Editor", "capabilities": {"read": True, "level_7": True, "level_1": True}},
        "member": {"name": "Member", "capabilities": {"read": True}},
    }, "")
    assert roles.user_level({"editor": True}) == 7
    assert roles.user_level({"member": True, "level_4": False}) == 4  # keys count whatever their value
    assert roles.user_level({"ghost": True}) == 0  # not a role here
    assert roles.set_role({"member": True, "custom_cap": True}, "editor") == {"custom_cap": True, "editor": True}
    assert roles.set_role({"editor": True}, "editor") is None
    assert roles.default_role() is None  # neither default_role nor subscriber exists
    assert level_of_caps(["LEVEL_10", "level_11"]) == 10
