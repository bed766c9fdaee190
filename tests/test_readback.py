"""After an engine sync, WordPress itself sees every membership with the right role."""
from __future__ import annotations


def test_wordpress_reads_back_every_membership(net):
    with net.engine() as engine:
        engine.sync_sites(None)
    seen = net.wp.read_back(caps=["read", "edit_posts", "edit_others_posts"])
    ids = net.ids
    expected_role = {
        1: "subscriber", ids["site_plain"]: "subscriber", ids["site_authors"]: "author",
        ids["site_editors"]: "editor", ids["site_club"]: "member", ids["site_ghostly"]: "subscriber",
    }
    regular = [ids[f"user{i}"] for i in range(2, 9)]
    for uid in regular:
        assert set(seen["users"][uid]["blogs"]) == set(expected_role), uid
        for blog_id, role in expected_role.items():
            member = seen["blogs"][blog_id]["members"][uid]
            assert member["member"] and member["roles"] == [role], (uid, blog_id, member)
            assert member["caps"]["read"] is True
            assert member["caps"]["edit_posts"] is (role in ("author", "editor"))
            assert member["caps"]["edit_others_posts"] is (role == "editor")
            assert uid in seen["blogs"][blog_id]["users"]
    # a member with another role stays untouched
    assert seen["blogs"][ids["site_authors"]]["members"][ids["user1"]]["roles"] == ["contributor"]
    assert seen["blogs"][ids["site_editors"]]["members"][ids["user_ed"]]["roles"] == ["editor"]
    # archived, deleted and spam sites get nobody; spam users and super admins join nothing
    for slug in ("archived", "deleted", "spammy"):
        assert net.members(ids[f"site_{slug}"]) <= {ids["admin"]}, slug
    assert seen["users"][ids["user_spammer"]]["blogs"] == []
    assert net.query("SELECT COUNT(*) FROM wp_usermeta WHERE user_id = %s AND meta_key LIKE %s",
                     (ids["user_boss"], "wp\\_%capabilities"))[0][0] == 0
    # the network-2 user and site are left alone
    assert seen["users"][ids["user_netwo"]]["blogs"] == [ids["site_net2_second"]]
    # primary_blog is the lowest site each new member joined, as WordPress's loop picks it
    for uid in regular:
        assert seen["users"][uid]["primary_blog"] in (1, ids["site_authors"])
