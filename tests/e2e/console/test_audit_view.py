"""The event history page: the account's records only, the filters, and the events the service starts
itself (DeleteExpiredKeyMaterial, DeleteKey) next to the calls made through the API and the console."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import tempfile
import time
from pathlib import Path

from tests.conftest import launch
from tests.e2e.console.http import ConsoleHttp
from tests.e2e.importing import import_material

DAY = 86400


def records(page_html: str) -> list[dict[str, object]]:
    return [json.loads(html.unescape(m)) for m in re.findall(r"<pre>(.*?)</pre>", page_html, re.S)]


def test_service_events_and_filters(workdir: Path) -> None:
    data_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="console-audit-"))
    offset = data_dir.parent / f"{data_dir.name}-clock"
    offset.write_text("0")
    server = launch(data_dir, None, env={"OPENKMS_CLOCK_OFFSET_FILE": str(offset)})
    try:
        kms = server.client()
        expiring = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        import_material(
            kms,
            expiring,
            bytes(range(32)),
            ExpirationModel="KEY_MATERIAL_EXPIRES",
            ValidTo=dt.datetime.fromtimestamp(time.time() + 3600, dt.UTC),
        )
        doomed = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.schedule_key_deletion(KeyId=doomed, PendingWindowInDays=7)
        other = server.new_account()  # another account's calls never show
        server.client(access_key=other["AccessKeyId"], secret_key=other["SecretAccessKey"]).create_key()
        offset.write_text(str(8 * DAY))  # a week later: the material has expired, the key is deleted
        deadline = time.time() + 20
        while time.time() < deadline:
            if kms.describe_key(KeyId=expiring)["KeyMetadata"]["KeyState"] == "PendingImport":
                try:
                    kms.describe_key(KeyId=doomed)
                except kms.exceptions.NotFoundException:
                    break
            time.sleep(0.3)
        console = ConsoleHttp(server.endpoint)
        assert console.sign_in(server.access_key, server.secret_key).status == 303

        page = console.get(f"/console/audit?key_id={expiring}&event_name=DeleteExpiredKeyMaterial")
        found = records(page.text)
        assert len(found) == 1
        assert found[0]["eventType"] == "AwsServiceEvent"
        assert found[0]["userIdentity"] == {"accountId": server.account_id, "invokedBy": "AWS Internal"}
        assert "AWS Internal" in page.text

        page = console.get(f"/console/audit?key_id={doomed}")
        names = [r["eventName"] for r in records(page.text)]
        assert names == ["DeleteKey", "ScheduleKeyDeletion", "CreateKey"]  # newest first, changes only
        page = console.get(f"/console/audit?key_id={expiring}&read_only=all")
        assert "DescribeKey" in [r["eventName"] for r in records(page.text)]  # read-only calls too
        page = console.get(f"/console/audit?key_id={expiring}&read_only=true")
        assert {r["eventName"] for r in records(page.text)} == {"DescribeKey", "GetParametersForImport"}

        everything = records(console.get("/console/audit?read_only=all").text)
        assert everything and all(r["recipientAccountId"] == server.account_id for r in everything)
        by_principal = records(console.get("/console/audit?principal=admin&event_name=CreateKey").text)
        assert len(by_principal) == 2  # this account's admin made two keys; the other account's are not here
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        empty = console.get(f"/console/audit?start={future:%Y-%m-%dT%H:%M}")
        assert records(empty.text) == [] and "No events match these filters." in empty.text
        bad = console.get("/console/audit?start=yesterday")
        assert bad.status == 400 and "Enter the start time as a date and time" in bad.text
    finally:
        server.stop()
