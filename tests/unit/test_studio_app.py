"""The studio's app without a browser: what it shows, how it fails, and what it refuses."""

from __future__ import annotations

import asyncio
import email
import json
import shutil
from email import policy
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from drip.cli.main import app
from drip.config import Environment, Settings
from drip.schedule.simulation import simulate
from drip.send.transports.outbox import OutboxTransport
from drip.sequences.catalog import SequenceCatalog
from drip.studio.app import TOKEN_HEADER, StudioConfig, create_studio_app
from drip.studio.server import StudioRefused, studio_config
from drip.studio.watcher import Changes, watch
from drip.studio.workspace import Workspace
from tests.conftest import REPO

ADDRESS = "The Resume Studio, 100 Example Street, Springfield, USA"
STEP_3 = "achievements-with-numbers"
TEMPLATE_3 = "templates/executive-resume/03-achievements-with-numbers.html"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A private copy of the shipped sequences, free to edit."""
    target = tmp_path / "sequences"
    shutil.copytree(REPO / "sequences", target)
    return target


def studio(folder: Path, tmp_path: Path, **given: object) -> TestClient:
    config = StudioConfig(
        folder=folder,
        postal_address=ADDRESS,
        base_url="https://resumes.example.com",
        test_recipients=("marketer@example.com",),
        secret_key="k" * 40,
        transport=lambda: OutboxTransport(tmp_path / "outbox"),
        token="the-run-token",
        watch=False,
    )
    for name, value in given.items():
        setattr(config, name, value)
    return TestClient(create_studio_app(config), base_url="http://127.0.0.1:8025")


def show(client: TestClient, step: str = STEP_3, sample: str = "") -> dict[str, object]:
    answer = client.get(
        "/api/email", params={"sequence": "executive-resume", "step": step, "sample": sample}
    )
    return answer.json()  # type: ignore[no-any-return]


def test_the_page_lists_every_sequence_step_and_sample(folder: Path, tmp_path: Path) -> None:
    client = studio(folder, tmp_path)
    page = client.get("/")
    assert page.status_code == 200
    assert '<meta name="studio-token" content="the-run-token">' in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert 'sandbox="allow-same-origin"' in page.text  # the emails run no script
    state = client.get("/api/state").json()
    series = next(s for s in state["sequences"] if s["id"] == "executive-resume")
    assert series["steps"][0] == {
        "id": "template-delivery",
        "subject": series["steps"][0]["subject"],
        "number": 1,
    }
    assert [s["label"] for s in state["samples"]][:4] == [
        "Alex",
        "no first name",
        "a long name",
        "a non-Latin name",
    ]
    assert state["problems"] == []


def test_an_email_is_shown_as_the_worker_renders_it_with_its_inbox_line(
    folder: Path, tmp_path: Path
) -> None:
    shown = show(studio(folder, tmp_path), "template-delivery", "a non-Latin name")
    assert shown["inbox"] == {
        "from": "The Resume Studio <hello@example.com>",
        "to": "wei@example.com",
        "subject": "Your executive resume template is here, 李伟",
        "preheader": "The template is attached to this email's link, ready to edit.",
        "reply_to": "coach@example.com",
    }
    html, dark, text = str(shown["html"]), str(shown["html_dark"]), str(shown["text"])
    # the worker's links: the footer's unsubscribe link names the sequence, the download is signed
    assert "https://resumes.example.com/unsubscribe/" in html
    assert "?sequence=executive-resume" in html
    assert "https://resumes.example.com/download/executive-resume/" in html
    assert "color-scheme: dark" in dark
    assert "Unsubscribe: https://resumes.example.com/unsubscribe/" in text
    assert shown["findings"] == []


def test_a_broken_template_shows_its_file_line_and_excerpt_and_the_studio_lives_on(
    folder: Path, tmp_path: Path
) -> None:
    template = folder / TEMPLATE_3
    template.write_text(
        template.read_text().replace("<p>No exact", "<p>{{ contact.nickname.x }}</p>\n<p>No")
    )
    line = template.read_text().splitlines().index("<p>{{ contact.nickname.x }}</p>") + 1
    client = studio(folder, tmp_path)
    error = show(client)["error"]
    assert isinstance(error, dict)
    assert error["file"] == str(template)
    assert error["line"] == line
    assert "has no attribute 'nickname'" in error["message"]
    marked = [x for x in error["excerpt"] if x["marked"]]
    assert marked == [{"number": line, "text": "<p>{{ contact.nickname.x }}</p>", "marked": True}]
    # the other steps still render, and the catalog's problem is listed
    assert "html" in show(client, "template-delivery")
    problems = client.get("/api/state").json()["problems"]
    assert any("nickname" in p["message"] for p in problems)


def test_a_broken_sequence_file_is_a_problem_with_its_line_not_a_crash(
    folder: Path, tmp_path: Path
) -> None:
    path = folder / "executive-resume.yaml"
    path.write_text(path.read_text().replace("delay: 2d", "delay: two days", 1))
    line = path.read_text().splitlines().index("    delay: two days") + 1
    client = studio(folder, tmp_path)
    state = client.get("/api/state").json()
    problem = next(p for p in state["problems"] if p["file"] == str(path))
    assert problem["line"] == line
    assert problem["field"] == "steps[1].delay"
    assert [x["text"] for x in problem["excerpt"] if x["marked"]] == ["    delay: two days"]
    assert client.get("/api/email", params={"sequence": "nope", "step": "x"}).status_code == 404


def test_the_timeline_has_simulates_numbers(folder: Path, tmp_path: Path) -> None:
    client = studio(folder, tmp_path)
    answer = client.get(
        "/api/timeline",
        params={
            "sequence": "executive-resume",
            "signup_at": "2026-10-30T16:30",
            "timezone": "America/New_York",
        },
    ).json()
    from datetime import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    catalog = SequenceCatalog.load(folder, postal_address=ADDRESS)
    expected = simulate(
        catalog.get("executive-resume").definition,
        signup_at=datetime(2026, 10, 30, 16, 30, tzinfo=zone),
        zone=zone,
    )
    assert [(s["step"], s["utc"], s["local"]) for s in answer["sends"]] == [
        (s.step_id, s.due_utc.isoformat(), s.due_local.isoformat()) for s in expected
    ]
    assert answer["sends"][1]["local"] == "2026-11-02T08:00:00-05:00"  # a Monday, after DST
    bad = client.get("/api/timeline", params={"sequence": "executive-resume", "timezone": "Mars"})
    assert bad.status_code == 400
    assert "is not an IANA time zone" in bad.json()["error"]


def test_the_impact_says_plainly_when_no_database_is_configured(
    folder: Path, tmp_path: Path
) -> None:
    answer = studio(folder, tmp_path).get("/api/impact").json()
    assert answer == {
        "available": False,
        "message": "No database is configured (DRIP_DATABASE_URL), so there is no one in"
        " flight to show the effect on.",
    }


def test_the_impact_is_what_plan_says_on_a_configured_database(
    folder: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'drip.db'}"
    upgraded = CliRunner().invoke(app, ["db", "upgrade"], env={"DRIP_DATABASE_URL": url})
    assert upgraded.exit_code == 0, upgraded.output
    answer = studio(folder, tmp_path, database_url=url).get("/api/impact").json()
    assert answer["available"] is True
    series = next(i for i in answer["impacts"] if i["sequence"] == "executive-resume")
    assert series["active"] == 0
    assert "template-delivery" in series["unreached_steps"]


def post(client: TestClient, body: dict[str, object], **headers: str) -> tuple[int, str]:
    answer = client.post("/api/test-send", content=json.dumps(body), headers=headers)
    data = answer.json()
    return answer.status_code, str(data.get("error") or data.get("sent"))


SEND = {"to": "Marketer@Example.com", "sequence": "executive-resume", "step": STEP_3}


def test_a_test_send_goes_to_an_allowed_recipient_through_the_transport(
    folder: Path, tmp_path: Path
) -> None:
    client = studio(folder, tmp_path)
    status, said = post(
        client, {**SEND, "sample": "a long name"}, **{TOKEN_HEADER: "the-run-token"}
    )
    assert (status, said) == (200, f"sent {STEP_3} to marketer@example.com")
    [sent] = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in (tmp_path / "outbox").glob("*.eml")
    ]
    assert sent["Subject"] == "[TEST] Duties describe a job. Numbers describe you."
    assert sent["To"].addresses[0].addr_spec == "marketer@example.com"
    assert "List-Unsubscribe" in sent


@pytest.mark.parametrize(
    ("headers", "body", "status", "said"),
    [
        ({}, SEND, 403, "refused: the X-Studio-Token header is missing or wrong"),
        ({TOKEN_HEADER: "guess"}, SEND, 403, "refused: the X-Studio-Token header is missing"),
        (
            {TOKEN_HEADER: "the-run-token", "Origin": "https://evil.example"},
            SEND,
            403,
            "refused: a request from https://evil.example",
        ),
        (
            {TOKEN_HEADER: "the-run-token"},
            {**SEND, "to": "someone@else.example"},
            403,
            "someone@else.example is not in DRIP_TEST_RECIPIENTS (marketer@example.com)",
        ),
        ({TOKEN_HEADER: "the-run-token"}, {"to": 1}, 400, "send JSON with to, sequence"),
    ],
)
def test_a_test_send_is_refused_without_the_token_from_elsewhere_or_to_anyone_else(
    folder: Path,
    tmp_path: Path,
    headers: dict[str, str],
    body: dict[str, object],
    status: int,
    said: str,
) -> None:
    client = studio(folder, tmp_path)
    answer = post(client, body, **headers)
    assert answer[0] == status
    assert answer[1].startswith(said), answer
    assert not (tmp_path / "outbox").exists()


def test_with_no_test_recipients_the_button_is_off_and_says_why(
    folder: Path, tmp_path: Path
) -> None:
    client = studio(folder, tmp_path, test_recipients=())
    assert "Set DRIP_TEST_RECIPIENTS" in client.get("/").text
    status, said = post(client, SEND, **{TOKEN_HEADER: "the-run-token"})
    assert status == 403
    assert said.startswith("test sends are off: set DRIP_TEST_RECIPIENTS")


def test_a_request_for_another_host_name_is_refused(folder: Path, tmp_path: Path) -> None:
    # A page on the web whose name was rebound to 127.0.0.1 sends its own Host header.
    rebound = TestClient(studio(folder, tmp_path).app, base_url="http://attacker.example:8025")
    assert rebound.get("/api/state").status_code == 400


def test_production_refuses_the_studio(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    settings = Settings.model_construct(
        **{**Settings().model_dump(), "env": Environment.PRODUCTION, "sequences_dir": folder}
    )
    with pytest.raises(StudioRefused, match="does not run with DRIP_ENV=production"):
        studio_config(settings)


def test_the_command_refuses_production_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    settings = Settings.model_construct(
        **{**Settings().model_dump(), "env": Environment.PRODUCTION, "sequences_dir": folder}
    )
    monkeypatch.setattr("drip.cli.sequences.load_settings", lambda: settings)
    result = CliRunner().invoke(app, ["studio", "--port", "1"])
    assert result.exit_code == 2
    assert "drip studio is a local preview" in result.output
    assert "DRIP_ENV=production" in result.output


def test_settings_read_test_recipients(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("DRIP_TEST_RECIPIENTS", " a@example.com, b@example.com ,")
    monkeypatch.setenv("DRIP_SEQUENCES_DIR", str(folder))
    monkeypatch.delenv("DRIP_ENV", raising=False)
    settings = Settings()
    assert settings.test_recipient_addresses == ("a@example.com", "b@example.com")
    assert studio_config(settings).test_recipients == ("a@example.com", "b@example.com")


def test_saving_a_file_reloads_the_workspace_and_wakes_the_pages(folder: Path) -> None:
    async def scenario() -> tuple[int, bool]:
        workspace = Workspace(folder, postal_address=ADDRESS)
        changes, stop = Changes(), asyncio.Event()
        task = asyncio.create_task(watch(workspace, changes, stop))
        try:
            # Given the watcher is running (a first save proves it), when a template is broken
            async def saved(action: object) -> int:
                seen = changes.generation
                deadline = asyncio.get_running_loop().time() + 5
                while changes.generation == seen:
                    if asyncio.get_running_loop().time() > deadline:
                        raise AssertionError("no reload within 5 s")
                    await changes.wait_past(seen, timeout=0.2)
                    if changes.generation == seen and callable(action):
                        action()
                return changes.generation

            await saved(lambda: (folder / "notes.txt").write_text("x"))
            template = folder / TEMPLATE_3
            template.write_text("{% if %}")
            generation = await saved(None)
            broken = any(str(template) in p.file for p in workspace.snapshot.problems)
            return generation, broken
        finally:
            stop.set()
            await asyncio.wait_for(task, 5)

    generation, broken = asyncio.run(scenario())
    assert generation >= 3
    assert broken


def test_the_server_listens_on_loopback_only(folder: Path, tmp_path: Path) -> None:
    from drip.studio.server import studio_server

    config = StudioConfig(folder=folder, postal_address=ADDRESS, base_url="https://x.example")
    server = studio_server(config, port=8999)
    assert (server.config.host, server.config.port) == ("127.0.0.1", 8999)


def test_a_template_that_is_not_text_is_an_error_on_the_page_not_a_crash(
    folder: Path, tmp_path: Path
) -> None:
    (folder / TEMPLATE_3).write_bytes(b"\xff\xfe<p>\x00\x81</p>")
    client = studio(folder, tmp_path)
    error = show(client)["error"]
    assert isinstance(error, dict)
    assert "UnicodeDecodeError" in error["message"] or "codec" in error["message"]
    assert client.get("/api/state").json()["problems"]
    assert "html" in show(client, "template-delivery")
