"""The console's Region, the pure parts: the Region selector's list, the Region added to the console's
addresses (links, form actions, redirects), what a Region value may look like, and where the
selector leads."""

from __future__ import annotations

import pytest

from openkms.console.regions import (
    COMMON_REGIONS,
    located,
    readable_region,
    region_choices,
    region_home,
    region_label,
    with_region,
)
from openkms.console.render import render


def test_choices_of_a_server_with_a_list_are_its_list() -> None:
    assert region_choices(["eu-west-3", "eu-central-1", "eu-west-3"], ["us-east-1"], "eu-central-1") == [
        "eu-west-3",
        "eu-central-1",
    ]


def test_choices_of_a_server_answering_every_region() -> None:
    choices = region_choices([], ["us-west-2", "xx-lab-1", "aa-test-2"], "zz-mine-1")
    assert choices[: len(COMMON_REGIONS)] == list(COMMON_REGIONS)
    assert choices[len(COMMON_REGIONS) :] == ["aa-test-2", "xx-lab-1", "zz-mine-1"]  # in use, then sorted
    assert choices.count("us-west-2") == 1
    assert region_choices([], [], "us-east-1") == list(COMMON_REGIONS)


def test_labels() -> None:
    assert region_label("us-west-2") == "US West (Oregon) us-west-2"
    assert region_label("xx-lab-1") == "xx-lab-1"


@pytest.mark.parametrize(
    ("value", "readable"),
    [
        ("us-east-1", True),
        ("xx-nowhere", True),
        ("", False),
        ("a" * 33, False),
        ("us-east-1\x00", False),
        ("us_east_1", False),
        ("<b>", False),
        ("\uff55\uff53-east-1", False),  # fullwidth letters are alphanumeric, not ASCII
    ],
)
def test_readable_region(value: str, readable: bool) -> None:
    assert readable_region(value) is readable


@pytest.mark.parametrize(
    ("url", "escaped", "expected"),
    [
        ("/console/keys", False, "/console/keys?region=us-west-2"),
        ("/console/keys/k?tab=events&flash=x", False, "/console/keys/k?tab=events&flash=x&region=us-west-2"),
        (
            "/console/keys/k?tab=events&amp;x=1",
            True,
            "/console/keys/k?tab=events&amp;x=1&amp;region=us-west-2",
        ),
        ("/console/keys#top", False, "/console/keys?region=us-west-2#top"),
        ("/console/keys?region=eu-west-1", False, "/console/keys?region=eu-west-1"),  # another Region's
        ("/console/keys?a=1&amp;region=eu-west-1", True, "/console/keys?a=1&amp;region=eu-west-1"),
        ("/console/audit?key_region=x", False, "/console/audit?key_region=x&region=us-west-2"),
    ],
)
def test_located(url: str, escaped: bool, expected: str) -> None:
    assert located(url, "us-west-2", escaped=escaped) == expected


def test_located_without_a_region_is_the_address() -> None:
    assert located("/console/keys", "") == "/console/keys"


def test_with_region_adds_the_region_to_console_addresses_only() -> None:
    page = (
        '<a href="/console/keys">Keys</a> <a href="/console">Home</a>'
        '<link rel="stylesheet" href="/console/static/console.css">'
        '<form method="post" action="/console/keys/abc?x=1&amp;y=2"></form>'
        '<a href="https://example.com/console/keys">elsewhere</a> <a href="/consoleX">not ours</a>'
        '<a href="/console/keys/k?region=eu-west-1">replica</a>'
        "<pre>{&#34;href&#34;: &#34;/console/keys&#34;}</pre>"
    )
    assert with_region(page, "us-west-2") == (
        '<a href="/console/keys?region=us-west-2">Keys</a> <a href="/console?region=us-west-2">Home</a>'
        '<link rel="stylesheet" href="/console/static/console.css">'
        '<form method="post" action="/console/keys/abc?x=1&amp;y=2&amp;region=us-west-2"></form>'
        '<a href="https://example.com/console/keys">elsewhere</a> <a href="/consoleX">not ours</a>'
        '<a href="/console/keys/k?region=eu-west-1">replica</a>'
        "<pre>{&#34;href&#34;: &#34;/console/keys&#34;}</pre>"
    )
    assert with_region(page, "") == page


def test_shown_values_cannot_become_addresses() -> None:
    """A value shown on a page (autoescaped) cannot form an attribute that gets the Region."""
    plain = render("message.html", title="t", message="m")
    shown = render("message.html", title='x" href="/console/keys', message='<a href="/console/keys">')
    assert with_region(shown, "us-west-2").count("region=") == with_region(plain, "us-west-2").count(
        "region="
    )


@pytest.mark.parametrize(
    ("path", "home"),
    [
        ("/console/keys", "/console/keys"),
        ("/console/keys/abc", "/console/keys"),
        ("/console/keys/abc/delete", "/console/keys"),
        ("/console/keys/create", "/console/keys/create"),
        ("/console/audit", "/console/audit"),
        ("/console/", "/console/keys"),
    ],
)
def test_region_home(path: str, home: str) -> None:
    assert region_home(path) == home
