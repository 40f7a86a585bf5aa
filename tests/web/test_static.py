"""The front end as files and HTTP responses (no browser needed): served at / under the CSP,
assets revalidated, APP_NAME escaped, module imports resolvable, no HTML built from strings."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from ticketing.app import CSP, create_app
from ticketing.migrate import upgrade_database
from ticketing.web.routes import STATIC_DIR

from ..conftest import make_settings
from ..smtp_server import SmtpTestServer

IMPORT = re.compile(r"""^\s*(?:import|export)\b[^'"]*?\bfrom\s+['"]([^'"]+)['"]""", re.M | re.S)


def test_served_at_root_under_the_csp(tmp_path: Path, smtp_server: SmtpTestServer):
    url = f"sqlite+aiosqlite:///{tmp_path / 'web.db'}"
    upgrade_database(url)
    settings = make_settings(url, smtp_server.port, app_name='Tom & "Jerry" <Desk>')
    with TestClient(create_app(settings)) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert page.headers["cache-control"] == "no-cache"
        assert "<title>Tom &amp; &quot;Jerry&quot; &lt;Desk&gt;</title>" in page.text
        assert "__APP_NAME__" not in page.text

        for path in sorted(STATIC_DIR.rglob("*")):
            if path.is_dir() or path.name == "index.html":
                continue
            r = client.get(f"/static/{path.relative_to(STATIC_DIR).as_posix()}")
            assert r.status_code == 200, path
            assert r.headers["cache-control"] == "no-cache"
            assert r.headers["content-security-policy"] == CSP
            assert r.headers["x-content-type-options"] == "nosniff"
            if path.suffix == ".js":  # modules need a JavaScript type under nosniff
                assert r.headers["content-type"].split(";")[0] in {
                    "text/javascript",
                    "application/javascript",
                }
        assert client.get("/static/../app.py").status_code == 404
        assert client.get("/static/nope.js").status_code == 404

        # The API's own pages are unchanged.
        spec = client.get("/openapi.json")
        assert spec.status_code == 200 and "/" not in spec.json()["paths"]
        assert "/tickets/create" in spec.json()["paths"]
        assert client.get("/docs").status_code == 200
        assert client.get("/health").json() == {"status": "ok"}


def test_markup_has_nothing_inline_that_the_csp_forbids():
    html = (STATIC_DIR / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag  # no inline scripts
    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert "<style" not in html


def test_scripts_never_build_html_from_strings_and_imports_resolve():
    scripts = sorted(STATIC_DIR.rglob("*.js"))
    assert scripts
    for script in scripts:
        text = script.read_text()
        found = re.findall(
            r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function", text
        )
        assert not found, f"{script.name}: {found}"
        for target in IMPORT.findall(text):
            assert target.startswith("."), f"{script.name}: bare import {target}"
            assert (script.parent / target).resolve().is_file(), f"{script.name}: {target}"
