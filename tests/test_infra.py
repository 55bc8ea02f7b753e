"""The deployment files in infra/ agree with the code: fast, no network, no Docker, no cluster.

Names are checked against what the code reads: environment variables read in ``crawler/settings.py`` (and
elsewhere in the code, or by boto3), settings defined in ``crawler/settings.py`` (or Scrapy's own), the
ENTRYPOINT and files the image copies, the sites file format.
"""

from __future__ import annotations

import ast
import configparser
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path, PurePosixPath

import pytest
import scrapy.settings.default_settings as scrapy_defaults
import yaml

import crawler.settings
from crawler.sites import load_sites_file
from pipelines.s3_store import parse_s3_uri

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
CRONJOB_FILE = INFRA / "kubernetes" / "cronjob.yaml"
COMPOSE_FILE = INFRA / "docker-compose.yml"
SERVICE_FILE = INFRA / "systemd" / "news-archive.service"
TIMER_FILE = INFRA / "systemd" / "news-archive.timer"
TERRAFORM_FILE = INFRA / "terraform" / "bucket.tf"

#: variables boto3/botocore read that infra files may set (credentials, endpoint, region, IRSA, IMDS)
BOTO3_ENV = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_EC2_METADATA_DISABLED", "AWS_CA_BUNDLE",
}
#: placeholders the README uses in `-s NAME=VALUE`
PLACEHOLDERS = {"NAME"}


# --- what the code reads ------------------------------------------------------------------------------------

def env_names_read(paths) -> set[str]:
    """Names passed as a constant to os.environ.get / os.environ[...] / os.getenv in these Python files."""
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            arg = None
            if isinstance(node, ast.Call) and node.args:
                func = ast.unparse(node.func)
                if func in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                    arg = node.args[0]
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ"):
                arg = node.slice
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                names.add(arg.value)
    return names


SETTINGS_ENV = env_names_read([REPO / "crawler" / "settings.py"])
CODE_ENV = env_names_read([*(REPO / "crawler").rglob("*.py"), *(REPO / "pipelines").rglob("*.py")])


def setting_names() -> set[str]:
    ours = {name for name in vars(crawler.settings) if name.isupper()}
    return ours | {name for name in vars(scrapy_defaults) if name.isupper()}  # e.g. LOG_FILE in infra/crontab


def test_code_reads_the_expected_environment():
    assert {"ARCHIVE_URI", "ARCHIVE_SPOOL_DIR", "CRAWL_CONTACT", "LOG_LEVEL"} <= SETTINGS_ENV
    assert "XDG_CACHE_HOME" in CODE_ENV  # the S3 spool's default place


# --- every YAML file ----------------------------------------------------------------------------------------

YAML_FILES = sorted([*INFRA.rglob("*.yaml"), *INFRA.rglob("*.yml")])


def test_infra_has_the_deployment_files():
    for path in (CRONJOB_FILE, COMPOSE_FILE, SERVICE_FILE, TIMER_FILE, TERRAFORM_FILE, INFRA / "README.md"):
        assert path.is_file(), path


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_yaml_parses(path):
    docs = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    assert docs and all(isinstance(doc, dict) for doc in docs)


def test_example_sites_file_loads():
    sites = load_sites_file(INFRA / "sites.example.yaml")
    assert sites and all(site.start_urls for site in sites)


# --- Kubernetes ---------------------------------------------------------------------------------------------

def k8s_docs() -> dict[str, list[dict]]:
    by_kind: dict[str, list[dict]] = {}
    for doc in yaml.safe_load_all(CRONJOB_FILE.read_text(encoding="utf-8")):
        if doc:
            by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def spider_args(args: list[str]) -> dict[str, str]:
    """The ``-a NAME=VALUE`` arguments of a ``scrapy crawl`` argument list."""
    result, items = {}, iter(args)
    for item in items:
        value = next(items, "") if item == "-a" else item[2:] if item.startswith("-a") else None
        if value is not None:
            name, _, val = value.partition("=")
            result[name] = val
    return result


@pytest.fixture(scope="module")
def cronjob():
    docs = k8s_docs()
    assert len(docs["CronJob"]) == 1 and len(docs["ConfigMap"]) == 1
    return docs, docs["CronJob"][0]


def pod_and_container(cronjob_doc):
    pod = cronjob_doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return pod, pod["containers"][0]


def test_cronjob_schedule_and_job_policy(cronjob):
    _, job = cronjob
    assert job["apiVersion"] == "batch/v1"
    spec = job["spec"]
    assert len(spec["schedule"].split()) == 5
    assert spec["concurrencyPolicy"] == "Forbid"
    assert isinstance(spec["startingDeadlineSeconds"], int) and spec["startingDeadlineSeconds"] > 0
    job_spec = spec["jobTemplate"]["spec"]
    assert isinstance(job_spec["backoffLimit"], int) and 0 <= job_spec["backoffLimit"] <= 3
    assert 0 < job_spec["activeDeadlineSeconds"] < 3600  # ends before the next hourly run
    pod, _ = pod_and_container(job)
    assert pod["restartPolicy"] == "Never"
    # exit 2 (refused at start-up) fails the Job without retries, when a podFailurePolicy is given
    for rule in job_spec.get("podFailurePolicy", {}).get("rules", []):
        if rule["action"] == "FailJob" and "onExitCodes" in rule:
            assert rule["onExitCodes"]["operator"] == "In" and 2 in rule["onExitCodes"]["values"]


def test_cronjob_env_names_are_read_by_the_settings(cronjob):
    _, job = cronjob
    _, container = pod_and_container(job)
    env = {item["name"]: item for item in container["env"]}
    assert set(env) <= SETTINGS_ENV, set(env) - SETTINGS_ENV
    assert {"ARCHIVE_URI", "CRAWL_CONTACT", "ARCHIVE_SPOOL_DIR"} <= set(env)
    assert env["ARCHIVE_URI"]["value"] == "s3://news-archive/prod"
    assert parse_s3_uri(env["ARCHIVE_URI"]["value"]) == ("news-archive", "prod")
    assert env["CRAWL_CONTACT"]["value"]


def test_cronjob_has_no_inline_credentials(cronjob):
    docs, job = cronjob
    _, container = pod_and_container(job)
    for item in container.get("env", []):
        assert not item["name"].startswith("AWS_"), f"{item['name']}: use the ServiceAccount's role"
    text = CRONJOB_FILE.read_text(encoding="utf-8")
    assert not re.search(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", text)
    assert not re.search(r"(?i)(aws_)?secret_access_key\s*[:=]", text)
    assert "Secret" not in docs  # no Secret object with keys in it
    pod, _ = pod_and_container(job)
    account = pod["serviceAccountName"]
    accounts = {doc["metadata"]["name"]: doc for doc in docs.get("ServiceAccount", [])}
    if account in accounts:
        annotations = accounts[account]["metadata"].get("annotations", {})
        assert annotations.get("eks.amazonaws.com/role-arn", "").startswith("arn:aws:iam::")


def test_cronjob_args_read_the_sites_file_from_the_configmap(cronjob, tmp_path):
    docs, job = cronjob
    pod, container = pod_and_container(job)
    assert "command" not in container  # keep the image's ENTRYPOINT: scrapy crawl news
    sites_path = PurePosixPath(spider_args(container["args"])["sites"])
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    configmap = docs["ConfigMap"][0]
    mounts = [m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == sites_path.parent]
    assert len(mounts) == 1, f"{sites_path.parent} is not a mount"
    volume = volumes[mounts[0]["name"]]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    key = next((i["key"] for i in volume["configMap"].get("items", []) if i["path"] == sites_path.name),
               sites_path.name)
    assert key in configmap["data"]
    copy = tmp_path / sites_path.name
    copy.write_text(configmap["data"][key], encoding="utf-8")
    assert load_sites_file(copy)


def test_cronjob_security_and_writable_mounts(cronjob):
    docs, job = cronjob
    pod, container = pod_and_container(job)
    pod_security, security = pod.get("securityContext", {}), container.get("securityContext", {})
    assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True
    assert security["readOnlyRootFilesystem"] is True
    assert security.get("allowPrivilegeEscalation") is False
    assert container["resources"]["limits"]["memory"] and container["resources"]["requests"]["memory"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    writable = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if not mount.get("readOnly") and ("emptyDir" in volume or "persistentVolumeClaim" in volume):
            writable[mount["mountPath"]] = volume
    spool = next(item["value"] for item in container["env"] if item["name"] == "ARCHIVE_SPOOL_DIR")
    assert "/tmp" in writable and spool in writable
    assert any(path.endswith("/.cache") for path in writable)  # $HOME/.cache
    claim = writable[spool].get("persistentVolumeClaim", {}).get("claimName")
    if claim:
        assert claim in {doc["metadata"]["name"] for doc in docs.get("PersistentVolumeClaim", [])}
    run_as = security.get("runAsUser", pod_security.get("runAsUser"))
    assert run_as is None or str(run_as) == dockerfile_user().split(":")[0]


# --- docker compose -----------------------------------------------------------------------------------------

def compose_env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: str(value) for name, value in env.items()}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]


def test_compose_minio_and_bucket(compose):
    minio = compose["minio"]
    assert minio["image"].startswith("minio/minio")
    assert "server /data" in " ".join(shlex.split(minio["command"]) if isinstance(minio["command"], str)
                                      else minio["command"])
    assert minio["healthcheck"]["test"]
    init_name, init = next((name, service) for name, service in compose.items()
                           if service.get("image", "").startswith("minio/mc"))
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    crawler = compose["crawler"]
    assert crawler["depends_on"][init_name]["condition"] == "service_completed_successfully"
    bucket, _ = parse_s3_uri(compose_env(crawler)["ARCHIVE_URI"])
    assert re.search(rf"mc mb\b.*/{re.escape(bucket)}\b", " ".join(init["command"]) if isinstance(
        init["command"], list) else init["command"])


def test_compose_crawler_env_and_args_agree_with_the_code(compose):
    crawler = compose["crawler"]
    env = compose_env(crawler)
    assert set(env) <= CODE_ENV | BOTO3_ENV, set(env) - CODE_ENV - BOTO3_ENV
    assert env["ARCHIVE_URI"] == "s3://news-archive/archive"
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    minio_env = compose_env(compose["minio"])
    assert env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"]
    assert "${MINIO_ROOT_USER" in env["AWS_ACCESS_KEY_ID"]
    assert env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]
    build = crawler["build"]
    assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).resolve() == INFRA / "Dockerfile"
    command = crawler["command"] if isinstance(crawler["command"], list) else shlex.split(crawler["command"])
    assert "ARCHIVE_S3_ADDRESSING_STYLE=path" in command[command.index("-s") + 1:]
    sites = spider_args(command)["sites"]
    assert sites.startswith(f"{dockerfile_workdir()}/")  # the image has the repo's infra/ under WORKDIR
    assert load_sites_file(REPO / sites.removeprefix(f"{dockerfile_workdir()}/"))


# --- the sharded CronJob: N crawl workers, one archive ----------------------------------------------------------

SHARDED_FILE = INFRA / "kubernetes" / "sharded-cronjob.yaml"


def kubernetes_cpus(quantity) -> float:
    """A Kubernetes CPU quantity ("2", 2, "500m") in CPUs."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def test_sharded_cronjob_is_an_indexed_job_with_one_shard_per_completion(tmp_path):
    from crawler.shards import shard_from_settings
    from pipelines.cpus import usable_cpus
    from scrapy.settings import Settings

    docs = [doc for doc in yaml.safe_load_all(SHARDED_FILE.read_text(encoding="utf-8")) if doc]
    assert [doc["kind"] for doc in docs] == ["CronJob"]
    job = docs[0]["spec"]["jobTemplate"]["spec"]
    assert docs[0]["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["completionMode"] == "Indexed"
    pod, container = pod_and_container(docs[0])
    env = {item["name"]: item["value"] for item in container["env"]}
    assert set(env) <= SETTINGS_ENV, set(env) - SETTINGS_ENV
    assert "JOB_COMPLETION_INDEX" not in env and "CRAWL_SHARD" not in env  # the index comes from Kubernetes
    shards = int(env["CRAWL_SHARDS"])
    assert job["completions"] == job["parallelism"] == shards >= 2
    assert isinstance(job["backoffLimitPerIndex"], int)  # a failed shard is retried alone
    rules = job["podFailurePolicy"]["rules"]
    assert any(rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2] for rule in rules)
    # each index is a valid shard, and the indexes cover every shard once
    found = [shard_from_settings(Settings({"CRAWL_SHARDS": env["CRAWL_SHARDS"], "JOB_COMPLETION_INDEX": str(i)}))
             for i in range(job["completions"])]
    assert sorted(shard.index for shard in found) == list(range(shards))
    assert env["ARCHIVE_URI"] == "s3://news-archive/prod"
    assert pod["serviceAccountName"] == "news-archive"
    resources = container["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    # EXTRACT_WORKERS follows the CPU limit: the quota Kubernetes derives from it, as cgroup v2 shows it
    cpu_limit = kubernetes_cpus(resources["limits"]["cpu"])
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cpu.max").write_text(f"{int(cpu_limit * 100_000)} 100000\n")
    (tmp_path / "proc-cgroup").write_text("0::/\n")
    assert usable_cpus(cgroup_root=root, proc_cgroup=tmp_path / "proc-cgroup") == min(
        math.ceil(cpu_limit), len(os.sched_getaffinity(0)))
    assert "EXTRACT_WORKERS" not in " ".join(container["args"])  # the default follows the limit


# --- KubeRay RayJobs: the batch stages on a Ray cluster ------------------------------------------------------------

@pytest.mark.parametrize("name, command", [("rayjob-reextract.yaml", "reextract"), ("rayjob-dedup.yaml", "dedup"),
                                           ("rayjob-backfill.yaml", "backfill")])
def test_rayjob_runs_the_batch_stage_on_the_cluster(name, command):
    from crawler.cli import _parser

    docs = [doc for doc in yaml.safe_load_all((INFRA / "kubernetes" / name).read_text(encoding="utf-8")) if doc]
    assert [(doc["apiVersion"], doc["kind"]) for doc in docs] == [("ray.io/v1", "RayJob")]
    spec = docs[0]["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "news-archive"
    args = _parser().parse_args(argv[1:])  # the entrypoint is a valid command line of this release
    archive = args.archive if command == "backfill" else args.archive_uri
    assert args.command == command and args.ray and archive == "s3://news-archive/prod"
    if command == "backfill":  # the sites file is the crawl's ConfigMap, mounted where the entrypoint reads it
        for group in [spec["rayClusterSpec"]["headGroupSpec"], *spec["rayClusterSpec"]["workerGroupSpecs"]]:
            pod = group["template"]["spec"]
            mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert volumes[mounts[str(PurePosixPath(args.sites).parent)]]["configMap"]["name"] == "news-archive-sites"
    assert spec["shutdownAfterJobFinishes"] is True
    cluster = spec["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [group["template"]["spec"]
                                                             for group in cluster["workerGroupSpecs"]]
    for pod in pods:
        assert pod["serviceAccountName"] == "news-archive"  # S3 through the role, no keys
        (container,) = pod["containers"]
        assert container["image"].startswith("registry.example.com/news-archive:")
        assert set(container["resources"]["requests"]) == set(container["resources"]["limits"]) == {"cpu", "memory"}
        env = {item["name"]: item["value"] for item in container.get("env", [])}
        assert env.get("RAY_USAGE_STATS_ENABLED") == "0"
        assert not [key for key in env if key.startswith("AWS_")]
    assert all(group["replicas"] >= 1 for group in cluster["workerGroupSpecs"])


# --- -s NAME=VALUE anywhere in infra ------------------------------------------------------------------------

_SETTING_ARG = re.compile(r"""(?<![\w-])-s["']?[\s,]+["']?([A-Z][A-Z0-9_]*)=""")


def test_settings_passed_with_dash_s_exist():
    used = {}
    for path in INFRA.rglob("*"):
        if path.is_file():
            for name in _SETTING_ARG.findall(path.read_text(encoding="utf-8", errors="replace")):
                used.setdefault(name, set()).add(str(path.relative_to(REPO)))
    used = {name: files for name, files in used.items() if name not in PLACEHOLDERS}
    assert {"ARCHIVE_S3_ADDRESSING_STYLE", "ARCHIVE_URI"} <= set(used)  # the scan finds what is there
    unknown = {name: sorted(files) for name, files in used.items() if name not in setting_names()}
    assert not unknown, f"-s names no setting: {unknown}"


# --- Dockerfile ---------------------------------------------------------------------------------------------

def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (INFRA / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip() if " " in line.strip() else "")
            for line in joined.splitlines() if line.strip()]


def dockerfile_workdir() -> str:
    return [args for keyword, args in dockerfile_instructions() if keyword == "WORKDIR"][-1]


def dockerfile_user() -> str:
    return [args for keyword, args in dockerfile_instructions() if keyword == "USER"][-1]


def test_dockerfile_entrypoint_and_copies():
    instructions = dockerfile_instructions()
    entrypoints = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
    assert json.loads(entrypoints[-1]) == ["scrapy", "crawl", "news"]
    copied = set()
    for keyword, args in instructions:
        if keyword == "COPY":
            sources = [arg for arg in shlex.split(args) if not arg.startswith("--")][:-1]
            copied |= {source.rstrip("/") for source in sources}
    assert {"crawler", "pipelines", "schemas", "pyproject.toml", "scrapy.cfg"} <= copied
    assert dockerfile_workdir() == "/app" and (REPO / "scrapy.cfg").is_file()
    user = dockerfile_user().split(":")[0]
    assert user.isdigit() and int(user) != 0  # numeric: Kubernetes' runAsNonRoot can check it


# --- systemd ------------------------------------------------------------------------------------------------

def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case sensitive
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser


def test_systemd_service():
    service = unit(SERVICE_FILE)["Service"]
    assert service["Type"] == "oneshot"
    assert service["WorkingDirectory"].startswith("/")
    assert service["EnvironmentFile"].lstrip("-") == "/etc/news-archive/env"
    exec_start = shlex.split(service["ExecStart"].lstrip("-@:+!"))
    assert exec_start[0].startswith("/") and exec_start[0].endswith(".venv/bin/scrapy")
    assert exec_start[1:3] == ["crawl", "news"]
    assert spider_args(exec_start[3:])["sites"]
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    # every Environment= line (configparser keeps only the last of repeated keys)
    env_lines = re.findall(r"^Environment=(.*)$", SERVICE_FILE.read_text(encoding="utf-8"), re.MULTILINE)
    names = {item.split("=", 1)[0] for line in env_lines for item in shlex.split(line)}
    assert names <= CODE_ENV | BOTO3_ENV, names - CODE_ENV - BOTO3_ENV


def test_systemd_timer():
    timer = unit(TIMER_FILE)
    assert timer["Timer"]["OnCalendar"] == "hourly"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["RandomizedDelaySec"]
    assert timer["Timer"].get("Unit", TIMER_FILE.stem + ".service") == SERVICE_FILE.name
    assert timer["Install"]["WantedBy"] == "timers.target"


# --- Terraform ----------------------------------------------------------------------------------------------

def _unquote(value):
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _labelled(blocks) -> dict:
    """[{type: {name: body}}] (resource, data) or [{name: body}] (variable, output) -> merged dict."""
    merged: dict = {}
    for block in blocks or []:
        for key, value in block.items():
            if isinstance(merged.get(key), dict) and isinstance(value, dict):
                merged[key].update(value)
            else:
                merged[key] = value
    return merged


def terraform_facts_hcl2(text: str) -> dict:
    hcl2 = pytest.importorskip("hcl2")
    tf = _unquote(hcl2.loads(text))
    resources, data = _labelled(tf.get("resource")), _labelled(tf.get("data"))

    def one(kind):
        (body,) = resources[kind].values()
        return body

    rules = one("aws_s3_bucket_lifecycle_configuration")["rule"]
    policy = data["aws_iam_policy_document"]["crawler"]
    return {
        "versioning": one("aws_s3_bucket_versioning")["versioning_configuration"][0]["status"],
        "public_access_block": {k: v for k, v in one("aws_s3_bucket_public_access_block").items()
                                if k != "bucket"},
        "ownership": one("aws_s3_bucket_ownership_controls")["rule"][0]["object_ownership"],
        "sse": json.dumps(one("aws_s3_bucket_server_side_encryption_configuration")["rule"]),
        "abort_days": [r["abort_incomplete_multipart_upload"][0]["days_after_initiation"]
                       for r in rules if "abort_incomplete_multipart_upload" in r],
        "noncurrent_expiration": any("noncurrent_version_expiration" in r for r in rules),
        "crawler_actions": {a for s in policy["statement"] for a in s["actions"]},
        "variables": set(_labelled(tf.get("variable"))),
        "outputs": set(_labelled(tf.get("output"))),
        "providers": set(_labelled(tf.get("provider"))),
    }


def _tf_block(text: str, header: str) -> str:
    """The body of the block whose header matches ``header`` (first match), by brace counting."""
    match = re.search(header + r"\s*\{", text)
    assert match, f"no block {header}"
    depth, start = 1, match.end()
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    raise AssertionError(f"unclosed block {header}")


def terraform_facts_regex(text: str) -> dict:
    text = re.sub(r"(?m)^\s*#.*$", "", text)

    def resource(kind):
        return _tf_block(text, rf'resource\s+"{kind}"\s+"\w+"')

    pab = resource("aws_s3_bucket_public_access_block")
    lifecycle = resource("aws_s3_bucket_lifecycle_configuration")
    policy = _tf_block(text, r'data\s+"aws_iam_policy_document"\s+"crawler"')
    status = re.search(r'status\s*=\s*"(\w+)"', _tf_block(resource("aws_s3_bucket_versioning"),
                                                          r"versioning_configuration"))
    ownership = re.search(r'object_ownership\s*=\s*"(\w+)"', resource("aws_s3_bucket_ownership_controls"))
    return {
        "versioning": status and status.group(1),
        "public_access_block": {k: v == "true" for k, v in re.findall(r"(\w+)\s*=\s*(true|false)\b", pab)},
        "ownership": ownership and ownership.group(1),
        "sse": resource("aws_s3_bucket_server_side_encryption_configuration"),
        "abort_days": [int(d) for d in re.findall(
            r"abort_incomplete_multipart_upload\s*\{\s*days_after_initiation\s*=\s*(\d+)", lifecycle)],
        "noncurrent_expiration": bool(re.search(r"noncurrent_version_expiration\s*\{", lifecycle)),
        "crawler_actions": {a for actions in re.findall(r"actions\s*=\s*\[([^\]]*)\]", policy)
                            for a in re.findall(r'"([^"]+)"', actions)},
        "variables": set(re.findall(r'(?m)^variable\s+"(\w+)"', text)),
        "outputs": set(re.findall(r'(?m)^output\s+"(\w+)"', text)),
        "providers": set(re.findall(r'(?m)^provider\s+"(\w+)"', text)),
    }


@pytest.mark.parametrize("parse", [terraform_facts_hcl2, terraform_facts_regex], ids=["hcl2", "regex"])
def test_terraform_bucket(parse):
    facts = parse(TERRAFORM_FILE.read_text(encoding="utf-8"))
    assert "aws" in facts["providers"]
    assert facts["versioning"] == "Enabled"
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    assert all(facts["public_access_block"].get(flag) is True for flag in flags), facts["public_access_block"]
    assert facts["ownership"] == "BucketOwnerEnforced"
    assert "AES256" in facts["sse"] and "aws:kms" in facts["sse"]
    assert facts["abort_days"] == [1]
    assert facts["noncurrent_expiration"]
    s3_actions = {a for a in facts["crawler_actions"] if a.startswith("s3:")}
    assert s3_actions == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
                          "s3:ListBucketMultipartUploads"}
    assert {"bucket_name", "prefix"} <= facts["variables"]
    assert {"bucket_name", "archive_uri", "crawler_policy_json"} <= facts["outputs"]


def test_compaction_cronjob_runs_news_archive_compact_on_the_crawls_archive(cronjob):
    _, crawl = cronjob
    [compact] = [doc for doc in yaml.safe_load_all((INFRA / "kubernetes" / "compact-cronjob.yaml").read_text())
                 if doc and doc["kind"] == "CronJob"]
    assert compact["spec"]["concurrencyPolicy"] == "Forbid"
    pod, container = pod_and_container(compact)
    _, crawler = pod_and_container(crawl)
    assert container["command"] == ["news-archive", "compact"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["ARCHIVE_URI"] == {item["name"]: item["value"] for item in crawler["env"]}["ARCHIVE_URI"]
    assert pod["serviceAccountName"] == pod_and_container(crawl)[0]["serviceAccountName"]
    assert container["image"] == crawler["image"]
    import shutil

    assert shutil.which("news-archive") or (Path(sys.executable).parent / "news-archive").exists(), \
        "the package installs the news-archive command the CronJob runs"


def test_health_cronjob_fails_its_job_when_a_site_is_flagged(cronjob):
    _, crawl = cronjob
    [health] = [doc for doc in yaml.safe_load_all((INFRA / "kubernetes" / "health-cronjob.yaml").read_text())
                if doc and doc["kind"] == "CronJob"]
    pod, container = pod_and_container(health)
    _, crawler = pod_and_container(crawl)
    assert container["command"] == ["news-archive", "status", "--fail-on-alert"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["ARCHIVE_URI"] == {item["name"]: item["value"] for item in crawler["env"]}["ARCHIVE_URI"]
    assert container["image"] == crawler["image"] and pod["serviceAccountName"] == "news-archive"
    job = health["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0
    [rule] = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2, 3]
    from crawler.cli import EXIT_ALERT, EXIT_REFUSED

    assert {EXIT_ALERT, EXIT_REFUSED} == set(rule["onExitCodes"]["values"])
