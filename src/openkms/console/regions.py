"""The console's Region: which Regions the selector offers, and the Region in the console's addresses.

As in AWS's console, the address carries the Region as a query parameter (``?region=us-west-2``): a
link opens the same view in the same Region, whatever Region the session is in. A signed-in request
whose ``region`` differs from the session's makes it the session's Region (the application does that,
:mod:`openkms.console.app`); a request without one is answered in the session's Region.

Templates write plain console addresses (``/console/keys/...``); :func:`with_region` adds the Region
to every ``href`` and ``action`` of a rendered page that points into the console, except the static
files and addresses that already name a Region (a link to another Region's key). This is sound on
the console's own pages because they are autoescaped: a value shown on a page cannot contain a raw
``"``, so only the templates' attributes match. A GET form drops its action's query, so the GET forms
carry the Region as a hidden field instead (the ``region_field`` macro).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

from openkms.console.http import PREFIX

#: A Region name is short; anything longer is refused before it is looked at.
MAX_REGION_LENGTH = 32

#: AWS's commercial Regions and their names in AWS's console, the selector's list when the server
#: answers every well-formed Region.
COMMON_REGIONS: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "af-south-1": "Africa (Cape Town)",
    "ap-east-1": "Asia Pacific (Hong Kong)",
    "ap-east-2": "Asia Pacific (Taipei)",
    "ap-south-1": "Asia Pacific (Mumbai)",
    "ap-south-2": "Asia Pacific (Hyderabad)",
    "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-southeast-3": "Asia Pacific (Jakarta)",
    "ap-southeast-4": "Asia Pacific (Melbourne)",
    "ap-southeast-5": "Asia Pacific (Malaysia)",
    "ap-southeast-7": "Asia Pacific (Thailand)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-northeast-2": "Asia Pacific (Seoul)",
    "ap-northeast-3": "Asia Pacific (Osaka)",
    "ca-central-1": "Canada (Central)",
    "ca-west-1": "Canada West (Calgary)",
    "eu-central-1": "Europe (Frankfurt)",
    "eu-central-2": "Europe (Zurich)",
    "eu-west-1": "Europe (Ireland)",
    "eu-west-2": "Europe (London)",
    "eu-west-3": "Europe (Paris)",
    "eu-south-1": "Europe (Milan)",
    "eu-south-2": "Europe (Spain)",
    "eu-north-1": "Europe (Stockholm)",
    "il-central-1": "Israel (Tel Aviv)",
    "mx-central-1": "Mexico (Central)",
    "me-south-1": "Middle East (Bahrain)",
    "me-central-1": "Middle East (UAE)",
    "sa-east-1": "South America (São Paulo)",
}

#: ``href="/console/..."`` and ``action="/console/..."`` of a rendered page, the static files aside.
_CONSOLE_ATTRIBUTE = re.compile(r'\b(href|action)="(' + re.escape(PREFIX) + r'(?:/(?!static/)[^"]*)?)"')
#: An address (as written in HTML, ``&`` escaped as ``&amp;``) that already names a Region.
_NAMES_REGION = re.compile(r"[?&;]region=")


def region_label(region: str) -> str:
    """What the selector shows for a Region: its name and code, or the code alone."""
    name = COMMON_REGIONS.get(region)
    return f"{name} {region}" if name else region


def region_choices(configured: Iterable[str], in_use: Iterable[str], current: str) -> list[str]:
    """The Regions the selector lists: the configured ones when the server has a list (in its order);
    else AWS's commercial Regions, then the other Regions in use and the current one, sorted."""
    listed = list(dict.fromkeys(configured))
    if listed:
        return listed
    extra = {r for r in in_use if r not in COMMON_REGIONS}
    if current and current not in COMMON_REGIONS:
        extra.add(current)
    return [*COMMON_REGIONS, *sorted(extra)]


def readable_region(value: str) -> bool:
    """A value short and plain enough to be a Region name (whether it is answered is another matter)."""
    return 0 < len(value) <= MAX_REGION_LENGTH and value.isascii() and value.replace("-", "").isalnum()


def located(url: str, region: str, *, escaped: bool = False) -> str:
    """A console address with the Region as its ``region`` parameter, unless it already has one
    (``escaped``: the address as written in an HTML attribute, its ``&`` as ``&amp;``)."""
    if not region or _NAMES_REGION.search(url):
        return url
    path, hash_sign, fragment = url.partition("#")
    separator = ("&amp;" if escaped else "&") if "?" in path else "?"
    return f"{path}{separator}region={urllib.parse.quote(region, safe='')}{hash_sign}{fragment}"


def with_region(page_html: str, region: str) -> str:
    """A rendered page whose links and form actions into the console carry the Region."""
    if not region:
        return page_html

    def one(match: re.Match[str]) -> str:
        return f'{match.group(1)}="{located(match.group(2), region, escaped=True)}"'

    return _CONSOLE_ATTRIBUTE.sub(one, page_html)


def region_home(path: str) -> str:
    """Where the Region selector leads from a page: the same section of the console in the chosen
    Region (a key's pages lead to the key list: the key is in its own Region)."""
    if path.startswith(f"{PREFIX}/audit"):
        return f"{PREFIX}/audit"
    if path == f"{PREFIX}/keys/create":
        return path
    return f"{PREFIX}/keys"
