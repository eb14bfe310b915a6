"""Offline checks of infra/: formatting, a security scan and the properties the design promises.

No cloud account and no provider download: the HCL is parsed with python-hcl2 and the promises
(one identity per function, least privilege, a private database, every setting the code reads
set for every function) are asserted on the parsed configuration itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hcl2.api import load as load_hcl
from hcl2.utils import SerializationOptions

from common.ingestion.monitoring import MAX_OVERDUE_MINUTES, MIN_OVERDUE_MINUTES, SweepFigures
from common.platform import packaging
from common.platform.config import ENV_PREFIX, Settings

INFRA = Path(__file__).resolve().parent.parent / "infra"
# Labels and strings as plain Python values, comments left out.
HCL_OPTIONS = SerializationOptions(strip_string_quotes=True, with_comments=False)
# checkov vendors a fork of python-hcl2 under the same import name as the python-hcl2 these tests
# parse with, so it lives in a locked environment of its own (tools/checkov), synced on first use.
CHECKOV_PROJECT = INFRA.parent / "tools" / "checkov"
CHECKOV = [
    os.environ.get("UV") or shutil.which("uv") or "uv",
    "run",
    "--quiet",
    "--locked",
    "--project",
    str(CHECKOV_PROJECT),
    "checkov",
]

# Settings each function needs in the cloud, by entry point. The cloud-mode validator's own
# requirements (instance + IAM user) are listed explicitly and checked below against config.py.
COMMON_REQUIRED = set(
    [
        "mode",
        "db_instance_connection_name",
        "db_iam_user",
        "db_name",
        "db_ip_type",
        "gcp_project",
        "gcp_location",
        "bucket",
        "jobs_topic",
        "dead_letter_topic",
        "embedding_provider",
        "embedding_model",
        "embedding_dim",
        "max_delivery_attempts",
    ]
)
REQUIRED_BY_ENTRY_POINT = {
    "ingest_trigger": COMMON_REQUIRED,
    "chunk_embed": COMMON_REQUIRED | {"job_timeout_seconds", "max_file_bytes", "max_pdf_pages"},
    "query": COMMON_REQUIRED
    | {
        "generation_provider",
        "generation_model",
        "max_request_bytes",
        "rerank_provider",
        "rerank_model",
    },
    "dead_letter": COMMON_REQUIRED,
    "sweep": COMMON_REQUIRED | {"job_timeout_seconds"},
}

# Settings Terraform leaves at the code's defaults (tunable through var.settings_overrides), and
# settings only the local stack and the tests use, which must never reach a cloud function.
TUNABLE = set(
    [
        "db_pool_timeout_seconds",
        "embedding_batch_size",
        "embedding_concurrency",
        "model_max_retries",
        "model_retry_base_seconds",
        "model_retry_max_seconds",
        "default_temperature",
        "system_prompt",
        "chunk_tokens",
        "job_lease_seconds",
        "job_republish_seconds",
        "chunk_overlap_tokens",
        "default_top_k",
        "hnsw_ef_search",
        "exact_search_max_chunks",
        "default_requests_per_minute",
        "upload_url_ttl_seconds",
        "url_fetch_timeout_seconds",
        "rerank_candidates",
        "rerank_timeout_seconds",
        "ingest_team_max_running",
        "ingest_handoff_seconds",
        "embedding_quota_per_minute",
        "max_sheet_rows",
        "max_image_pixels",
        "ocr_dpi",
    ]
)
LOCAL_ONLY = set(
    [
        "database_url",
        "local_data_dir",
        "storage_emulator_host",
        "pubsub_emulator_host",
        "event_sink_url",
        "pubsub_rest_url",
        "vertex_base_url",
        "vertex_access_token",
        "sweep_interval_seconds",
        "signed_url_endpoint",
        "url_fetch_allow_loopback",
        "rerank_base_url",
    ]
)
SECRET = {"openai_api_key"}  # from Secret Manager, when generation_provider = openai

# Values standing in for resource attributes Terraform only knows after apply.
RESOURCE_SAMPLES = {
    "AI_INFRA_DB_INSTANCE_CONNECTION_NAME": "my-project:us-central1:ai-infra-pg",
    "AI_INFRA_DB_NAME": "ai_infra",
    "AI_INFRA_BUCKET": "my-project-ai-infra-documents",
    "AI_INFRA_JOBS_TOPIC": "ai-infra-ingest-jobs",
    "AI_INFRA_DEAD_LETTER_TOPIC": "ai-infra-ingest-jobs-dead-letter",
}
SAMPLE_PROJECT = "my-project"

# The custom role that lets the query account call the Vertex AI ranking API, and nothing else.
RANKER_ROLE = "${google_project_iam_custom_role.ranker[0].name}"
RANK_PERMISSION = "discoveryengine.rankingConfigs.rank"
# Every role the deployment may grant, and where. Anything else is a finding.
ALLOWED_ROLES = {
    "google_project_iam_member": {
        "roles/cloudsql.client",
        "roles/cloudsql.instanceUser",
        "roles/aiplatform.user",
        "roles/eventarc.eventReceiver",
        "roles/logging.logWriter",
        "roles/pubsub.publisher",  # the Cloud Storage service agent, for Eventarc
        "roles/storage.objectViewer",  # the builder, conditioned to source buckets
        RANKER_ROLE,  # the query account, only when it reranks: one permission, see below
    },
    "google_storage_bucket_iam_member": {"roles/storage.objectViewer", "roles/storage.objectAdmin"},
    "google_pubsub_topic_iam_member": {"roles/pubsub.publisher"},
    "google_pubsub_subscription_iam_member": {"roles/pubsub.subscriber"},
    "google_cloud_run_v2_service_iam_member": {"roles/run.invoker"},
    "google_artifact_registry_repository_iam_member": {"roles/artifactregistry.writer"},
    "google_service_account_iam_member": {"roles/iam.serviceAccountTokenCreator"},
    "google_secret_manager_secret_iam_member": {"roles/secretmanager.secretAccessor"},
}


# --- parsing ------------------------------------------------------------------------------------


def _one(value: Any) -> Any:
    """python-hcl2 wraps attribute values in one-element lists; unwrap them."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


@pytest.fixture(scope="module")
def tf() -> dict[str, Any]:
    """All infra/*.tf merged: resources by type and name, variables, locals."""
    merged: dict[str, Any] = {"resource": {}, "variable": {}, "locals": {}, "output": {}}
    for path in sorted(INFRA.glob("*.tf")):
        with path.open() as handle:
            data = load_hcl(handle, serialization_options=HCL_OPTIONS)
        for block in data.get("resource", []):
            for rtype, instances in block.items():
                merged["resource"].setdefault(rtype, {}).update(instances)
        for key in ("variable", "locals", "output"):
            for block in data.get(key, []):
                merged[key].update(block)
    return merged


def resources(tf: dict[str, Any], rtype: str) -> dict[str, Any]:
    return dict(tf["resource"].get(rtype, {}))


def variable_default(tf: dict[str, Any], name: str) -> Any:
    if name == "project_id":
        return SAMPLE_PROJECT  # required, no default
    return _one(tf["variable"][name]["default"])


def local(tf: dict[str, Any], name: str) -> Any:
    return _one(tf["locals"][name])


def functions(tf: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(local(tf, "functions"))


def resolve(tf: dict[str, Any], value: Any, setting: str) -> Any:
    """Evaluate the small subset of HCL the settings use; resource attributes become samples."""
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"\$\{(.+)\}", value)
    if not match:
        return value
    expr = match.group(1)
    if m := re.fullmatch(r"var\.(\w+)", expr):
        return variable_default(tf, m.group(1))
    if m := re.fullmatch(r'local\.db_users\["(\w+)"\]', expr):
        prefix = variable_default(tf, "name_prefix")
        return f"{prefix}-{m.group(1).replace('_', '-')}@{SAMPLE_PROJECT}.iam"
    if m := re.fullmatch(r"local\.(\w+)", expr):
        return resolve(tf, local(tf, m.group(1)), setting)
    if m := re.fullmatch(r"coalesce\((.+)\)", expr):
        for part in m.group(1).split(","):
            candidate = resolve(tf, "${" + part.strip() + "}", setting)
            if candidate is not None:
                return candidate
        return None
    if setting in RESOURCE_SAMPLES:
        return RESOURCE_SAMPLES[setting]
    raise AssertionError(f"{setting}: cannot evaluate {value!r}; add a sample to the test")


def function_env(tf: dict[str, Any], name: str) -> dict[str, str]:
    overrides = variable_default(tf, "settings_overrides")
    env = {**local(tf, "common_env"), **functions(tf)[name]["env"], **overrides}
    return {key: str(resolve(tf, value, key)) for key, value in env.items()}


def setting_names(env: dict[str, str]) -> set[str]:
    return {key.removeprefix(ENV_PREFIX).lower() for key in env}


def iam_members(tf: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(resource type, resource name, role, member) of every IAM grant, for_each expanded."""
    grants = []
    for rtype in ALLOWED_ROLES:
        for name, body in resources(tf, rtype).items():
            role, member = _one(body["role"]), _one(body["member"])
            if role == "${each.value.role}" and name == "runtime":
                for account, roles in local(tf, "runtime_project_roles").items():
                    grants += [(rtype, name, r, f"runtime[{account}]") for r in roles]
            elif role == "${each.value.role}" and name == "operators":
                grants += [
                    (rtype, name, r, "user")
                    for r in ("roles/cloudsql.client", "roles/cloudsql.instanceUser")
                ]
                assert "cloudsql.client" in local(tf, "operator_grants")
            else:
                grants.append((rtype, name, role, member))
    return grants


# --- tooling checks -----------------------------------------------------------------------------


def test_terraform_files_are_formatted() -> None:
    """`terraform fmt -check` passes, so reviews never drown in whitespace."""
    binary = shutil.which("terraform")
    if binary is None:
        reason = "no terraform binary on PATH: `terraform fmt -check` not run"
        print(reason)
        pytest.skip(reason)
    result = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(INFRA)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_security_scan_finds_nothing_and_every_skip_is_justified() -> None:
    """checkov has no failed check; each inline skip carries its reason."""
    command = [*CHECKOV, "-d", str(INFRA), "--framework", "terraform"]
    command += ["--compact", "--skip-download", "-o", "json"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = report["results"]["failed_checks"]
    assert not failed, [(c["check_id"], c["resource"], c["check_name"]) for c in failed]
    assert report["summary"]["parsing_errors"] == 0
    skipped = report["results"]["skipped_checks"]
    for check in skipped:
        reason = check.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) > 30, f"{check['check_id']} on {check['resource']}: justify the skip"
    assert len(skipped) <= 10, "keep skips few: fix findings instead of silencing them"


# --- identities and privileges ------------------------------------------------------------------


def test_every_function_runs_as_its_own_service_account(tf: dict[str, Any]) -> None:
    """Each entry point has one runtime identity of its own, never shared with another one."""
    fn = _one(resources(tf, "google_cloudfunctions2_function")["fn"]["service_config"])
    assert _one(fn["service_account_email"]) == (
        "${google_service_account.runtime[each.value.account].email}"
    )
    accounts = local(tf, "runtime_accounts")
    by_entry_point: dict[str, set[str]] = {}
    for spec in functions(tf).values():
        by_entry_point.setdefault(spec["entry_point"], set()).add(spec["account"])
    assert all(len(owners) == 1 for owners in by_entry_point.values()), by_entry_point
    owners = [next(iter(owners)) for owners in by_entry_point.values()]
    assert len(set(owners)) == len(owners), "two entry points share a service account"
    assert set(owners) == set(accounts)
    assert set(by_entry_point) == set(REQUIRED_BY_ENTRY_POINT)


def test_no_role_outside_the_allow_list(tf: dict[str, Any]) -> None:
    """Only narrow predefined roles, non-authoritative grants, on the narrowest resource."""
    authoritative = [t for t in tf["resource"] if re.search(r"_iam_(binding|policy)$", t)]
    assert not authoritative, (
        f"authoritative IAM resources would wipe others' grants: {authoritative}"
    )
    iam_types = {t for t in tf["resource"] if t.endswith("_iam_member")}
    assert iam_types <= set(ALLOWED_ROLES), f"unreviewed IAM resource types: {iam_types}"
    grants = iam_members(tf)
    for rtype, name, role, _member in grants:
        assert role in ALLOWED_ROLES[rtype], f"{rtype}.{name} grants {role}"

    def holders(role: str) -> set[str]:
        return {member for _t, _n, r, member in grants if r == role}

    assert holders("roles/aiplatform.user") == {"runtime[chunk_embed]", "runtime[query]"}
    project = resources(tf, "google_project_iam_member")
    publisher = [n for t, n, r, _m in grants if r == "roles/pubsub.publisher"]
    assert set(publisher) == {
        "gcs_agent_publisher",
        "ingest_publisher",
        "sweep_jobs_publisher",
        "chunk_embed_dead_letter_publisher",
        "dead_letter_publisher",
    }
    assert "storage_project_service_account" in _one(project["gcs_agent_publisher"]["member"])
    topics = resources(tf, "google_pubsub_topic_iam_member")
    for name, account in (("ingest_publisher", "ingest"), ("sweep_jobs_publisher", "sweep")):
        assert _one(topics[name]["topic"]) == "${google_pubsub_topic.jobs.id}"
        assert (
            _one(topics[name]["member"])
            == f'${{google_service_account.runtime["{account}"].member}}'
        )
    # The sweep needs the database and the jobs topic, nothing more.
    assert set(local(tf, "runtime_project_roles")["sweep"]) == {
        "roles/cloudsql.client",
        "roles/cloudsql.instanceUser",
    }
    # Project-wide object read is only for the builder, and only on function source buckets.
    reader = project["builder_source_reader"]
    assert "gcf-v2-sources-" in _one(_one(reader["condition"])["expression"])
    storage = {(n, r) for t, n, r, _m in grants if t == "google_storage_bucket_iam_member"}
    assert storage == {
        ("readers", "roles/storage.objectViewer"),
        ("query_admin", "roles/storage.objectAdmin"),
    }
    readers = resources(tf, "google_storage_bucket_iam_member")["readers"]
    assert set(re.findall(r"\w+", _one(readers["for_each"]))) == {"toset", "ingest", "chunk_embed"}


def test_only_query_is_public_and_event_functions_take_internal_traffic(
    tf: dict[str, Any],
) -> None:
    """The HTTPS API is open (API keys guard it); event receivers accept only Google's pushes."""
    for name, spec in functions(tf).items():
        expected = "ALLOW_ALL" if spec["trigger"] == "http" else "ALLOW_INTERNAL_ONLY"
        assert spec["ingress"] == expected, name
    public = [
        (t, n)
        for t, n, _r, member in iam_members(tf)
        if member in {"allUsers", "allAuthenticatedUsers"}
    ]
    assert public == [("google_cloud_run_v2_service_iam_member", "query_public")]
    query = resources(tf, "google_cloud_run_v2_service_iam_member")["query_public"]
    assert _one(query["name"]) == '${google_cloudfunctions2_function.fn["query"].name}'


def test_sweep_function_is_internal_and_invoked_only_by_the_scheduler(tf: dict[str, Any]) -> None:
    """No public path to the sweep: internal ingress, and run.invoker for the scheduler alone."""
    sweep = functions(tf)["sweep"]
    assert sweep["trigger"] == "scheduler"
    assert sweep["ingress"] == "ALLOW_INTERNAL_ONLY"
    assert sweep["max_instances"] == 1
    invokers = resources(tf, "google_cloud_run_v2_service_iam_member")
    on_sweep = {
        name
        for name, body in invokers.items()
        if _one(body["name"]) == '${google_cloudfunctions2_function.fn["sweep"].name}'
    }
    assert on_sweep == {"scheduler_invokes_sweep"}
    # The shared invoker of the event functions is not granted on the sweep either.
    shared = _one(invokers["invoker"]["for_each"])
    assert 'contains(["gcs", "push"], fn.trigger)' in shared
    assert [n for n, spec in functions(tf).items() if spec["trigger"] == "scheduler"] == ["sweep"]


def test_scheduler_calls_the_sweep_with_oidc_as_its_own_account_and_nothing_else(
    tf: dict[str, Any],
) -> None:
    """The job POSTs to the sweep's URL with an OIDC token of an account that can do only that."""
    [job] = resources(tf, "google_cloud_scheduler_job").values()
    assert _one(job["schedule"]) == "${var.sweep_schedule}"
    assert variable_default(tf, "sweep_schedule") in {"* * * * *", "*/2 * * * *"}
    target = _one(job["http_target"])
    sweep_uri = '${google_cloudfunctions2_function.fn["sweep"].service_config[0].uri}'
    assert _one(target["uri"]) == sweep_uri
    assert _one(target["http_method"]) == "POST"
    assert "var.overdue_job_minutes" in _one(target["body"])
    assert "oauth_token" not in target
    oidc = _one(target["oidc_token"])
    assert _one(oidc["service_account_email"]) == "${google_service_account.scheduler.email}"
    assert _one(oidc["audience"]) == sweep_uri
    # The scheduler's account holds exactly one grant: run.invoker on the sweep's service.
    held = [
        (rtype, name, role)
        for rtype, name, role, member in iam_members(tf)
        if "google_service_account.scheduler." in member
    ]
    assert held == [
        ("google_cloud_run_v2_service_iam_member", "scheduler_invokes_sweep", "roles/run.invoker")
    ]
    # A sweep never outlives the scheduler's wait for it.
    assert functions(tf)["sweep"]["timeout"] == "${local.sweep_timeout_seconds}"
    assert _one(job["attempt_deadline"]) == "${local.sweep_timeout_seconds}s"
    # The window the scheduler sends is one the function accepts.
    assert MIN_OVERDUE_MINUTES <= variable_default(tf, "overdue_job_minutes") <= MAX_OVERDUE_MINUTES


def test_alert_policies_cover_the_four_failures_and_notify_the_channels(
    tf: dict[str, Any],
) -> None:
    """Dead letters, failed jobs, query 5xx ratio, overdue jobs: each notifies the channels."""
    policies = resources(tf, "google_monitoring_alert_policy")
    assert set(policies) >= {"dead_letters", "failed_jobs", "query_errors", "overdue_jobs"}
    assert variable_default(tf, "notification_channels") == []
    for name, policy in policies.items():
        assert _one(policy["notification_channels"]) == "${var.notification_channels}", name
        documentation = _one(policy["documentation"])
        assert len(_one(documentation["content"])) > 200, f"{name}: say what to do"

    def condition(policy: str, kind: str = "condition_threshold") -> dict[str, Any]:
        return dict(_one(_one(policies[policy]["conditions"])[kind]))

    dead = condition("dead_letters")
    assert "pubsub.googleapis.com/subscription/num_undelivered_messages" in dead["filter"]
    assert "${google_pubsub_subscription.dead_letter.name}" in dead["filter"]
    assert dead["comparison"] == "COMPARISON_GT" and dead["threshold_value"] == 0

    metrics = resources(tf, "google_logging_metric")
    failed = condition("failed_jobs")
    assert "${google_logging_metric.failed_jobs.name}" in failed["filter"]
    failed_filter = _one(metrics["failed_jobs"]["filter"])
    for line in ("ingestion failed", "ingestion gave up", "dead-lettered job marked failed"):
        assert line in failed_filter
    assert "jsonPayload.message=~" in failed_filter
    for service in ("chunk-embed", "dead-letter", "sweep"):
        assert f'resource.labels.service_name="${{local.service_names["{service}"]}}"' in (
            failed_filter
        )

    errors = condition("query_errors")
    assert 'metric.labels.response_code_class="5xx"' in errors["filter"]
    assert "run.googleapis.com/request_count" in errors["denominator_filter"]
    assert "5xx" not in errors["denominator_filter"]
    assert 'local.service_names["query"]' in errors["filter"]
    assert errors["threshold_value"] == "${var.query_5xx_ratio_threshold}"

    overdue_conditions = policies["overdue_jobs"]["conditions"]
    overdue = _one(overdue_conditions[0]["condition_threshold"])
    assert "${google_logging_metric.overdue_jobs.name}" in _one(overdue["filter"])
    assert _one(overdue["threshold_value"]) == 0
    overdue_metric = metrics["overdue_jobs"]
    assert _one(overdue_metric["value_extractor"]) == "EXTRACT(jsonPayload.overdue_jobs)"
    assert 'local.service_names["sweep"]' in _one(overdue_metric["filter"])
    assert "jsonPayload.overdue_jobs>0" in _one(overdue_metric["filter"])
    # Per team: one series per team's name, from the sweep's per-team line.
    by_team = _one(overdue_conditions[1]["condition_threshold"])
    assert "${google_logging_metric.overdue_jobs_by_team.name}" in _one(by_team["filter"])
    assert _one(by_team["aggregations"])["group_by_fields"] == ["metric.label.team"]
    team_metric = metrics["overdue_jobs_by_team"]
    assert _one(team_metric["label_extractors"]) == {"team": "EXTRACT(jsonPayload.team)"}
    assert 'jsonPayload.message=~"^team has overdue ingestion jobs"' in _one(team_metric["filter"])
    # And the sweep not running at all is noticed too.
    absent = _one(overdue_conditions[2]["condition_absent"])
    assert "${google_logging_metric.sweeps.name}" in _one(absent["filter"])


# --- database -----------------------------------------------------------------------------------


def test_database_is_private_iam_authenticated_and_backed_up(tf: dict[str, Any]) -> None:
    """No public network path by default, IAM logins, backups with PITR, deletion protection."""
    instance = resources(tf, "google_sql_database_instance")["main"]
    settings = _one(instance["settings"])
    ip = _one(settings["ip_configuration"])
    assert "authorized_networks" not in ip
    assert resolve(tf, _one(ip["ipv4_enabled"]), "ipv4_enabled") is False
    assert _one(ip["private_network"]) == "${google_compute_network.main.id}"
    assert _one(ip["ssl_mode"]) in {"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"}
    assert _one(settings["connector_enforcement"]) == "REQUIRED"
    flags = {_one(f["name"]): _one(f["value"]) for f in settings["database_flags"]}
    assert flags["cloudsql.iam_authentication"] == "on"
    backup = _one(settings["backup_configuration"])
    assert _one(backup["enabled"]) is True
    assert _one(backup["point_in_time_recovery_enabled"]) is True
    for key in (instance["deletion_protection"], settings["deletion_protection_enabled"]):
        assert resolve(tf, _one(key), "deletion_protection") is True
    version = resolve(tf, _one(instance["database_version"]), "database_version")
    assert int(version.removeprefix("POSTGRES_")) >= 17
    users = resources(tf, "google_sql_user")
    assert _one(users["runtime"]["type"]) == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert not any("password" in body for body in users.values())
    assert ".gserviceaccount.com" in local(tf, "db_users")  # Postgres IAM names drop the suffix


# --- settings -----------------------------------------------------------------------------------


def test_every_setting_a_function_needs_is_set_and_valid_in_cloud_mode(
    tf: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each function's environment, as Terraform sets it, loads as valid cloud settings."""
    for name, spec in functions(tf).items():
        env = function_env(tf, name)
        missing = REQUIRED_BY_ENTRY_POINT[spec["entry_point"]] - setting_names(env)
        assert not missing, f"{name} lacks {sorted(missing)}"
        for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        assert settings.mode == "cloud"
        assert settings.embedding_provider == "vertex"
        assert settings.database_url is None
        assert settings.db_iam_user and not settings.db_iam_user.endswith(".gserviceaccount.com")
        if spec["entry_point"] == "query":
            assert settings.generation_provider == "gemini"


def test_every_setting_is_set_by_terraform_or_deliberately_left_out(tf: dict[str, Any]) -> None:
    """A new field in config.py fails here until it is set, made tunable, or marked local-only."""
    fn = _one(resources(tf, "google_cloudfunctions2_function")["fn"]["service_config"])
    assert _one(fn["environment_variables"]) == (
        "${merge(local.common_env, each.value.env, var.settings_overrides)}"
    )
    set_by_terraform = set().union(*(setting_names(function_env(tf, n)) for n in functions(tf)))
    assert not set_by_terraform & LOCAL_ONLY
    unclassified = set(Settings.model_fields) - set_by_terraform - TUNABLE - LOCAL_ONLY - SECRET
    assert not unclassified, f"decide how the cloud gets these settings: {sorted(unclassified)}"
    condition = _one(_one(tf["variable"]["settings_overrides"]["validation"])["condition"])
    allowed = {
        name.removeprefix(ENV_PREFIX).lower() for name in re.findall(r"AI_INFRA_\w+", condition)
    }
    assert allowed == TUNABLE


def test_cloud_mode_validator_requirements_are_in_the_required_sets() -> None:
    """The names config.py itself demands in cloud mode are part of what we require."""
    source = Path(sys.modules[Settings.__module__].__file__ or "").read_text()
    cloud_block = source.split("self.mode is Mode.CLOUD", 1)[1].split("raise", 1)[0]
    demanded = set(re.findall(r'"(\w+)"', cloud_block))
    assert demanded, "could not find the cloud-mode requirements in common/platform/config.py"
    assert demanded <= COMMON_REQUIRED


def test_every_ai_infra_name_in_terraform_is_a_real_setting() -> None:
    """A typo in a variable name would be ignored silently by pydantic-settings; catch it here."""
    text = "\n".join(path.read_text() for path in INFRA.glob("*.tf"))
    names = set(re.findall(r"\bAI_INFRA_[A-Z0-9_]+", text))
    assert names
    unknown = {n for n in names if n.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields}
    assert not unknown, f"not Settings fields: {sorted(unknown)}"


def test_dead_letter_threshold_is_the_one_the_code_counts_to(tf: dict[str, Any]) -> None:
    """The subscription dead-letters after exactly the attempts the code fails the job on."""
    subscription = resources(tf, "google_pubsub_subscription")["chunk_embed"]
    policy = _one(subscription["dead_letter_policy"])
    assert _one(policy["max_delivery_attempts"]) == "${var.max_delivery_attempts}"
    assert _one(policy["dead_letter_topic"]) == "${google_pubsub_topic.dead_letter.id}"
    assert local(tf, "common_env")["AI_INFRA_MAX_DELIVERY_ATTEMPTS"] == (
        "${var.max_delivery_attempts}"
    )
    push = _one(subscription["push_config"])
    assert _one(push["push_endpoint"]).startswith(
        '${google_cloudfunctions2_function.fn["chunk-embed"]'
    )
    assert "oidc_token" in push
    # The push request times out with the ack deadline: never before the function does.
    assert _one(subscription["ack_deadline_seconds"]) == "${var.chunk_embed_timeout_seconds}"
    assert functions(tf)["chunk-embed"]["timeout"] == "${var.chunk_embed_timeout_seconds}"


def test_storage_events_reach_ingest_with_retries(tf: dict[str, Any]) -> None:
    """Both object events of the upload bucket trigger ingest_trigger, retried on failure."""
    specs = functions(tf)
    events = {s["event_type"] for s in specs.values() if s["trigger"] == "gcs"}
    assert events == {
        "google.cloud.storage.object.v1.finalized",
        "google.cloud.storage.object.v1.deleted",
    }
    assert {s["entry_point"] for s in specs.values() if s["trigger"] == "gcs"} == {"ingest_trigger"}
    fn = resources(tf, "google_cloudfunctions2_function")["fn"]
    build = _one(fn["build_config"])
    assert _one(build["runtime"]) == "python313"
    trigger = _one(_one(fn["dynamic"])["event_trigger"]["content"])
    assert _one(trigger["retry_policy"]) == "RETRY_POLICY_RETRY"
    assert (
        _one(_one(trigger["event_filters"])["value"]) == "${google_storage_bucket.documents.name}"
    )


# --- packaging ----------------------------------------------------------------------------------


def test_terraform_deploys_the_packaged_archive_of_every_entry_point(tf: dict[str, Any]) -> None:
    """Terraform uploads what `ai-infra package` builds, and that holds each entry point."""
    assert variable_default(tf, "source_archive") is None
    assert '"${path.module}/../build/source.zip"' in local(tf, "source_archive")
    expected = packaging.DEFAULT_OUTPUT_DIR / packaging.ARCHIVE_NAME
    assert (INFRA / "../build/source.zip").resolve() == expected
    assert "common" in packaging.SOURCE_DIRS
    source = resources(tf, "google_storage_bucket_object")["source"]
    assert _one(source["name"]) == "source-${filemd5(local.source_archive)}.zip"
    wanted = {spec["entry_point"] for spec in functions(tf).values()}
    missing = wanted - set(packaging.entry_points())
    assert not missing, (
        f"Terraform deploys entry points with no functions/<name>/main.py: {missing}"
    )


def test_readme_documents_every_variable(tf: dict[str, Any]) -> None:
    """infra/README.md's variable table keeps up with variables.tf."""
    text = (INFRA / "README.md").read_text()
    undocumented = [name for name in tf["variable"] if f"| `{name}` |" not in text]
    assert not undocumented, f"add to the README's variable table: {undocumented}"


# --- monitoring ---------------------------------------------------------------------------------

# Log lines the failed-jobs metric counts: (source file, the message as the code logs it).
FAILED_JOB_LOG_LINES = [
    ("common/ingestion/jobs.py", "ingestion failed: %s"),
    ("common/ingestion/jobs.py", "ingestion gave up: %s"),
    ("common/ingestion/jobs.py", "embedding request refused: %s"),
    ("common/ingestion/sweeper.py", "dead-lettered job marked failed"),
]


def test_log_based_metrics_match_the_lines_the_code_logs(tf: dict[str, Any]) -> None:
    """Renaming a log line the alerts count breaks this test instead of silencing an alert."""
    root = INFRA.parent
    metrics = resources(tf, "google_logging_metric")
    failed_filter = _one(metrics["failed_jobs"]["filter"])
    patterns = re.findall(r'jsonPayload\.message=~"([^"]+)"', failed_filter)
    for source, line in FAILED_JOB_LOG_LINES:
        assert f'"{line}"' in (root / source).read_text(), f"{source} no longer logs {line!r}"
        assert any(re.search(p, line % "reason" if "%s" in line else line) for p in patterns), line
    sweep_source = (root / "functions/sweep/main.py").read_text()
    assert '"job sweep finished"' in sweep_source
    assert '"team has overdue ingestion jobs"' in sweep_source
    for name in ("failed_jobs", "overdue_jobs", "sweeps"):
        assert 'jsonPayload.message=~"^job sweep finished"' in _one(metrics[name]["filter"]), name
    fields = set(SweepFigures.__dataclass_fields__)
    assert {"failed", "overdue_jobs"} <= fields  # read by the metric filters and extractor


def test_query_may_sign_upload_urls_only_as_itself(tf: dict[str, Any]) -> None:
    """signBlob for V4 upload URLs: token creator on the query account, granted to itself."""
    grants = resources(tf, "google_service_account_iam_member")
    assert set(grants) == {"query_signs_as_itself", "pubsub_agent_token_creator"}
    grant = grants["query_signs_as_itself"]
    query = 'google_service_account.runtime["query"]'
    assert _one(grant["role"]) == "roles/iam.serviceAccountTokenCreator"
    assert _one(grant["service_account_id"]) == f"${{{query}.name}}"
    assert _one(grant["member"]) == f"${{{query}.member}}"


def test_only_query_may_rerank_with_one_permission_and_only_when_it_reranks(
    tf: dict[str, Any],
) -> None:
    """The ranking API call needs discoveryengine.rankingConfigs.rank: a custom role holding only
    that (roles/discoveryengine.viewer would also read and search every Vertex AI Search data
    store), granted to the query account alone, and it and the API exist only with reranking on."""
    on = '${var.rerank_provider == "vertex" ? 1 : 0}'
    role = resources(tf, "google_project_iam_custom_role")
    assert set(role) == {"ranker"}
    assert _one(role["ranker"]["count"]) == on
    assert role["ranker"]["permissions"] == [RANK_PERMISSION]
    holders = [(n, m) for _t, n, r, m in iam_members(tf) if r == RANKER_ROLE]
    assert holders == [("query_ranker", '${google_service_account.runtime["query"].member}')]
    grant = resources(tf, "google_project_iam_member")["query_ranker"]
    assert _one(grant["count"]) == on
    apis = _one(resources(tf, "google_project_service")["apis"]["for_each"])
    assert '"vertex" ? ["discoveryengine.googleapis.com"] : []' in apis
    # No broader Discovery Engine role anywhere.
    assert not [r for _t, _n, r, _m in iam_members(tf) if r.startswith("roles/discoveryengine.")]
    env = functions(tf)["query"]["env"]
    assert env["AI_INFRA_RERANK_PROVIDER"] == "${var.rerank_provider}"
    assert variable_default(tf, "rerank_provider") == "none"  # off unless asked for
    assert variable_default(tf, "rerank_model") == Settings().rerank_model


def test_rerank_fallback_metric_counts_the_line_the_query_flow_logs(tf: dict[str, Any]) -> None:
    metric = resources(tf, "google_logging_metric")["rerank_fallbacks"]
    assert 'jsonPayload.message=~"^rerank fell back"' in _one(metric["filter"])
    source = (INFRA.parent / "common/query/service.py").read_text()
    assert '"rerank fell back to the fused order"' in source
    assert '"rerank_status": outcome.status' in source
    assert _one(metric["label_extractors"])["reason"] == "EXTRACT(jsonPayload.rerank_status)"
