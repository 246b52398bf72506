"""holt.yml loading: defaults, Go-project compatibility and one precise error per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from holt_core.config import load_config, parse_config
from holt_core.errors import InvalidInput, NotFound

MINIMAL = """\
version: "1.0"
agents:
  Drafter:
    command: [python3, draft.py]
    bidding_strategy: exclusive
"""


def error_of(text: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as err:
        parse_config(text)
    return err.value


def test_minimal_config_and_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.version == "1.0"
    assert config.orchestrator.max_review_iterations == 3
    assert config.orchestrator.bid_timeout_s == 30.0
    agent = config.agents["Drafter"]
    assert agent.command == ["python3", "draft.py"]
    assert agent.bidding_strategy == "exclusive"
    assert agent.workspace.mode == "ro"
    assert agent.tool_timeout_s == 300.0
    assert agent.bid_timeout_s == 10.0
    assert not agent.is_controller
    assert agent.env_overrides() == {}
    assert config.warnings == []


def test_full_config() -> None:
    config = parse_config(
        """\
version: "1.0"
orchestrator:
  max_review_iterations: 0
  bid_timeout: 1m30s
agents:
  Coder:
    command: [python3, code.py, --port, 8080]
    bid_script: [./bid.sh]
    workspace: {mode: rw}
    timeout: 90
    bid_timeout: 500ms
  Fleet:
    command: [python3, controller.py]
    bidding_strategy: claim
    mode: controller
    worker:
      command: [python3, worker.py]
      max_concurrent: 4
      workspace:
        mode: rw
      image: ignored:latest
services:
  redis: {image: "redis:7-alpine"}
hitl:
  operators: {alice: [approver]}
  rules: [{match: {artefact_type: "Deploy*"}, risk: high}]
  risk_levels: {high: {approvers: [approver]}, medium: {approvers: [approver]}, critical: {approvers: [approver]}}
"""
    )
    assert config.orchestrator.max_review_iterations == 0
    assert config.orchestrator.bid_timeout_s == 90.0
    coder = config.agents["Coder"]
    assert coder.command == ["python3", "code.py", "--port", "8080"]  # numbers become arguments
    assert coder.bid_script == ["./bid.sh"] and coder.bidding_strategy is None
    assert coder.workspace.mode == "rw"
    assert coder.tool_timeout_s == 90.0 and coder.bid_timeout_s == 0.5
    fleet = config.agents["Fleet"]
    assert fleet.is_controller
    assert fleet.worker is not None
    assert fleet.worker.max_concurrent == 4 and fleet.worker.workspace.mode == "rw"
    assert config.hitl.risk_for(artefact_type="DeployPlan") == "high"
    assert config.hitl.roles_of("alice") == {"approver"}
    assert list(config.agents) == ["Coder", "Fleet"]


def test_go_project_file_loads_with_warnings() -> None:
    config = parse_config(
        """\
version: "1.0"
agents:
  Writer:
    role: "Writer"
    image: "writer-agent:latest"
    build:
      context: ./agents/writer
    command: ["/app/run.sh"]
    bidding_strategy: "claim"
    replicas: 1
    strategy: reuse
    resources: {limits: {cpus: "1", memory: 512m}}
    prompts: {claim: "x", execution: "y"}
    health_check: {command: [true], interval: 30s, timeout: 5s}
    worker: {command: [x]}
services:
  orchestrator: {image: holt-orchestrator:latest}
"""
    )
    assert config.warnings == [
        "agent 'Writer': image is ignored: holt runs agents as local processes",
        "agent 'Writer': build is ignored: holt runs agents as local processes",
        "agent 'Writer': worker is ignored because mode is not controller",
    ]


def test_environment_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOLT_T_TOKEN", "s3cret")
    monkeypatch.setenv("HOLT_T_PASS", "through")
    monkeypatch.delenv("HOLT_T_UNSET", raising=False)
    monkeypatch.delenv("HOLT_T_MISSING", raising=False)
    config = parse_config(
        MINIMAL
        + """\
    environment:
      - API_TOKEN=$HOLT_T_TOKEN
      - URL=https://x/${HOLT_T_TOKEN}/y
      - LITERAL=a=b
      - HOLT_T_PASS
      - HOLT_T_MISSING
      - EMPTY=
      - KEEP=$HOLT_T_UNSET
"""
    )
    agent = config.agents["Drafter"]
    # Expanded at load time: a later change in the environment does not alter the entries.
    monkeypatch.setenv("HOLT_T_TOKEN", "changed")
    assert agent.env_overrides() == {
        "API_TOKEN": "s3cret",
        "URL": "https://x/s3cret/y",
        "LITERAL": "a=b",
        "HOLT_T_PASS": "through",
        "EMPTY": "",
        "KEEP": "$HOLT_T_UNSET",
    }
    assert config.warnings == [
        "agent 'Drafter': environment variable HOLT_T_MISSING is not set here, so it is not passed",
        "agent 'Drafter': environment entry 'KEEP' uses $HOLT_T_UNSET, which is not set",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL.replace("exclusive", "maybe"),
            "holt.yml:5: agents.Drafter.bidding_strategy: invalid value 'maybe' "
            "(must be review, claim, exclusive or ignore)",
        ),
        (MINIMAL.replace('"1.0"', '"2.0"'), "holt.yml:1: version: unsupported version: 2.0 (expected: 1.0)"),
        (
            MINIMAL.replace('"1.0"', "1.0"),
            'holt.yml:1: version: must be the string "1.0"; quote it: version: "1.0"',
        ),
        ("agents: {}\n", "holt.yml:1: missing required key 'version'"),
        ('version: "1.0"\nagents: {}\n', "holt.yml:2: agents: no agents defined"),
        ('version: "1.0"\nagents:\n', "holt.yml:2: agents: expected a mapping, got null"),
        (
            MINIMAL.replace("    bidding_strategy: exclusive\n", ""),
            "holt.yml:3: agents.Drafter: either bidding_strategy or bid_script must be provided",
        ),
        (
            MINIMAL.replace("[python3, draft.py]", "python3 draft.py"),
            "holt.yml:4: agents.Drafter.command: expected a list of strings, got the string 'python3 draft.py'",
        ),
        (MINIMAL.replace("[python3, draft.py]", "[]"), "holt.yml:4: agents.Drafter.command: must not be empty"),
        (
            MINIMAL.replace("Drafter", "Draft_er"),
            "holt.yml:3: agents.Draft_er: invalid agent role 'Draft_er': "
            "role must be alphanumeric with optional hyphens",
        ),
        (
            MINIMAL.replace("Drafter", "A" * 65),
            f"holt.yml:3: agents.{'A' * 65}: invalid agent role '{'A' * 65}': role name too long (max 64 chars)",
        ),
        (
            MINIMAL + "    mode: worker\n",
            "holt.yml:6: agents.Drafter.mode: invalid value 'worker' (must be controller, or leave mode out)",
        ),
        (
            MINIMAL + "    mode: controller\n",
            "holt.yml:3: agents.Drafter: worker is required when mode is controller",
        ),
        (
            MINIMAL + "    mode: controller\n    worker:\n      command: [w]\n      max_concurrent: 0\n",
            "holt.yml:9: agents.Drafter.worker.max_concurrent: must be >= 1, got 0",
        ),
        (
            MINIMAL + "    workspace: {mode: rwx}\n",
            "holt.yml:6: agents.Drafter.workspace.mode: invalid value 'rwx' (must be ro or rw)",
        ),
        (
            MINIMAL + "    timeout: soon\n",
            "holt.yml:6: agents.Drafter.timeout: invalid duration 'soon' "
            "(use e.g. '30s', '5m', '1h30m' or a number of seconds)",
        ),
        (MINIMAL + "    timeout: 0s\n", "holt.yml:6: agents.Drafter.timeout: must be a positive duration, got '0s'"),
        (
            MINIMAL + "    environment: ['=x']\n",
            "holt.yml:6: agents.Drafter.environment[0]: invalid environment entry '=x' (expected KEY=value or NAME)",
        ),
        (
            MINIMAL + "orchestrator:\n  max_review_iterations: -1\n",
            "holt.yml:7: orchestrator.max_review_iterations: must be >= 0 (0 = unlimited), got -1",
        ),
        (
            MINIMAL + "orchestrator:\n  max_review_iterations: '3'\n",
            "holt.yml:7: orchestrator.max_review_iterations: expected a whole number, got the string '3'",
        ),
        (
            MINIMAL + "orchestrator:\n  health_port: 8080\n",
            "holt.yml:7: orchestrator.health_port: unknown key",
        ),
    ],
)
def test_errors_name_line_and_key_path(text: str, message: str) -> None:
    assert error_of(text).message == message


def test_unknown_key_suggests_the_closest() -> None:
    err = error_of(MINIMAL.replace("    command:", "    comand:"))
    assert err.message == "holt.yml:4: agents.Drafter.comand: unknown key"
    assert err.hint == "did you mean 'command'?"
    # the consequence (command is now missing) is listed after the cause
    assert err.details == ["holt.yml:3: agents.Drafter: missing required key 'command'"]


def test_unknown_key_without_a_close_match_lists_valid_keys() -> None:
    err = error_of(MINIMAL + "zebra: 1\n")
    assert err.message == "holt.yml:6: zebra: unknown key"
    assert err.hint == "valid keys: agents, api, hitl, orchestrator, services, version"


def test_several_problems_first_by_line_rest_in_details() -> None:
    err = error_of(MINIMAL + "    timeout: never\n    workspace: {mode: x}\n")
    assert err.message.startswith("holt.yml:6: agents.Drafter.timeout:")
    assert len(err.details) == 1 and err.details[0].startswith("holt.yml:7: agents.Drafter.workspace.mode:")


def test_duplicate_keys_are_rejected() -> None:
    err = error_of(MINIMAL + "    command: [other]\n")
    assert err.message == "holt.yml:6: agents.Drafter.command: duplicate key (first defined on line 4)"
    err = error_of(MINIMAL + "  Drafter:\n    command: [x]\n")
    assert err.message == "holt.yml:6: agents.Drafter: duplicate key (first defined on line 3)"


def test_malformed_yaml_names_the_line() -> None:
    err = error_of('version: "1.0"\nagents:\n  A:\n    command: [x\n  B: 1\n')
    assert err.message.startswith("holt.yml:5: invalid YAML: ")
    err = error_of('version: "1.0"\n\tagents: {}\n')
    assert err.message.startswith("holt.yml:2: invalid YAML: ")


def test_not_a_mapping_and_empty() -> None:
    assert error_of("").message == "holt.yml:1: the file is empty; it needs version and agents"
    assert error_of("- a\n").message == "holt.yml:1: expected a mapping (version, agents, ...) at the top level"


def test_anchors_merge_keys_and_extension_keys() -> None:
    config = parse_config(
        """\
version: "1.0"
x-common: &common
  command: [python3, agent.py]
  workspace: {mode: rw}
agents:
  A:
    <<: *common
    bidding_strategy: claim
  B:
    <<: *common
    command: [python3, other.py]
    bidding_strategy: review
"""
    )
    assert config.agents["A"].command == ["python3", "agent.py"]
    assert config.agents["A"].workspace.mode == "rw"
    assert config.agents["B"].command == ["python3", "other.py"]


def test_alias_cycles_and_bombs_are_refused() -> None:
    err = error_of('version: "1.0"\nagents:\n  A: &a\n    command: [x]\n    worker: *a\n')
    assert "alias refers to a node that contains it" in err.message
    bomb = 'version: "1.0"\nx-0: &l0 [a, a, a, a, a, a, a, a, a, a]\n'
    for level in range(1, 7):
        bomb += f"x-{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]\n"
    assert "too many aliases" in error_of(bomb).message


def test_load_config(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as missing:
        load_config(tmp_path / "holt.yml")
    assert missing.value.message == f"holt.yml not found in {tmp_path.resolve()}"
    assert missing.value.hint == "holt init creates one"
    (tmp_path / "holt.yml").write_text(MINIMAL)
    assert list(load_config(tmp_path).agents) == ["Drafter"]  # a directory means its holt.yml
    assert list(load_config(tmp_path / "holt.yml").agents) == ["Drafter"]
    (tmp_path / "other.yml").write_text(MINIMAL + "    bogus: 1\n")
    with pytest.raises(InvalidInput, match=r"^other\.yml:6: agents\.Drafter\.bogus: unknown key$"):
        load_config(tmp_path / "other.yml")
    (tmp_path / "holt.yml").write_bytes(b"version: '\xff'\n")
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        load_config(tmp_path)


def test_api_section_checks_slack_user_ids_and_operators() -> None:
    ok = parse_config(MINIMAL + "api:\n  port: 8765\n  slack:\n    users: {U0123ABCD: bob}\n")
    assert ok.api.port == 8765 and ok.api.host == "127.0.0.1" and ok.api.slack.users == {"U0123ABCD": "bob"}
    err = error_of(MINIMAL + "api:\n  slack:\n    users: {'not an id': bob}\n")
    assert "not a Slack user id" in err.message
    err = error_of(MINIMAL + "api:\n  slack:\n    users: {U0123ABCD: 'bob smith'}\n")
    assert "invalid operator name" in err.message
