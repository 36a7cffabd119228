"""Fault injection: drip under provider faults, killed processes and restarted servers.

`make chaos` runs the full plan; a bounded plan runs in the test suite. The run uses
real processes (`drip api`, `drip scheduler`, `drip worker`), the machine's PostgreSQL
and Redis, and a fake SendGrid that injects faults and posts signed `processed` events.
The verdict comes from the fake's own log, keyed by `delivery_id`: every delivery must
be accepted by the provider exactly once, or end failed with a reason; none lost, none
twice; and no email may be accepted after its recipient's unsubscribe was acknowledged.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import psycopg
import redis
from sqlalchemy import select

from drip.config import Settings
from drip.db import create_db_engine, session_factory, transaction, utcnow
from drip.deliveries.moves import hand_back
from drip.migrate import upgrade_database
from drip.models import Contact, Delivery, DeliveryStatus, Enrollment, EnrollmentStatus
from drip.sequences.catalog import SequenceCatalog
from drip.signup.request import SignupRequest
from drip.signup.service import enroll_contact
from drip.testing.fake_sendgrid import FakeSendGrid, Faults
from drip.testing.signing import WebhookSigner
from drip.testing.threads import run_concurrently
from drip.unsubscribe.tokens import TokenSigner

#: How the machine's services are restarted (the same commands that start them for CI).
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]

SEQUENCE = """id: chaos
name: Chaos series
from: {email: hello@example.com, name: Chaos}
layout: base.html
steps:
  - {id: one, delay: 0s, subject: "One {{ contact.first_name or '' }}", template: one.html}
  - {id: two, delay: 1s, subject: "Two", template: two.html}
  - {id: three, delay: 1s, subject: "Three", template: three.html}
"""


@dataclass
class Plan:
    """What a chaos run does: how many contacts, which faults, how long it may take."""

    contacts: int = 700
    race_contacts: int = 500
    worker_kills: int = 3
    redis_restarts: int = 1
    postgres_restarts: int = 1
    scheduler_kills: int = 1
    faults: Faults = field(
        default_factory=lambda: Faults(
            rate_limit=0.03,
            rate_limit_reset=0.5,
            error_500=0.03,
            error_503=0.03,
            reset=0.02,
            slow=0.01,
            slow_seconds=1.5,
            accept_then_drop=0.02,
            seed=11,
        )
    )
    #: Seconds the whole run may take, from setup to verdict: every wait counts against it,
    #: and a wait that would pass it raises TimeoutError naming what it waited for.
    deadline: float = 900.0
    postgres_admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/12"
    schema: Path = Path("../shared/sendgrid/mail_send.schema.json")


@dataclass
class FaultRecord:
    """One fault injected during a run, and how the system recovered from it."""

    kind: str
    at: float
    recovered_in: float | None = None


@dataclass
class Verdict:
    """What a chaos run found: sent once, lost, duplicated, and sent after an unsubscribe."""

    deliveries: int = 0
    sent_once: int = 0
    failed_with_reason: int = 0
    lost: int = 0
    duplicated: int = 0
    sent_after_unsubscribe: int = 0
    race_contacts: int = 0
    race_emails_before_ack: int = 0
    ambiguous_settled_by_event: int = 0
    ambiguous_resent_after_wait: int = 0
    faults_from_provider: dict[str, int] = field(default_factory=dict)
    faults: list[FaultRecord] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """Whether every email went exactly once and nothing after an unsubscribe."""
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.sent_after_unsubscribe == 0
            and (self.sent_once + self.failed_with_reason == self.deliveries)
        )

    def table(self, command: str) -> str:
        """The reliability table in Markdown."""
        lines = [
            "| fault | injected | time until all work in flight at the fault settled "
            "(median / max) |",
            "|---|---|---|",
        ]
        for kind, count in sorted(self.faults_from_provider.items()):
            if kind != "accept":
                lines.append(
                    f"| provider: {kind.replace('_', ' ')} | {count} emails | retried or settled |"
                )
        kinds: dict[str, list[FaultRecord]] = {}
        for record in self.faults:
            kinds.setdefault(record.kind, []).append(record)
        for kind, records in kinds.items():
            times = [r.recovered_in for r in records if r.recovered_in is not None]
            span = f"{median(times):.1f} s / {max(times):.1f} s" if times else "n/a"
            lines.append(f"| {kind} | {len(records)} | {span} |")
        lines += [
            "",
            "| answer lost after the request went out | deliveries |",
            "|---|---|",
            "| provider had accepted: settled from the `processed` event, not resent | "
            f"{self.ambiguous_settled_by_event} |",
            "| provider had not accepted: resent once `DRIP_AMBIGUOUS_WAIT` passed "
            f"(policy `resend`) | {self.ambiguous_resent_after_wait} |",
        ]
        lines += [
            "",
            "| deliveries | sent once | failed with reason | lost | duplicated | "
            "sent after unsubscribe (of race contacts) | run time |",
            "|---|---|---|---|---|---|---|",
            f"| {self.deliveries} | {self.sent_once} | {self.failed_with_reason} | {self.lost} | "
            f"{self.duplicated} | {self.sent_after_unsubscribe} (of {self.race_contacts}) | "
            f"{self.seconds:.0f} s |",
            "",
            f"Reproduce: `{command}`",
        ]
        return "\n".join(lines)


class Run:
    """One chaos run; call `execute()`."""

    def __init__(self, plan: Plan, log: Callable[[str], None] = print) -> None:
        self.plan, self.log = plan, log
        self.work = Path(tempfile.mkdtemp(prefix="drip-chaos-"))
        self.database = f"drip_chaos_{uuid.uuid4().hex[:8]}"
        self.namespace = f"chaos-{uuid.uuid4().hex[:8]}"
        self.signer = WebhookSigner()
        self.port = _free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.verdict = Verdict()
        self.ends_by = time.monotonic() + plan.deadline
        self._done = threading.Event()

    # -- setup -------------------------------------------------------------------------------
    def _settings(self, fake_url: str) -> Settings:
        url = self.plan.postgres_admin_url.rsplit("/", 1)[0] + f"/{self.database}"
        return Settings(
            database_url=url,
            redis_url=self.plan.redis_url,
            redis_namespace=self.namespace,
            transport="sendgrid",
            sendgrid_api_key="SG.chaos",
            sendgrid_host=fake_url,
            sendgrid_timeout=1.0,
            sendgrid_webhook_public_key=self.signer.public_key,
            sequences_dir=self.work / "sequences",
            secret_key="chaos-only",  # noqa: S106 - a throwaway database
            default_sequence="chaos",
            base_url=f"http://127.0.0.1:{self.port}",
            scheduler_interval=0.2,
            scheduler_batch_size=100,
            # Three different waits, so a rule that uses the wrong one changes the run.
            queue_lease=4,
            send_lease=8,
            ambiguous_wait=6,
            send_min_backoff=0.2,
            send_max_backoff=2,
            send_max_attempts=12,
            worker_metrics_port=0,
            signup_rate_per_ip="100000/minute",
            state_dir=self.work / ".drip",
        )

    def _env(self, settings: Settings) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIP_")}
        for name, value in settings.model_dump().items():
            if value is not None:
                env[f"DRIP_{name.upper()}"] = str(getattr(value, "value", value))
        return env

    def _start(self, name: str, *args: str) -> None:
        out = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "drip", *args],
            env=self.env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )

    def _kill(self, name: str) -> None:
        process = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    # -- the run -----------------------------------------------------------------------------
    def execute(self) -> Verdict:
        """Run the plan within `plan.deadline` seconds and judge it."""
        started = time.monotonic()
        self.ends_by = started + self.plan.deadline
        (self.work / "sequences" / "templates").mkdir(parents=True)
        (self.work / "sequences" / "chaos.yaml").write_text(SEQUENCE)
        templates = self.work / "sequences" / "templates"
        (templates / "base.html").write_text(
            '<html><body>{{ content }}<a href="{{ unsubscribe_url }}">u</a>'
            " {{ postal_address }}</body></html>"
        )
        for step in ("one", "two", "three"):
            (templates / f"{step}.html").write_text(f"<p>Email {step}.</p>")
        with psycopg.connect(self.plan.postgres_admin_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {self.database}")
        fake = FakeSendGrid(
            self.plan.schema,
            api_key="SG.chaos",
            faults=self.plan.faults,
            webhook_url=f"http://127.0.0.1:{self.port}/webhooks/sendgrid",
            signer=self.signer,
        )
        fake.start()
        settings = self._settings(fake.url)
        self.env = self._env(settings)
        upgrade_database(settings.database_url)
        engine = create_db_engine(settings.database_url, pool_size=4)
        sessions = session_factory(engine)
        try:
            self._seed(sessions, settings, self.plan.contacts, prefix="c")
            self._start("api", "api", "--port", str(self.port))
            self._wait(lambda: _healthy(self.port), 60, "the API")
            self._start("worker", "worker", "--processes", "2", "--threads", "4")
            self._start("scheduler", "scheduler")
            self._main_phase(fake, sessions)
            self._race_phase(fake, sessions, settings)
            self._judge(fake, sessions)
        finally:
            self._done.set()
            for name in list(self.processes):
                self._kill(name)
            fake.stop()
            engine.dispose()
            self._drop_database()
        self.verdict.seconds = time.monotonic() - started
        return self.verdict

    def _seed(self, sessions: Any, settings: Settings, count: int, *, prefix: str) -> list[int]:
        catalog = SequenceCatalog.load(settings.sequences_dir, postal_address="1 Example Street")
        ids = []
        with transaction(sessions) as session:
            for n in range(count):
                result = enroll_contact(
                    session,
                    SignupRequest(email=f"{prefix}{n}@example.com"),
                    catalog=catalog,
                    default_sequence="chaos",
                    now=utcnow(),
                    queue_lease=60,
                )
                if result.delivery_to_enqueue:
                    ids.append(result.delivery_to_enqueue)
            # Seeded for the scheduler to claim, not for this process to enqueue.
            hand_back(session, ids, now=utcnow())
        return ids

    def _main_phase(self, fake: FakeSendGrid, sessions: Any) -> None:
        expected = self.plan.contacts * 3
        schedule: list[tuple[float, str]] = []
        schedule += [
            ((i + 1) / (self.plan.worker_kills + 1) * 0.8, "worker killed (SIGKILL)")
            for i in range(self.plan.worker_kills)
        ]
        schedule += [(0.3, "scheduler killed (SIGKILL)")] * self.plan.scheduler_kills
        schedule += [(0.5, "Redis restarted")] * self.plan.redis_restarts
        schedule += [(0.62, "PostgreSQL restarted")] * self.plan.postgres_restarts
        schedule.sort()
        while time.monotonic() < self.ends_by:
            progress = len(fake.accepted) / expected
            while schedule and progress >= schedule[0][0]:
                self._inject(schedule.pop(0)[1], fake, sessions)
            if not schedule and self._settled(sessions):
                return
            time.sleep(0.25)
        self.log("the main phase hit its deadline")

    def _inject(self, kind: str, fake: FakeSendGrid, sessions: Any) -> None:
        self.log(f"fault: {kind} at {len(fake.accepted)} accepted")
        in_flight = self._in_flight(sessions)
        record = FaultRecord(kind, time.monotonic())
        if kind.startswith("worker"):
            self._kill("worker")
            self._start("worker", "worker", "--processes", "2", "--threads", "4")
        elif kind.startswith("scheduler"):
            self._kill("scheduler")
            self._start("scheduler", "scheduler")
        elif kind.startswith("Redis"):
            redis.Redis.from_url(self.plan.redis_url).shutdown(nosave=True)
            subprocess.run(REDIS_START, check=True, capture_output=True)
            self._wait(lambda: _redis_up(self.plan.redis_url), 30, "Redis")
        elif kind.startswith("PostgreSQL"):
            version = sorted(os.listdir("/etc/postgresql"))[-1]
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
                check=True,
                capture_output=True,
            )
        threading.Thread(  # it never raises: the database itself may be the fault
            target=self._time_recovery, args=(record, sessions, in_flight), daemon=True
        ).start()
        self.verdict.faults.append(record)

    def _in_flight(self, sessions: Any) -> set[int]:
        with sessions() as session:
            return set(
                session.scalars(
                    select(Delivery.id).where(
                        Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING])
                    )
                )
            )

    def _time_recovery(self, record: FaultRecord, sessions: Any, in_flight: set[int]) -> None:
        """Recovered when every delivery that was queued or sending at the fault has settled."""
        while time.monotonic() < self.ends_by and not self._done.is_set():
            try:
                if not in_flight or not self._in_flight(sessions) & in_flight:
                    record.recovered_in = round(time.monotonic() - record.at, 2)
                    return
            except Exception:  # noqa: S110 - the database itself may be the fault
                pass
            time.sleep(0.1)

    def _settled(self, sessions: Any) -> bool:
        try:
            with sessions() as session:
                open_rows = session.scalars(
                    select(Delivery.id)
                    .where(
                        Delivery.status.in_(
                            [
                                DeliveryStatus.SCHEDULED,
                                DeliveryStatus.QUEUED,
                                DeliveryStatus.SENDING,
                            ]
                        )
                    )
                    .limit(1)
                ).first()
                active = session.scalars(
                    select(Enrollment.id)
                    .where(Enrollment.status == EnrollmentStatus.ACTIVE)
                    .limit(1)
                ).first()
            return open_rows is None and active is None
        except Exception:
            return False

    def _race_phase(self, fake: FakeSendGrid, sessions: Any, settings: Settings) -> None:
        """Contacts with email 1 due now, all unsubscribing while the workers send."""
        count = self.plan.race_contacts
        if not count:
            return
        if time.monotonic() >= self.ends_by:
            self.log("no time left for the race phase")
            return
        self.verdict.race_contacts = count
        self._seed(sessions, settings, count, prefix="race")
        tokens = TokenSigner(settings.resolved_secret_key())
        with sessions() as session:
            people = {
                c.email: tokens.sign(c.public_id)
                for c in session.scalars(select(Contact).where(Contact.email.like("race%")))
            }
        self.acknowledged: dict[str, float] = {}
        lock = threading.Lock()

        def unsubscribe(batch: list[tuple[str, str]]) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30) as client:
                for email, token in batch:
                    response = client.post(
                        f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}
                    )
                    if response.status_code == 200:
                        with lock:
                            self.acknowledged[email] = time.monotonic()

        items = sorted(people.items())
        # An unsubscribe that raised would leave its contacts out of the race unnoticed.
        run_concurrently(
            unsubscribe,
            [(items[i::16],) for i in range(16)],
            timeout=max(self.ends_by - time.monotonic(), 1),
        )
        self._wait(lambda: self._settled(sessions), 120, "the race phase to settle")

    def _judge(self, fake: FakeSendGrid, sessions: Any) -> None:
        v = self.verdict
        v.faults_from_provider = dict(Counter(outcome for _, outcome in fake.log))
        accepted = Counter(a.delivery_id for a in fake.accepted)
        with sessions() as session:
            rows = session.execute(
                select(Delivery.id, Delivery.status, Delivery.error, Contact.email).join(
                    Contact, Contact.id == Delivery.contact_id
                )
            ).all()
            enrollments = session.execute(
                select(Enrollment.status, Contact.email).join(
                    Contact, Contact.id == Enrollment.contact_id
                )
            ).all()
        for delivery_id, status, error, email in rows:
            times = accepted.get(str(delivery_id), 0)
            if email.startswith("race"):
                continue
            v.deliveries += 1
            if times > 1:
                v.duplicated += 1
            if status is DeliveryStatus.SENT and times == 1:
                v.sent_once += 1
            elif status is DeliveryStatus.FAILED and error and times == 0:
                v.failed_with_reason += 1
            elif (status is DeliveryStatus.SENT and times == 0) or status in (
                DeliveryStatus.SCHEDULED,
                DeliveryStatus.QUEUED,
                DeliveryStatus.SENDING,
            ):
                v.lost += 1
        failed_people = {email for _, status, _, email in rows if status is DeliveryStatus.FAILED}
        v.lost += sum(
            1
            for status, email in enrollments
            if not email.startswith("race")
            and status is not EnrollmentStatus.COMPLETED
            and email not in failed_people
        )
        for a in fake.accepted:
            email = a.payload["personalizations"][0]["to"][0]["email"]
            if email.startswith("race"):
                acked = self.acknowledged.get(email)
                if acked is not None and a.at > acked:
                    v.sent_after_unsubscribe += 1
                else:
                    v.race_emails_before_ack += 1
        # Answers lost after the request went out: accepted ones must be settled from the
        # `processed` event (never sent again); the others resent once the wait is over.
        outcomes: dict[str, list[str]] = {}
        for delivery_id, outcome in fake.log:
            outcomes.setdefault(str(delivery_id), []).append(outcome)
        for delivery_id, seen in outcomes.items():
            if "accept_then_drop" in seen and accepted.get(delivery_id) == 1:
                v.ambiguous_settled_by_event += 1
            elif ("reset" in seen or "slow" in seen) and accepted.get(delivery_id) == 1:
                v.ambiguous_resent_after_wait += 1

    # -- helpers -----------------------------------------------------------------------------
    def _wait(self, condition: Callable[[], bool], seconds: float, what: str) -> None:
        """Poll `condition` for up to `seconds`, and never past the run's deadline."""
        deadline = min(time.monotonic() + seconds, self.ends_by)
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}; logs in {self.work}")
            time.sleep(0.1)

    def _drop_database(self) -> None:
        for _ in range(50):
            try:
                with psycopg.connect(self.plan.postgres_admin_url, autocommit=True) as admin:
                    admin.execute(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
                return
            except psycopg.OperationalError:
                time.sleep(0.2)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _redis_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.RedisError:
        return False
