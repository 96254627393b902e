"""Console sessions on both backends (SQLite and PostgreSQL), over HTTP: they live in the database, so
a second server process on the same database knows them, and a sign-out on one ends them on both."""

from __future__ import annotations

from tests.conftest import Server
from tests.e2e.console.http import ConsoleHttp


def test_sessions_are_shared_by_the_servers_of_one_database(server: Server) -> None:
    twin = Server(data_dir=server.data_dir, database_url=server.database_url)
    twin.start()
    try:
        one = ConsoleHttp(server.endpoint)
        assert one.sign_in(server.access_key, server.secret_key).status == 303
        page = one.get("/console/keys")
        assert page.status == 200 and "Customer managed keys" in page.text
        token = page.csrf()
        # The same cookie on the other process: the same session, the same CSRF token.
        two = ConsoleHttp(twin.endpoint, cookies=dict(one.cookies))
        assert two.get("/console/keys").csrf() == token
        # Preferences are kept in the session: set on one process, seen on the other.
        answer = one.post(
            "/console/preferences", {"csrf_token": token, "show_origin": "yes", "page_size": "10"}
        )
        assert answer.status == 303
        assert ">Origin</th>" in two.get("/console/keys").text
        # Signing out on the other process ends the session everywhere.
        assert two.post("/console/signout", {"csrf_token": token}).status == 303
        assert one.get("/console/keys").status == 303
    finally:
        twin.stop()


def test_console_is_on_the_api_port(server: Server) -> None:
    client = ConsoleHttp(server.endpoint)
    bare = client.get("/console")
    assert bare.status == 302 and bare.header("location") == "/console/"
    root = client.get("/console/")  # the key list of the session's Region; signed out: the sign-in page
    assert root.status == 303 and root.header("location") == "/console/signin"
    signin = client.get("/console/signin")
    assert signin.status == 200 and "Access key ID" in signin.text
    for name, kind in (("console.css", "text/css"), ("console.js", "text/javascript")):
        static = client.get(f"/console/static/{name}")
        assert static.status == 200 and (static.header("content-type") or "").startswith(kind)
    assert "http://" not in client.get("/console/static/console.css").text  # nothing from the internet
    assert "https://" not in signin.text
    # The KMS API on the same port is unaffected.
    assert server.client().list_keys()["Keys"] is not None
