"""Adversarial inputs, second pass (issue 26): settings a saved run cannot change, and inputs
that used to end in a traceback. Every refusal on the command line is one line, exit 2."""

from __future__ import annotations

import json

import pytest

from mind_core.cli import main
from tests.cli.test_trust import FAKE, one_line
from tests.cli.test_trust_data import stopped_run


def edit_config(run, **changes) -> None:
    path = run / "config.json"
    saved = json.loads(path.read_text())
    saved["config"].update(changes)
    path.write_text(json.dumps(saved))


@pytest.mark.parametrize("started, edited", [
    (["method=lwf"], {"method": "ewc"}),
    (["method=ewc"], {"method": "lwf"}),
    ([], {"method": "finetune"}),
    (["variant=mind"], {"variant": "teacher_slice"}),
])
def test_resume_refuses_a_method_or_variant_edited_in_config_json(tmp_path, capsys, started,
                                                                  edited):
    out = tmp_path / "run"
    stopped_run(out, settings=started)
    original = (out / "config.json").read_text()
    edit_config(out, **edited)
    assert main(["resume", str(out), *FAKE]) == 2
    err = capsys.readouterr().err
    key = next(iter(edited))
    assert one_line(err) and f"state field '{key}'" in err and "resumes only as it" in err, err
    (out / "config.json").write_text(original)
    assert main(["resume", str(out), *FAKE, "--quiet"]) == 0
