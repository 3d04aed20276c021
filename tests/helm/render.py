#!/usr/bin/env python3
"""Renders the Helm chart helm/slaflow with the real Helm engine and checks what comes out.

Called by tests/helm_chart.rs, which then runs the slaflow binary on what this writes:
`slaflow check-config` on every rendered configuration, and `slaflow migrate` / `slaflow run`
with the rendered arguments, probing the rendered probe paths and ports.

    render.py --out DIR                   every scenario: default values and helm/slaflow/ci/*.yaml
    render.py --out DIR --probe-port N    only the default values with containerPort N

For each scenario it renders the chart with helm-python-sdk (Helm's Go engine through its C
ABI, the same code as `helm template`), then:
  - validates every manifest with kubernetes-validate (strict: unknown fields are errors)
    against the oldest Kubernetes the chart declares and the newest the package knows; the
    custom resources (ServiceMonitor, PrometheusRule, ScaledObject, TriggerAuthentication)
    are not in that schema and are validated against structural schemas written here from
    their CRDs, which is printed; an unknown kind is an error;
  - checks the chart's promises: one workload of the kind workload.kind (a StatefulSet,
    the default, governed by the chart's Service with parallel pod management and no volume
    claims, or a Deployment), probes on the served port, the checksum/config annotation, the
    grace period longer than the drain timeout, non-root and read-only root filesystem,
    resources, Secrets referenced and never inlined, group.instance.id from the pod's name
    exactly when static membership is on (kafka.staticMembership true, or auto with a
    StatefulSet; never in the migration Job or the configuration file),
    the migration hook, the Service, ServiceMonitor and PodDisruptionBudget selecting the
    pods, the monitoring objects only with the monitoring.coreos.com/v1 API, KEDA's target
    being the workload, its trigger matching the configuration and its maxReplicaCount at
    most the partition count, the Grafana sidecar label;
  - checks the PrometheusRule with `promtool check rules` and runs `promtool test rules`
    on series that should (and should not) fire the alerts;
  - renders values that the chart must refuse (template `fail`) and checks the message.
Besides the default values and the ci/ scenarios it renders variants that tests/helm_chart.rs
compares: the defaults without static membership, the defaults as a Deployment (static
membership auto, so off) and as a Deployment with static membership true, the statefulset
scenario as a Deployment (with static membership true, so the same pod template) and with
KEDA, and the keda scenario as a Deployment.
It writes DIR/result.json (see the end of `check_scenario`) and each configuration file, and
exits 1 listing every problem found. A missing package or tool exits 3, saying how to get it.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

MISSING = []
try:
    import yaml
except ImportError:
    MISSING.append("PyYAML")
try:
    import helm_python
    from helm_python import _native as helm_native
except ImportError:
    MISSING.append("helm-python-sdk")
try:
    import kubernetes_validate
    import jsonschema
except ImportError:
    MISSING.append("kubernetes-validate")
if MISSING:
    print(
        f"render.py: missing Python packages {', '.join(MISSING)} for {sys.executable}: "
        "run scripts/setup.sh (it installs them, pinned, and exports PYTHON), "
        "or point PYTHON at a Python that has them",
        file=sys.stderr,
    )
    sys.exit(3)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "slaflow"
RELEASE = "slaflow-ci"
NAMESPACE = "itsm"
# A cluster with the Prometheus Operator and KEDA installed.
OPERATORS = ["monitoring.coreos.com/v1", "keda.sh/v1alpha1"]
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest that
# kubernetes-validate knows.
KUBE_VERSIONS = ["1.29", kubernetes_validate.utils.latest_version().rsplit(".", 1)[0]]

# Metrics slaflow exports (README, docs/operations.md); the rules and the dashboard may use
# only these.
METRICS = {
    "slaflow_breaches_total",
    "slaflow_warnings_total",
    "slaflow_compliance_ratio",
    "slaflow_error_budget_remaining_ratio",
    "slaflow_burn_rate_alerts_firing",
    "slaflow_open_incidents",
    "slaflow_events_ingested_total",
    "slaflow_events_rejected_total",
    "slaflow_dead_letters_total",
    "slaflow_late_samples_total",
    "slaflow_consumer_lag",
    "slaflow_sink_transaction_seconds",
    "slaflow_ready",
}

# Environment variables that carry credentials: only ever from a Secret.
SECRET_ENV = {
    "SLAFLOW_POSTGRES_URL": ("postgres", "existingSecret", "existingSecretKey"),
    "SLAFLOW_KAFKA_SASL_USERNAME": ("kafka.sasl", "existingSecret", "usernameKey"),
    "SLAFLOW_KAFKA_SASL_PASSWORD": ("kafka.sasl", "existingSecret", "passwordKey"),
    "SLAFLOW_API_TOKENS": ("apiTokens", "existingSecret", "existingSecretKey"),
}


# The kinds workload.kind may name, and the variable static membership sets.
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
INSTANCE_ID_ENV = "SLAFLOW_KAFKA_GROUP_INSTANCE_ID"


def static_membership(merged: dict) -> bool:
    """Whether the pods should be static members: kafka.staticMembership true or false as it
    says, auto on for a StatefulSet (stable pod names) and off for a Deployment."""
    value = merged["kafka"]["staticMembership"]
    if value == "auto":
        return merged["workload"]["kind"] == "StatefulSet"
    return value is True


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def check(self, ok: bool, message: str) -> bool:
        if not ok:
            self.items.append(message)
        return ok


# ---- YAML: refuse duplicate keys (PyYAML keeps the last one silently) --------------------


class StrictLoader(yaml.SafeLoader):
    pass


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


# ---- Rendering ---------------------------------------------------------------------------


def render(chart, values: dict, api_versions: list[str]) -> dict[str, str]:
    """Renders like `helm template --api-versions ...`. Chart.render() has no parameter for
    extra API versions, but the library's render options take `api_versions` (its Go
    RenderOptions struct), so this calls the same native function with that option."""
    opts = {"name": RELEASE, "namespace": NAMESPACE, "is_install": True}
    if not api_versions:
        return chart.render(values=values, **opts)
    opts["api_versions"] = api_versions
    return json.loads(
        helm_native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(opts))
    )


def objects(manifests: dict[str, str], problems: Problems) -> list[tuple[str, dict]]:
    out = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        try:
            docs = list(yaml.load_all(text, Loader=StrictLoader))
        except yaml.YAMLError as e:
            problems.check(False, f"{template}: not valid YAML: {e}")
            continue
        for doc in docs:
            if doc is None:
                continue
            if not problems.check(isinstance(doc, dict), f"{template}: a document that is not a mapping"):
                continue
            out.append((template, doc))
    return out


def key(obj: dict) -> str:
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def dig(d, path: str, default=None):
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


# ---- Schemas of the custom resources ------------------------------------------------------

DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
STRMAP = {"type": "object", "additionalProperties": {"type": "string"}}
LABEL_SELECTOR = {
    "type": "object",
    "properties": {"matchLabels": STRMAP, "matchExpressions": {"type": "array"}},
    "additionalProperties": False,
}
OBJECT_META = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", "maxLength": 253},
        "namespace": {"type": "string"},
        "labels": STRMAP,
        "annotations": STRMAP,
    },
    "additionalProperties": False,
}
RELABEL = {
    "type": "object",
    "properties": {
        "sourceLabels": {"type": "array", "items": {"type": "string"}},
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer"},
        "replacement": {"type": "string"},
        "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap", "LabelMap", "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase", "uppercase", "Uppercase", "keepequal", "KeepEqual", "dropequal", "DropEqual"]},
    },
    "additionalProperties": False,
}


def crd(api_version: str, kind: str, spec: dict) -> dict:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": OBJECT_META,
            "spec": spec,
        },
        "additionalProperties": False,
    }


# From the Prometheus Operator's CRDs (monitoring.coreos.com/v1), the fields the chart uses
# or that users may add through values; anything else is an error here.
SERVICE_MONITOR = crd("monitoring.coreos.com/v1", "ServiceMonitor", {
    "type": "object",
    "required": ["selector", "endpoints"],
    "properties": {
        "selector": LABEL_SELECTOR,
        "namespaceSelector": {"type": "object", "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}, "additionalProperties": False},
        "jobLabel": {"type": "string"},
        "endpoints": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "properties": {
                "port": {"type": "string"},
                "path": {"type": "string", "pattern": "^/"},
                "scheme": {"enum": ["http", "https"]},
                "interval": DURATION,
                "scrapeTimeout": DURATION,
                "honorLabels": {"type": "boolean"},
                "relabelings": {"type": "array", "items": RELABEL},
                "metricRelabelings": {"type": "array", "items": RELABEL},
            },
            "additionalProperties": False,
        }},
    },
    "additionalProperties": False,
})
PROMETHEUS_RULE = crd("monitoring.coreos.com/v1", "PrometheusRule", {
    "type": "object",
    "required": ["groups"],
    "properties": {"groups": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "required": ["name", "rules"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "interval": DURATION,
            "rules": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["expr"],
                "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                "properties": {
                    "alert": {"type": "string"},
                    "record": {"type": "string"},
                    "expr": {"type": ["string", "integer"]},
                    "for": DURATION,
                    "keep_firing_for": DURATION,
                    "labels": STRMAP,
                    "annotations": STRMAP,
                },
                "additionalProperties": False,
            }},
        },
        "additionalProperties": False,
    }}},
    "additionalProperties": False,
})
# KEDA's kafka scaler parameters (keda.sh/docs/latest/scalers/apache-kafka/).
KAFKA_TRIGGER_METADATA = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "excludePersistentLag", "limitToPartitionsWithLag",
    "scaleToZeroOnInvalidOffset", "version", "partitionLimitation", "sasl", "tls", "unsafeSsl",
    "ensureEvenDistributionOfPartitions",
}
SCALED_OBJECT = crd("keda.sh/v1alpha1", "ScaledObject", {
    "type": "object",
    "required": ["scaleTargetRef", "triggers"],
    "properties": {
        "scaleTargetRef": {"type": "object", "required": ["name"], "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"}, "envSourceContainerName": {"type": "string"}}, "additionalProperties": False},
        "pollingInterval": {"type": "integer", "minimum": 1},
        "cooldownPeriod": {"type": "integer", "minimum": 0},
        "initialCooldownPeriod": {"type": "integer", "minimum": 0},
        "idleReplicaCount": {"type": "integer", "minimum": 0},
        "minReplicaCount": {"type": "integer", "minimum": 0},
        "maxReplicaCount": {"type": "integer", "minimum": 1},
        "fallback": {"type": "object", "required": ["failureThreshold", "replicas"], "properties": {"failureThreshold": {"type": "integer"}, "replicas": {"type": "integer"}}, "additionalProperties": False},
        "advanced": {"type": "object", "properties": {
            "restoreToOriginalReplicaCount": {"type": "boolean"},
            "horizontalPodAutoscalerConfig": {"type": "object", "properties": {"name": {"type": "string"}, "behavior": {"type": "object"}}, "additionalProperties": False},
        }, "additionalProperties": False},
        "triggers": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["type", "metadata"],
            "properties": {
                "type": {"const": "kafka"},
                "name": {"type": "string"},
                "metadata": {"type": "object", "required": ["bootstrapServers", "consumerGroup", "lagThreshold"], "propertyNames": {"enum": sorted(KAFKA_TRIGGER_METADATA)}, "additionalProperties": {"type": "string"}},
                "authenticationRef": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]}}, "additionalProperties": False},
                "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                "useCachedMetrics": {"type": "boolean"},
            },
            "additionalProperties": False,
        }},
    },
    "additionalProperties": False,
})
TRIGGER_AUTHENTICATION = crd("keda.sh/v1alpha1", "TriggerAuthentication", {
    "type": "object",
    "required": ["secretTargetRef"],
    "properties": {"secretTargetRef": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "required": ["parameter", "name", "key"],
        "properties": {"parameter": {"enum": ["username", "password", "sasl", "tls", "ca", "cert", "key", "keyPassword"]}, "name": {"type": "string"}, "key": {"type": "string"}},
        "additionalProperties": False,
    }}},
    "additionalProperties": False,
})
CUSTOM = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): TRIGGER_AUTHENTICATION,
}


def validate_schemas(objs: list[tuple[str, dict]], problems: Problems, notes: set[str]) -> dict[str, str]:
    """Validates every object; returns, for each object that passed, what it was validated
    against."""
    validated = {}
    for template, obj in objs:
        ident = (obj.get("apiVersion"), obj.get("kind"))
        if ident in CUSTOM:
            errors = list(jsonschema.Draft202012Validator(CUSTOM[ident]).iter_errors(obj))
            for error in errors:
                path = ".".join(str(p) for p in error.absolute_path)
                problems.check(False, f"{template}: {key(obj)}: {path}: {error.message}")
            if not errors:
                validated[key(obj)] = f"structural schema of {ident[1]} ({ident[0]})"
            notes.add(f"{ident[1]} ({ident[0]}) is a custom resource, not in kubernetes-validate's schema: validated against the structural schema in tests/helm/render.py")
            if ident[1] == "ScaledObject":
                # Its HPA behavior is Kubernetes' own type: validate it as an HPA would carry it.
                behavior = dig(obj, "spec.advanced.horizontalPodAutoscalerConfig.behavior")
                if behavior is not None:
                    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "keda-hpa"},
                           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"}, "maxReplicas": 2, "behavior": behavior}}
                    validate_builtin(template, hpa, problems, f"{key(obj)} spec.advanced.horizontalPodAutoscalerConfig.behavior")
            continue
        if validate_builtin(template, obj, problems, key(obj)):
            validated[key(obj)] = f"kubernetes-validate {ident[0]} {ident[1]}, strict, Kubernetes {' and '.join(KUBE_VERSIONS)}"
    return validated


def validate_builtin(template: str, obj: dict, problems: Problems, name: str) -> bool:
    """True when the object is valid for every Kubernetes version in KUBE_VERSIONS."""
    valid = True
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            valid = problems.check(False, f"{template}: {name} is invalid for Kubernetes {version}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            valid = problems.check(False, f"{template}: {name}: {e.message} (and it is not one of the custom resources this test knows)")
    return valid


# ---- The chart's promises -----------------------------------------------------------------


def humantime_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    total = 0.0
    for number, unit in re.findall(r"(\d+)\s*([a-z]+)", text):
        total += int(number) * units[unit]
    return total


def resolve_port(port, container: dict) -> int | None:
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def subset(small: dict, big: dict) -> bool:
    return all(big.get(k) == v for k, v in (small or {}).items())


def check_scenario(name: str, values: dict, merged: dict, objs, api_versions, validated: dict, problems: Problems, out_dir: Path) -> dict:
    p = lambda ok, msg: problems.check(ok, f"[{name}] {msg}")  # noqa: E731
    by_kind: dict[str, list[dict]] = {}
    for _, obj in objs:
        by_kind.setdefault(obj["kind"], []).append(obj)
    seen = set()
    for _, obj in objs:
        p(key(obj) not in seen, f"{key(obj)} rendered twice")
        seen.add(key(obj))
        p(dig(obj, "metadata.labels", {}).get("app.kubernetes.io/instance") == RELEASE, f"{key(obj)}: no app.kubernetes.io/instance label")
    p("Secret" not in by_kind, "the chart rendered a Secret: credentials must only be referenced")

    # The workload: one Deployment or one StatefulSet, as workload.kind says.
    kind = merged["workload"]["kind"]
    for k in WORKLOAD_KINDS:
        found = len(by_kind.get(k, []))
        p(found == (1 if k == kind else 0), f"{found} {k}(s) rendered with workload.kind {kind}")
    if not by_kind.get(kind):
        return {}
    workload = by_kind[kind][0]
    wspec = workload["spec"]
    pod = wspec["template"]
    container = pod["spec"]["containers"][0]
    pod_labels = pod["metadata"]["labels"]
    p(workload["apiVersion"] == "apps/v1", f"the {kind} is {workload['apiVersion']}, not apps/v1")
    p(subset(wspec["selector"]["matchLabels"], pod_labels), f"the {kind}'s selector does not select its pods")

    # The configuration file.
    configmaps = {cm["metadata"]["name"]: cm for cm in by_kind.get("ConfigMap", [])}
    main_cm = configmaps.get(workload["metadata"]["name"])
    if not p(main_cm is not None, f"no ConfigMap named like the {kind}"):
        return {}
    config_text = main_cm["data"]["slaflow.toml"]
    config_file = out_dir / f"{name}.toml"
    config_file.write_text(config_text)
    try:
        config = tomllib.loads(config_text)
    except tomllib.TOMLDecodeError as e:
        p(False, f"rendered slaflow.toml is not TOML: {e}")
        return {}
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    config_volume = next((v for v in pod["spec"]["volumes"] if dig(v, "configMap.name") == main_cm["metadata"]["name"]), None)
    p(config_volume is not None and config_volume["name"] in mounts, "the ConfigMap is not mounted in the container")
    config_path = f"{mounts.get(config_volume['name'] if config_volume else '', '?')}/slaflow.toml"
    args = container.get("args", [])
    p(args == ["run", "--config", config_path], f"container args {args} do not run the mounted config {config_path}")
    p("command" not in container, "the container overrides the image's entrypoint")

    # Rolling on config changes.
    checksum = dig(pod, "metadata.annotations", {}).get("checksum/config")
    digests = {hashlib.sha256(t.encode()).hexdigest() for t in (config_text, config_text.rstrip("\n"))}
    p(checksum in digests, f"checksum/config {checksum} is not the SHA-256 of the rendered configuration")

    # The port: [server] listen, containerPort, probes, Service, ServiceMonitor.
    listen = dig(config, "server.listen", "")
    ports = container.get("ports", [])
    p(len(ports) == 1 and ports[0].get("name") == "http", f"expected one container port named http, found {ports}")
    container_port = ports[0]["containerPort"] if ports else None
    p(listen == f"0.0.0.0:{container_port}", f"[server] listen = {listen!r} is not the container port {container_port}")
    probes = []
    for probe_name in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = container.get(probe_name)
        if probe is None:
            continue
        get = probe.get("httpGet")
        if not p(get is not None, f"{probe_name} is not an HTTP GET"):
            continue
        port = resolve_port(get.get("port"), container)
        p(port == container_port, f"{probe_name} probes port {get.get('port')}, not the container port {container_port}")
        probes.append({"probe": probe_name, "path": get["path"], "port": port})
    for required in ("livenessProbe", "readinessProbe"):
        p(required in container, f"no {required}")
    probe_paths = {pr["probe"]: pr["path"] for pr in probes}
    p(probe_paths.get("livenessProbe") != probe_paths.get("readinessProbe"), "liveness and readiness probe the same path")

    # Draining.
    drain = humantime_seconds(dig(config, "server.drain_timeout", "30s"))
    grace = pod["spec"].get("terminationGracePeriodSeconds")
    p(isinstance(grace, int) and grace > drain, f"terminationGracePeriodSeconds {grace} is not longer than drain_timeout {drain}s")

    # Security context and resources.
    psc, csc = pod["spec"].get("securityContext", {}), container.get("securityContext", {})
    p(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "pod is not non-root")
    p(csc.get("readOnlyRootFilesystem") is True, "root filesystem is not read-only")
    p(csc.get("allowPrivilegeEscalation") is False, "privilege escalation is allowed")
    p("ALL" in dig(csc, "capabilities.drop", []), "capabilities are not dropped")
    p(bool(dig(container, "resources.requests")) and bool(dig(container, "resources.limits.memory")), "no resource requests or memory limit")
    p("/tmp" in mounts.values(), "no writable /tmp with a read-only root filesystem")

    # Secrets: referenced, never inlined, and not in the configuration file.
    env = {e["name"]: e for e in container.get("env", [])}
    for var, (section, secret_key, data_key) in SECRET_ENV.items():
        secret = dig(merged, f"{section}.{secret_key}")
        entry = env.get(var)
        if secret:
            ref = dig(entry or {}, "valueFrom.secretKeyRef", {})
            p(ref == {"name": secret, "key": dig(merged, f"{section}.{data_key}")}, f"{var} does not reference Secret {secret}: {entry}")
        else:
            p(entry is None, f"{var} is set although {section}.{secret_key} is empty: {entry}")
        if entry is not None:
            p("value" not in entry, f"{var} is inlined")
    for e in container.get("env", []):
        if re.search(r"PASSWORD|TOKEN|SECRET|_URL$", e["name"]):
            p("value" not in e, f"credential-like variable {e['name']} has an inline value")
    # Static membership: each pod's own name is its group.instance.id, never one id for all.
    instance_id = env.get(INSTANCE_ID_ENV)
    static = static_membership(merged)
    membership = f"kafka.staticMembership {merged['kafka']['staticMembership']} with a {kind}"
    if static:
        p(instance_id == {"name": INSTANCE_ID_ENV, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
          f"{membership}: static membership is on but {INSTANCE_ID_ENV} is not the pod's name from the downward API: {instance_id}")
    else:
        p(instance_id is None, f"{membership}: static membership is off but {INSTANCE_ID_ENV} is set: {instance_id}")
    p("group.instance.id" not in dig(config, "kafka.properties", {}), "[kafka.properties] sets group.instance.id: one id for every pod")
    pg_url = dig(config, "postgres.url", "")
    p("password" not in pg_url.lower() and not re.search(r"://[^/@]*:[^/@]*@", pg_url), f"[postgres] url carries a password: {pg_url}")
    props = dig(config, "kafka.properties", {})
    for prop in props:
        p(not re.search(r"password|secret|sasl\.username|ssl\.key\.pem", prop), f"[kafka.properties] carries credential {prop}")
    if dig(merged, "kafka.sasl.mechanism"):
        p(props.get("sasl.mechanism") == merged["kafka"]["sasl"]["mechanism"], "sasl.mechanism is not in [kafka.properties]")
        p(props.get("security.protocol", "").startswith("SASL_"), f"security.protocol {props.get('security.protocol')} without SASL")

    # Replicas and KEDA.
    partitions = merged["kafka"]["partitions"]
    scaled = by_kind.get("ScaledObject", [])
    if merged["keda"]["enabled"]:
        p("replicas" not in wspec, f"the {kind} sets replicas although KEDA scales it")
        if p(len(scaled) == 1, "keda.enabled but no ScaledObject"):
            so = scaled[0]["spec"]
            p(so["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": kind, "name": workload["metadata"]["name"]}, f"ScaledObject targets {so['scaleTargetRef']}, not the {kind}")
            p(so["maxReplicaCount"] <= partitions, f"maxReplicaCount {so['maxReplicaCount']} > partitions {partitions}")
            p(1 <= so["minReplicaCount"] <= so["maxReplicaCount"], "minReplicaCount out of range")
            topics = sorted(t["name"] for t in config["kafka"]["topics"])
            p(sorted(t["metadata"].get("topic") for t in so["triggers"]) == topics, f"KEDA triggers do not cover the topics {topics}")
            auths = {a["metadata"]["name"]: a for a in by_kind.get("TriggerAuthentication", [])}
            for t in so["triggers"]:
                md = t["metadata"]
                p(t["type"] == "kafka", f"trigger type {t['type']}")
                p(md["consumerGroup"] == config["kafka"]["group_id"], f"KEDA watches group {md['consumerGroup']}, slaflow is {config['kafka']['group_id']}")
                p(md["bootstrapServers"] == props.get("bootstrap.servers"), "KEDA and slaflow use different bootstrap servers")
                p(md.get("offsetResetPolicy") == "earliest", "KEDA counts lag from a different offset than slaflow (earliest)")
                if dig(merged, "kafka.sasl.existingSecret"):
                    ref = dig(t, "authenticationRef.name")
                    auth = auths.get(ref)
                    if p(auth is not None, f"trigger on {md.get('topic')} has no TriggerAuthentication"):
                        refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
                        sasl = merged["kafka"]["sasl"]
                        p(refs.get("username") == (sasl["existingSecret"], sasl["usernameKey"]) and refs.get("password") == (sasl["existingSecret"], sasl["passwordKey"]), f"TriggerAuthentication refs {refs} differ from the pods' Secret")
                    p(md.get("sasl") == {"PLAIN": "plaintext"}.get(merged["kafka"]["sasl"]["mechanism"].upper(), md.get("sasl")), f"KEDA sasl {md.get('sasl')}")
    else:
        p(wspec.get("replicas") == merged["replicaCount"], "replicas is not replicaCount")
        p(merged["replicaCount"] <= partitions, "more replicas than partitions")
        p(not scaled, "a ScaledObject although keda.enabled is false")

    # Service, PodDisruptionBudget.
    services = by_kind.get("Service", [])
    if p(len(services) == 1, f"expected one Service, found {len(services)}"):
        svc = services[0]
        p(subset(svc["spec"]["selector"], pod_labels), "the Service does not select the pods")
        p(all(sp["targetPort"] == "http" for sp in svc["spec"]["ports"]), "the Service does not target the http port")

    # What differs between the kinds: a Deployment's rolling update strategy; a StatefulSet's
    # governing Service (the chart's), parallel start and stop, its own update strategy, and
    # no volume claims (the state is in Postgres).
    if kind == "StatefulSet":
        p(bool(services) and wspec.get("serviceName") == services[0]["metadata"]["name"], f"the StatefulSet's serviceName {wspec.get('serviceName')} is not the chart's Service")
        p(wspec.get("podManagementPolicy") == "Parallel", f"podManagementPolicy {wspec.get('podManagementPolicy')}, not Parallel")
        p("volumeClaimTemplates" not in wspec, "the StatefulSet claims volumes; slaflow keeps its state in Postgres")
        p(wspec.get("updateStrategy") == merged["workload"]["statefulSetUpdateStrategy"], f"the StatefulSet's updateStrategy {wspec.get('updateStrategy')} is not workload.statefulSetUpdateStrategy")
    else:
        p(wspec.get("strategy") == merged["updateStrategy"], f"the Deployment's strategy {wspec.get('strategy')} is not updateStrategy")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        p(subset(pdb["spec"]["selector"]["matchLabels"], pod_labels), "the PodDisruptionBudget does not select the pods")
    p(bool(by_kind.get("PodDisruptionBudget")) == merged["pdb"]["create"], "PodDisruptionBudget presence differs from pdb.create")

    # Migration hook.
    migrate_args = None
    jobs = by_kind.get("Job", [])
    if merged["migration"]["enabled"]:
        if p(len(jobs) == 1, f"migration.enabled but {len(jobs)} Jobs"):
            job = jobs[0]
            ann = job["metadata"].get("annotations", {})
            p(set(ann.get("helm.sh/hook", "").split(",")) == {"pre-install", "pre-upgrade"}, f"the Job's hook is {ann.get('helm.sh/hook')}")
            jpod = job["spec"]["template"]
            jc = jpod["spec"]["containers"][0]
            jmounts = {m["name"]: m["mountPath"] for m in jc.get("volumeMounts", [])}
            jvol = next((v for v in jpod["spec"]["volumes"] if "configMap" in v), None)
            hook_cm = configmaps.get(dig(jvol or {}, "configMap.name"))
            if p(hook_cm is not None, "the migration Job's ConfigMap is not rendered"):
                hann = hook_cm["metadata"].get("annotations", {})
                p(set(hann.get("helm.sh/hook", "").split(",")) == {"pre-install", "pre-upgrade"}, "the Job's ConfigMap is not a pre-install/pre-upgrade hook: it would not exist when the Job runs")
                p(int(hann.get("helm.sh/hook-weight", 0)) < int(ann.get("helm.sh/hook-weight", 0)), "the Job's ConfigMap is not created before the Job")
                p(hook_cm["data"] == main_cm["data"], "the migration runs with a different configuration")
            jpath = f"{jmounts.get(jvol['name'] if jvol else '', '?')}/slaflow.toml"
            migrate_args = jc.get("args")
            p(migrate_args == ["migrate", "--config", jpath], f"the Job runs {migrate_args}")
            p(jc["image"] == container["image"], "the migration uses another image")
            jenv = {e["name"]: e for e in jc.get("env", [])}
            p(jenv.get("SLAFLOW_POSTGRES_URL") == env.get("SLAFLOW_POSTGRES_URL"), "the migration connects differently from the service")
            p(INSTANCE_ID_ENV not in jenv, f"the migration Job sets {INSTANCE_ID_ENV}: it is not a group member")
            p(dig(jc, "securityContext.readOnlyRootFilesystem") is True and dig(jpod, "spec.securityContext.runAsNonRoot") is True, "the migration is not non-root/read-only")
            p(not subset(services[0]["spec"]["selector"], jpod["metadata"]["labels"]) if services else True, "the Service selects the migration pod")
            migrate_args = [a if a != jpath else "{config}" for a in migrate_args]
    else:
        p(not jobs, "a Job although migration.enabled is false")

    # Monitoring objects: only with the Prometheus Operator's API.
    has_api = "monitoring.coreos.com/v1" in api_versions
    for kind, enabled in (("ServiceMonitor", merged["metrics"]["serviceMonitor"]["enabled"]), ("PrometheusRule", merged["prometheusRule"]["enabled"])):
        present = bool(by_kind.get(kind))
        p(present == (enabled and has_api), f"{kind} {'rendered' if present else 'missing'} (enabled {enabled}, monitoring.coreos.com/v1 {'served' if has_api else 'not served'})")
    for sm in by_kind.get("ServiceMonitor", []):
        p(subset(sm["spec"]["selector"]["matchLabels"], services[0]["metadata"]["labels"]), "the ServiceMonitor does not select the Service")
        for ep in sm["spec"]["endpoints"]:
            p(ep["port"] in {sp["name"] for sp in services[0]["spec"]["ports"]}, f"the ServiceMonitor scrapes port {ep['port']}, not a Service port")
        p(NAMESPACE in dig(sm, "spec.namespaceSelector.matchNames", []), "the ServiceMonitor does not look in the release namespace")
    metrics_path = next((ep.get("path", "/metrics") for sm in by_kind.get("ServiceMonitor", []) for ep in sm["spec"]["endpoints"]), "/metrics")

    # Grafana dashboard.
    dashboards = [cm for cm in by_kind.get("ConfigMap", []) if cm["metadata"]["name"].endswith("-dashboard")]
    p(bool(dashboards) == merged["grafanaDashboard"]["enabled"], "dashboard ConfigMap presence differs from grafanaDashboard.enabled")
    for cm in dashboards:
        p(cm["metadata"]["labels"].get("grafana_dashboard") == "1", "the dashboard ConfigMap lacks the sidecar label grafana_dashboard: \"1\"")
        try:
            dash = json.loads(cm["data"]["slaflow.json"])
        except (KeyError, json.JSONDecodeError) as e:
            p(False, f"the dashboard is not JSON: {e}")
            continue
        exprs = [t["expr"] for panel in dash["panels"] for t in panel.get("targets", [])]
        p(len(exprs) >= 10, "the dashboard has few queries")
        check_metric_names("dashboard", exprs, p)

    result = {
        "name": name,
        "config": str(config_file),
        "config_path": config_path,
        "run_args": [a if a != config_path else "{config}" for a in args],
        "migrate_args": migrate_args,
        "env": {e["name"]: e["value"] for e in container.get("env", []) if "value" in e},
        # Variables the cluster fills in (Secrets, the downward API), by name.
        "env_from": {e["name"]: e["valueFrom"] for e in container.get("env", []) if "valueFrom" in e},
        "container_port": container_port,
        "termination_grace_seconds": grace,
        "probes": probes,
        "metrics_path": metrics_path,
        "kinds": sorted(key(o) for _, o in objs),
        # What each object was validated against (validate_schemas).
        "validated": validated,
        "workload": {
            "apiVersion": workload["apiVersion"],
            "kind": workload["kind"],
            "name": workload["metadata"]["name"],
            "replicas": wspec.get("replicas"),
            "serviceName": wspec.get("serviceName"),
            "podManagementPolicy": wspec.get("podManagementPolicy"),
            "volumeClaimTemplates": wspec.get("volumeClaimTemplates"),
        },
        "pod_template": pod,
        # kafka.staticMembership as given (true, false, "auto") and what render.py expects of it.
        "static_membership": merged["kafka"]["staticMembership"],
        "static_membership_on": static,
        "service": services[0]["metadata"]["name"] if services else None,
        "scale_target_ref": scaled[0]["spec"]["scaleTargetRef"] if scaled else None,
    }
    rules = by_kind.get("PrometheusRule", [])
    if rules:
        result["rules"] = check_rules(name, rules[0], merged, p, out_dir, workload["metadata"]["name"])
    return result


def check_metric_names(where: str, exprs: list[str], p) -> None:
    for expr in exprs:
        for metric in re.findall(r"\bslaflow_[a-z_]+", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", metric)
            p(metric in METRICS or base in METRICS, f"{where} uses {metric}, which slaflow does not export")


# ---- Alert rules: promtool ------------------------------------------------------------------


def check_rules(name: str, rule: dict, merged: dict, p, out_dir: Path, fullname: str) -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        print("render.py: promtool not found: run scripts/setup.sh (it installs Debian's prometheus package)", file=sys.stderr)
        sys.exit(3)
    groups = rule["spec"]["groups"]
    alerts = [r for g in groups for r in g["rules"]]
    check_metric_names("PrometheusRule", [r["expr"] for r in alerts], p)
    names = {r["alert"] for r in alerts}
    for required in ("SlaflowSLABreach", "SlaflowBurnRatePage", "SlaflowBurnRateTicket", "SlaflowConsumerLagHigh", "SlaflowDeadLettersGrowing"):
        p(required in names, f"no alert {required}")
    rules_file = out_dir / f"{name}.rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    run = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    p(run.returncode == 0, f"promtool check rules: {run.stdout}{run.stderr}")
    test_file = out_dir / f"{name}.rules_test.yaml"
    test_file.write_text(yaml.safe_dump(rule_tests(rules_file, alerts, merged, fullname), sort_keys=False))
    run = subprocess.run([promtool, "test", "rules", str(test_file)], capture_output=True, text=True)
    p(run.returncode == 0, f"promtool test rules {test_file}:\n{run.stdout}{run.stderr}")
    return f"{len(alerts)} alerts; promtool check rules and test rules passed" if run.returncode == 0 else "promtool failed"


def rule_tests(rules_file: Path, alerts: list[dict], merged: dict, fullname: str) -> dict:
    """Series that must fire each alert with the expected labels, and quiet series that
    must not. Expected annotations are the rule's templates expanded for these labels."""
    r = merged["prometheusRule"]
    sev = r["severities"]
    extra = r["additionalAlertLabels"] or {}
    base = {"namespace": NAMESPACE, "job": fullname, "pod": f"{fullname}-0"}
    by_name = {a["alert"]: a for a in alerts}

    def series(metric: str, labels: dict, values: str) -> dict:
        all_labels = {**base, **labels}
        inner = ", ".join(f'{k}="{v}"' for k, v in all_labels.items())
        return {"series": f"{metric}{{{inner}}}", "values": values}

    def expect(alert: str, labels: dict, severity: str, at: str, annotations: dict) -> dict:
        return {"eval_time": at, "alertname": alert, "exp_alerts": [{"exp_labels": {**labels, "severity": severity, **extra}, "exp_annotations": annotations}]}

    def quiet(alert: str, at: str) -> dict:
        return {"eval_time": at, "alertname": alert, "exp_alerts": []}

    slo = {"service": "webshop", "objective": "availability"}
    breach = {**slo, "kind": "availability"}
    window = r["breachWindow"]
    lag_threshold = int(r["consumerLagThreshold"])
    per_partition = lag_threshold // 2 + 1  # two partitions together exceed the threshold
    ann = lambda name, **labels: {k: expand(v, labels) for k, v in by_name[name].get("annotations", {}).items()}  # noqa: E731
    return {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [
            {   # A breach counter rising on a pod: fires for the breach window, then resolves.
                "interval": "1m",
                "input_series": [series("slaflow_breaches_total", breach, "0 0 1 1 1 1x60")],
                "alert_rule_test": [
                    quiet("SlaflowSLABreach", "1m"),
                    expect("SlaflowSLABreach", breach, sev["breach"], "3m", ann("SlaflowSLABreach", **breach)),
                    quiet("SlaflowSLABreach", "60m"),
                ],
            },
            {   # The first breach on a pod: the counter series appears at 1.
                "interval": "1m",
                "input_series": [series("slaflow_breaches_total", breach, "_ _ _ 1 1 1x60")],
                "alert_rule_test": [
                    expect("SlaflowSLABreach", breach, sev["breach"], "4m", ann("SlaflowSLABreach", **breach)),
                    quiet("SlaflowSLABreach", "60m"),
                ],
            },
            {   # Burn rates: page and ticket, one series each; a zero gauge is quiet.
                "interval": "1m",
                "input_series": [
                    series("slaflow_burn_rate_alerts_firing", {**slo, "severity": "page"}, "1x10"),
                    series("slaflow_burn_rate_alerts_firing", {**slo, "severity": "ticket"}, "1x10"),
                    series("slaflow_burn_rate_alerts_firing", {"service": "network", "objective": "availability", "severity": "page"}, "0x10"),
                ],
                "alert_rule_test": [
                    expect("SlaflowBurnRatePage", slo, sev["burnRatePage"], "2m", ann("SlaflowBurnRatePage", **slo)),
                    expect("SlaflowBurnRateTicket", slo, sev["burnRateTicket"], "2m", ann("SlaflowBurnRateTicket", **slo)),
                ],
            },
            {   # Error budget: exhausted after 5 minutes at zero.
                "interval": "1m",
                "input_series": [series("slaflow_error_budget_remaining_ratio", slo, "0x20")],
                "alert_rule_test": [
                    quiet("SlaflowErrorBudgetExhausted", "3m"),
                    expect("SlaflowErrorBudgetExhausted", slo, sev["budget"], "10m", ann("SlaflowErrorBudgetExhausted", **slo, value="0")),
                    quiet("SlaflowErrorBudgetLow", "10m"),
                ],
            },
            {   # Lag over the threshold for the configured time, summed over partitions (and
                # not double counted when two pods report the same partition after a rebalance).
                "interval": "1m",
                "input_series": [
                    series("slaflow_consumer_lag", {"topic": "alerts", "partition": "0"}, f"{per_partition}x40"),
                    series("slaflow_consumer_lag", {"topic": "alerts", "partition": "1"}, f"{per_partition}x40"),
                    series("slaflow_consumer_lag", {"topic": "alerts", "partition": "1", "pod": f"{RELEASE}-1"}, f"{per_partition}x40"),
                    series("slaflow_consumer_lag", {"topic": "apm", "partition": "0"}, "10x40"),
                ],
                "alert_rule_test": [
                    quiet("SlaflowConsumerLagHigh", "5m"),
                    expect("SlaflowConsumerLagHigh", {"topic": "alerts"}, sev["pipeline"], "30m", ann("SlaflowConsumerLagHigh", topic="alerts", value=str(2 * per_partition))),
                ],
            },
            {   # Dead letters.
                "interval": "1m",
                "input_series": [series("slaflow_dead_letters_total", {"format": "alertmanager"}, "0 0 0 3 3 3 3 3 3 3 3")],
                "alert_rule_test": [
                    quiet("SlaflowDeadLettersGrowing", "1m"),
                    expect("SlaflowDeadLettersGrowing", {"format": "alertmanager"}, sev["pipeline"], "5m", ann("SlaflowDeadLettersGrowing", format="alertmanager", value="3"))
                    if int(r["deadLetterThreshold"]) < 3 else quiet("SlaflowDeadLettersGrowing", "5m"),
                ],
            },
            {   # No slaflow target at all.
                "interval": "1m",
                "input_series": [series("up", {}, "1x20")],
                "alert_rule_test": [
                    expect("SlaflowAbsent", {"namespace": base["namespace"], "job": base["job"]}, sev["absent"], "15m", ann("SlaflowAbsent")),
                ],
            },
        ],
    }


def expand(template: str, labels: dict) -> str:
    """Expands the annotation templates the rules use ({{ $labels.x }}, {{ $value }} and its
    humanizers) for the expected alerts of the rule tests."""
    value = labels.get("value", "")

    def sub(m):
        expr = m.group(1).strip()
        if expr.startswith("$labels."):
            return labels[expr[len("$labels."):]]
        if expr == "$value":
            return value
        if expr == "$value | humanizePercentage":
            return f"{float(value) * 100:g}%"
        raise ValueError(f"annotation template {expr!r} is not known to the rule test")

    return re.sub(r"\{\{(.*?)\}\}", sub, template)


# ---- Values the chart must refuse --------------------------------------------------------


def refused(chart, problems: Problems) -> list[str]:
    cases = [
        ("KEDA maxReplicaCount above the partition count", {"kafka": {"partitions": 4}, "keda": {"enabled": True, "maxReplicaCount": 5}}, "keda.maxReplicaCount (5) is greater than kafka.partitions (4)"),
        ("replicaCount above the partition count", {"kafka": {"partitions": 2}, "replicaCount": 3}, "replicaCount (3) is greater than kafka.partitions (2)"),
        ("KEDA scaling to zero", {"keda": {"enabled": True, "minReplicaCount": 0}}, "keda.minReplicaCount (0) must be at least 1"),
        ("grace period not longer than the drain timeout", {"terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds (30) must be longer than server.drainTimeoutSeconds (30)"),
        ("a section that the chart renders, in config", {"config": {"kafka": {"group_id": "x"}}}, "config.kafka: this section is rendered from the chart's own values"),
        ("SASL without a Secret", {"kafka": {"sasl": {"mechanism": "PLAIN"}}}, "kafka.sasl.existingSecret is empty"),
        ("API tokens required but no Secret", {"apiTokens": {"existingSecret": ""}}, "apiTokens.existingSecret is empty"),
        ("an auth mode slaflow does not have (values.schema.json)", {"server": {"auth": "basic"}}, "/server/auth"),
        ("no topic", {"kafka": {"topics": []}}, "kafka.topics is empty"),
        ("a misspelt value (values.schema.json)", {"keda": {"maxReplicas": 3}}, "additional properties 'maxReplicas' not allowed"),
        ("a format slaflow does not have (values.schema.json)", {"kafka": {"topics": [{"name": "t", "format": "syslog"}]}}, "/kafka/topics/0/format"),
        ("a workload kind the chart does not have (values.schema.json)", {"workload": {"kind": "DaemonSet"}}, "/workload/kind"),
        ("static membership neither a boolean nor auto (values.schema.json)", {"kafka": {"staticMembership": "yes"}}, "/kafka/staticMembership"),
        ("static membership \"true\" as a string (values.schema.json)", {"kafka": {"staticMembership": "true"}}, "/kafka/staticMembership"),
        ("one group.instance.id for every pod", {"kafka": {"properties": {"group.instance.id": "slaflow"}}}, "kafka.properties sets group.instance.id"),
        ("group.instance.id in extraEnv as well as from static membership", {"extraEnv": [{"name": INSTANCE_ID_ENV, "value": "slaflow"}]}, f"extraEnv sets {INSTANCE_ID_ENV}"),
    ]
    lines = []
    for what, values, message in cases:
        try:
            render(chart, values, OPERATORS)
        except helm_python.HelmError as e:
            problems.check(message in str(e), f"refusing {what}: the error does not say {message!r}: {e}")
            lines.append(f"  refused as expected: {what}")
            continue
        problems.check(False, f"the chart rendered values it must refuse: {what} ({values})")
    return lines


# ---- Main ------------------------------------------------------------------------------------


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def lint(chart_path: Path, values: dict, name: str, problems: Problems) -> None:
    """`helm lint --strict`: warnings are problems too (info, such as a missing icon, is not)."""
    report = helm_python.lint(chart_path, values, strict=True, namespace=NAMESPACE)
    for message in report.get("messages", []):
        problems.check(message["severity"] < 2, f"[{name}] helm lint: {message['path']}: {message['error']}")
    for error in report.get("errors", []):
        problems.check(False, f"[{name}] helm lint: {error}")


def values_documented(problems: Problems) -> int:
    """Every value in values.yaml has a comment: on the line above its key, or above the key
    of a map that holds it. The items of a list are data of their (documented) key."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented) of the open maps
    list_indent = None  # inside the items of a list whose dashes are at this indent
    count = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("- ") or stripped == "-":
            list_indent = indent if list_indent is None else min(list_indent, indent)
            continue
        if list_indent is not None and indent > list_indent:
            continue
        list_indent = None
        m = re.match(r"^\s*([^\s:#][^:#]*?):(\s|$)", line)
        if not problems.check(m is not None, f"values.yaml:{i + 1}: not a key: {line!r}"):
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = lines[i - 1].strip().startswith("#") or any(d for _, _, d in stack)
        path = ".".join([k for _, k, _ in stack] + [m.group(1)])
        rest = line[m.end():].strip()
        following = next((l for l in lines[i + 1:] if l.strip() and not l.strip().startswith("#")), "")
        is_list = following.strip().startswith("-")
        if (rest and not rest.startswith("#")) or is_list:
            count += 1
            problems.check(documented, f"values.yaml:{i + 1}: {path} has no comment")
        else:
            stack.append((indent, m.group(1), documented))
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--probe-port", type=int, help="only render the default values with this containerPort (and this group and topic prefix)")
    parser.add_argument("--probe-prefix", default="slaflow-helm-probe")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    problems = Problems()
    notes: set[str] = set()
    chart = helm_python.Chart.load(CHART)
    defaults = chart.values

    if args.probe_port:
        prefix = args.probe_prefix
        scenarios = [("probe", {"containerPort": args.probe_port, "kafka": {"groupId": prefix, "topics": [
            {"name": f"{prefix}-alerts", "format": "alertmanager"}, {"name": f"{prefix}-apm", "format": "datadog-apm"}]}}, [])]
    else:
        scenarios = [("default", {}, []), ("default-with-operators", {}, OPERATORS)]
        for path in sorted((CHART / "ci").glob("*-values.yaml")):
            scenarios.append((path.name.removesuffix("-values.yaml"), yaml.load(path.read_text(), Loader=StrictLoader) or {}, OPERATORS))
        monitoring = next((v for n, v, _ in scenarios if n == "monitoring"), None)
        if problems.check(monitoring is not None, "no helm/slaflow/ci/monitoring-values.yaml"):
            scenarios.append(("monitoring-without-operator", monitoring, []))
        scenarios.append(("default-without-static-membership", {"kafka": {"staticMembership": False}}, []))
        # A Deployment: auto leaves static membership off; explicit true turns it on (allowed,
        # at the rolling-update cost values.yaml documents).
        scenarios.append(("default-as-deployment", {"workload": {"kind": "Deployment"}}, []))
        scenarios.append(("default-as-deployment-static", {"workload": {"kind": "Deployment"}, "kafka": {"staticMembership": True}}, []))
        statefulset = next((v for n, v, _ in scenarios if n == "statefulset"), None)
        if problems.check(statefulset is not None, "no helm/slaflow/ci/statefulset-values.yaml"):
            # The same values as a Deployment, with static membership on as the StatefulSet has
            # it (its pod template must be the StatefulSet's), and scaled by KEDA (which must
            # target the StatefulSet).
            scenarios.append(("statefulset-as-deployment", merge(statefulset, {"workload": {"kind": "Deployment"}, "kafka": {"staticMembership": True}}), OPERATORS))
            scenarios.append(("statefulset-keda", merge(statefulset, {"keda": {"enabled": True}}), OPERATORS))
        keda = next((v for n, v, _ in scenarios if n == "keda"), None)
        if problems.check(keda is not None, "no helm/slaflow/ci/keda-values.yaml"):
            # KEDA scaling a Deployment (the ScaledObject must target it).
            scenarios.append(("keda-as-deployment", merge(keda, {"workload": {"kind": "Deployment"}}), OPERATORS))
        # Both kinds are rendered from a ci/ scenario, not only from the variants above.
        ci_kinds = {merge(defaults, v)["workload"]["kind"] for n, v, _ in scenarios if (CHART / "ci" / f"{n}-values.yaml").exists()}
        problems.check(ci_kinds == set(WORKLOAD_KINDS), f"the ci/ scenarios render only {sorted(ci_kinds)}: keep one of each workload kind")
        names = {n for n, _, _ in scenarios}
        for required in ("minimal", "monitoring", "keda", "external-secrets", "statefulset"):
            problems.check(required in names, f"no scenario helm/slaflow/ci/{required}-values.yaml")

    results = []
    for name, values, api_versions in scenarios:
        merged = merge(defaults, values)
        try:
            manifests = render(chart, values, api_versions)
        except helm_python.HelmError as e:
            problems.check(False, f"[{name}] helm render failed: {e}")
            continue
        if not args.probe_port:
            lint(CHART, values, name, problems)
        objs = objects(manifests, problems)
        validated = validate_schemas(objs, problems, notes)
        result = check_scenario(name, values, merged, objs, api_versions, validated, problems, args.out)
        if not result:
            continue
        results.append(result)
        apis = ", ".join(api_versions) if api_versions else "no extra APIs"
        print(f"scenario {name} ({apis}): {len(objs)} objects: {', '.join(result['kinds'])}")
        if "rules" in result:
            print(f"  PrometheusRule: {result['rules']}")

    if not args.probe_port:
        # The checksum follows the configuration, and only it.
        base = render(chart, {}, [])
        changed = render(chart, {"config": {"correlate": {"group_window": "10m"}}}, [])
        unrelated = render(chart, {"resources": {"requests": {"cpu": "1"}}}, [])
        kind_template = f"slaflow/templates/{defaults['workload']['kind'].lower()}.yaml"
        digest = lambda m: dig(yaml.safe_load(m[kind_template]), "spec.template.metadata.annotations", {}).get("checksum/config")  # noqa: E731
        problems.check(digest(base) is not None, f"no checksum/config on the pods of {kind_template}")
        problems.check(digest(base) != digest(changed), "checksum/config does not change when the configuration does")
        problems.check(digest(base) == digest(unrelated) == digest(render(chart, {}, [])), "checksum/config changes without a configuration change")
        print("checksum/config: changes with the configuration, stable otherwise")
        for line in refused(chart, problems):
            print(line)
        print(f"helm lint --strict: no warnings; values.schema.json: every scenario valid; values.yaml: {values_documented(problems)} values, each documented")

    print(f"Kubernetes schemas: kubernetes-validate {kubernetes_validate.version.__version__}, strict, for Kubernetes {' and '.join(KUBE_VERSIONS)}")
    for note in sorted(notes):
        print(f"NOTE: {note}")
    (args.out / "result.json").write_text(json.dumps({"scenarios": results}, indent=2))
    if problems.items:
        print(f"\n{len(problems.items)} problem(s):", file=sys.stderr)
        for item in problems.items:
            print(f"  - {item}", file=sys.stderr)
        return 1
    print(f"chart OK: {len(results)} scenario(s) rendered and validated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
