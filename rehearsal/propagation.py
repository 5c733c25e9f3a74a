"""The roll's hard moment, rehearsed: the new host boots while KMS still answers with the old key policy, and
cards keep coming all the while.

AWS KMS is eventually consistent: a change takes "typically less than a few seconds", "in some cases several
minutes" to reach all of KMS (AWS KMS Developer Guide, "AWS KMS eventual consistency"). The emulator applies
a PutKeyPolicy at once, so the harness holds the roll's new policy back (`HeldPolicy`): CloudFormation's call
has returned and the stack goes on to the group, but the emulator gets the policy only once the new host's
canary has been refused HOLD_REFUSALS times (its boot log shows each retry), so the new image is refused for
a while, as it can be on a real roll. A `Feeder` sends cards through the old host the whole time; a host
that took cards before its canary passed would park them on the dead-letter queue (access_denied is
retried for about 30 s per card within the relay's first 5 minutes, then parked), and `check_nothing_parked`
says so.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rehearsal import keys
from rehearsal.cloud import Cloud
from rehearsal.container import Container
from rehearsal.run import RehearsalFailed, Run

HOLD_REFUSALS = 4  # the canary has then waited 1 + 2 + 4 s and waits 8 more (app/parent/canary.py)
BOOT_LOG = "opt/nitro-enclave-demo/bootstrap.log"  # bootstrap.sh's copy of its output, in the host's root
REFUSED = re.compile(r"^canary: attempt \d+ of \d+: access_denied:", re.MULTILINE)
# Cards per `nitro-demo send` round: two SendMessageBatch calls, so two of the waiting pollers (of either
# host) take them; a round every 2 s or so.
FEED_COUNT = 20
POLL_S = 0.5
NITRO_DEMO = "/usr/local/bin/nitro-demo"
SUMMARY = re.compile(r"^\d+/\d+ ok, ")  # the producer's last line (app/producer)
ACCESS_DENIED = "access_denied"
REJECTED = re.compile(r" rejected +\d+ ms +card_id=\S+ +([a-z_]+):")


def canary_refusals(root: Path) -> int:
    try:
        return len(REFUSED.findall((root / BOOT_LOG).read_text(encoding="utf-8", errors="replace")))
    except FileNotFoundError:
        return 0


@dataclass
class HeldPolicy:
    """The new key policy, put into the emulator once the new host's canary was refused HOLD_REFUSALS times
    (or when the block ends, whatever happened)."""

    run: Run
    cloud: Cloud
    policy: dict[str, Any]
    refusals_seen: int = 0
    applied: threading.Event = field(default_factory=threading.Event)

    def _apply(self, kms: Any) -> None:
        if not self.applied.is_set():
            keys.put_key_policy(self.cloud, self.policy, kms)
            self.applied.set()

    @contextmanager
    def until_refused(self, root: Path) -> Iterator[HeldPolicy]:
        kms, stop = self.cloud.client("kms"), threading.Event()

        def watch() -> None:
            while not stop.is_set():
                self.refusals_seen = canary_refusals(root)
                if self.refusals_seen >= HOLD_REFUSALS:
                    self.run.say(
                        f"KMS propagation: the new host's canary was refused {self.refusals_seen} times; "
                        "the new key policy now takes effect in the emulator"
                    )
                    self._apply(kms)
                    return
                stop.wait(POLL_S)

        watcher = threading.Thread(target=watch, name="kms-propagation", daemon=True)
        watcher.start()
        try:
            yield self
        finally:
            stop.set()
            watcher.join()
            self._apply(kms)


@dataclass
class Feeder:
    """`nitro-demo send FEED_COUNT` on a host, round after round, until the block ends."""

    run: Run
    box: Container
    name: str
    out_name: str = "cards-during-boot.out"  # the rounds' output, in the run's directory
    rounds: list[tuple[int, str]] = field(default_factory=list)  # (exit status, output) of each round

    @contextmanager
    def feeding(self) -> Iterator[Feeder]:
        stop = threading.Event()

        def feed() -> None:
            while not stop.is_set():
                done = self.box.run_unit([NITRO_DEMO, "send", str(FEED_COUNT)])
                self.rounds.append((done.returncode, done.stdout + done.stderr))

        self.run.say(f"cards sent continuously through {self.name}, {FEED_COUNT} per round")
        feeder = threading.Thread(target=feed, name="card-feeder", daemon=True)
        feeder.start()
        try:
            yield self
        finally:
            stop.set()
            feeder.join()
            out = self.run.dir / self.out_name
            out.write_text(
                "".join(f"--- round {i}: exit {rc}\n{text}" for i, (rc, text) in enumerate(self.rounds))
            )

    def failed_rounds(self) -> list[str]:
        """The summary line (`n/m ok, k rejected or wrong, ...`) of each round that did not exit 0."""
        return [
            next((line for line in text.splitlines() if SUMMARY.match(line)), f"exit {rc}")
            for rc, text in self.rounds
            if rc != 0
        ]

    def rejected_codes(self) -> Counter[str]:
        """How many cards came back rejected, by error code (never a card number)."""
        return Counter(code for _, text in self.rounds for code in REJECTED.findall(text))


def dead_letter_depth(cloud: Cloud) -> int:
    """Messages on the dead-letter queue (the queue another queue's RedrivePolicy names), visible or not."""
    targets = {
        props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for props in (q["Properties"] for q in cloud.synthesized.resources("AWS::SQS::Queue").values())
        if "RedrivePolicy" in props
    }
    (dead_letter,) = targets
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    found = cloud.client("sqs").get_queue_attributes(QueueUrl=cloud.refs[dead_letter], AttributeNames=names)
    return sum(int(found["Attributes"][n]) for n in names)


def failure_cause(codes: Counter[str]) -> str:
    """What the rejected codes of the failed rounds say went wrong."""
    if codes.get(ACCESS_DENIED):
        return (
            "a host's relay took cards while KMS still refused its image (access_denied): it served before "
            "its canary passed, or gave up on access_denied within KMS's propagation delay"
        )
    if codes:
        return "cards were rejected for a reason other than the key policy (the codes above)"
    return "no card was rejected: a send round failed on its own (missing results or the producer's error)"


def check_nothing_parked(run: Run, cloud: Cloud, feeder: Feeder, held: HeldPolicy, new_host: str) -> None:
    """Every card sent while the new host booted came back ok and the dead-letter queue is empty."""
    parked, failed, codes = dead_letter_depth(cloud), feeder.failed_rounds(), feeder.rejected_codes()
    cards = sum(FEED_COUNT for _ in feeder.rounds)
    run.say(
        f"{cards} cards sent in {len(feeder.rounds)} rounds while {new_host} booted and the key policy "
        f"propagated ({held.refusals_seen} canary refusals first); {len(failed)} round(s) failed; "
        f"dead-letter queue holds {parked}"
    )
    if held.refusals_seen < HOLD_REFUSALS:
        raise RehearsalFailed(
            "KMS propagation",
            f"{new_host}'s canary was refused {held.refusals_seen} times before it signalled, not "
            f"{HOLD_REFUSALS}: the propagation delay was not rehearsed",
        )
    if parked or failed:
        raise RehearsalFailed(
            "cards during the new host's boot",
            f"{parked} card(s) parked on the dead-letter queue; rejected: "
            f"{', '.join(f'{n} {code}' for code, n in codes.most_common()) or 'none'}; {len(failed)} of "
            f"{len(feeder.rounds)} send rounds failed ({'; '.join(failed[:3])}): {failure_cause(codes)}; "
            f"rounds in {run.dir / 'cards-during-boot.out'}",
        )
    if not feeder.rounds:
        raise RehearsalFailed(
            "cards during the new host's boot", "no card was sent while the new host booted"
        )
