"""The one progress protocol: what each adapter turns a call into."""

from __future__ import annotations

import logging

import pytest

from biodiscover.storage.progress import describe, log_progress, messages, no_progress, within


def test_within_maps_a_sub_job_into_its_share_of_a_stage() -> None:
    calls: list[tuple[str, float, float | None, str]] = []

    def record(stage: str, done: float, total: float | None = None, message: str = "") -> None:
        calls.append((stage, done, total, message))

    part = within(record, "train", 0.2, 0.5)
    part("pretraining", 5, 10)
    part("aligning", 20, 10, "epoch 3/3")  # overshoot is capped
    part("note", 0, None, "no count")
    assert calls == [("train", pytest.approx(0.45), 1.0, "pretraining"), ("train", pytest.approx(0.7), 1.0,
                     "epoch 3/3"), ("train", pytest.approx(0.2), 1.0, "no count")]
    say = messages(record, "reference")
    say("reading train")
    assert calls[-1] == ("reference", 0, None, "reading train")
    assert no_progress("x", 1, 2, "ignored") is None


def test_log_progress_logs_the_message_or_the_count(caplog: pytest.LogCaptureFixture) -> None:
    report = log_progress(logging.getLogger("biodiscover.test"))
    with caplog.at_level(logging.INFO, logger="biodiscover.test"):
        report("triage", 2000, 4000)
        report("reference", 0, None, "indexing 12 keys")
        report("silent", 0, None)
    assert caplog.messages == ["triage: 2000/4000", "reference: indexing 12 keys"]


def test_describe_names_the_stage_when_a_call_has_no_count_and_no_message() -> None:
    """The CLI prints ``describe``'s line for every call: a stage-only call must still say which stage."""
    assert describe("loading the model", 0) == "loading the model"
    assert describe("embed", 0.5, 1.0) == "embed: 0.5/1"
    assert describe("triage", 3, 10, "3 of 10 collections") == "triage: 3 of 10 collections"
