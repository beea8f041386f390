"""Eight browsers try wrong passwords for one account at the same moment (real processes on
one SQLite workspace): none sees an exception, every failure is counted (none lost between
two processes), so the account locks at exactly the fifth, and each attempt is an audit row."""

from __future__ import annotations

from core import accounts


def test_simultaneous_failed_logins_are_each_counted_and_lock_at_the_fifth(
    workspace, workers, tmp_path
):
    accounts.create_account(workspace, "alice", "admin", password="alice's password")
    accounts.create_account(workspace, "bob", "annotator", password="bob's password", by="alice")
    gate = tmp_path / "gate"
    gate.mkdir()
    specs = [
        {"task": "login", "root": str(workspace.root), "gate": str(gate), "worker": w,
         "workers": workers.WORKERS, "name": "bob", "password": f"guess {w}"}
        for w in range(workers.WORKERS)
    ]  # fmt: skip
    outputs = workers.run_workers(specs, workers.clean_env(), timeout=240)

    errors = [o["error"] for o in outputs if "error" in o]
    assert not errors, f"{len(errors)} logins raised; the first:\n{errors[0]}"
    reasons = sorted(o["refused"] for o in outputs)
    # Five wrong passwords are counted one after the other; the fifth locks; the rest are
    # refused as locked without being looked at.
    assert reasons == ["locked"] * 3 + ["unknown_or_wrong"] * 5
    assert accounts.get_account(workspace, "bob").locked_until is not None
    rows = accounts.audit_rows(workspace, action="login_failed")
    assert len(rows) == workers.WORKERS and {r.actor for r in rows} == {"bob"}
