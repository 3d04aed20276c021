//! The Helm chart (helm/slaflow) against the binary it deploys.
//!
//! tests/helm/render.py renders the chart with the real Helm engine (PyPI helm-python-sdk)
//! for the default values and every scenario in helm/slaflow/ci/, validates every manifest
//! (kubernetes-validate; the custom resources structurally; the alert rules with promtool)
//! and checks the chart's promises (see its docstring). It writes each rendered
//! configuration and the container's arguments, environment, port and probes as JSON; this
//! test then holds the binary to them:
//!
//! - every rendered configuration passes `slaflow check-config`, so the chart cannot ship a
//!   configuration the binary rejects;
//! - the migration hook's command migrates a fresh database, and the workload's command
//!   (the default StatefulSet's) starts the service on the rendered configuration (with the
//!   pod's name as its group.instance.id, as the downward API sets it), which serves every
//!   probe path on the rendered container port (200 or 503: not 404, not refused) and
//!   /metrics, then drains on SIGTERM;
//! - the workload kind and static group membership: by default a valid StatefulSet whose
//!   pods get their own name as group.instance.id (`kafka.staticMembership: auto`); with
//!   `workload.kind: Deployment` auto leaves that variable out (a Deployment's replacement
//!   pods get new names, and the replaced pods' ids would stall every step of a rolling
//!   update for the session timeout), explicit `true` puts it back, `false` removes it from
//!   either kind; the StatefulSet and the Deployment have the very same pod template for the
//!   same membership, and KEDA scales either.
//!
//! Needs Python 3 with helm-python-sdk and kubernetes-validate, promtool, Postgres on
//! 127.0.0.1:5432 and a Kafka-protocol broker on 127.0.0.1:9092: `scripts/setup.sh` installs
//! and starts them. A missing one fails the test saying so.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::kafka::{create_topics, require_broker, root, BROKER};
use support::TestDb;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Runs tests/helm/render.py into `out` and returns its result.json.
fn render(out: &Path, extra: &[&str]) -> Value {
    let _ = std::fs::remove_dir_all(out);
    let py = python();
    let output: Output = Command::new(&py)
        .arg(root().join("tests/helm/render.py"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{py}` ({e}): the Helm chart test needs Python 3 with helm-python-sdk and \
                 kubernetes-validate; run scripts/setup.sh (it installs them and exports PYTHON)"
            )
        });
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    match output.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "tests/helm/render.py lacks a package or tool (above): run scripts/setup.sh, which installs \
             helm-python-sdk, kubernetes-validate and promtool"
        ),
        code => panic!("tests/helm/render.py found problems in the chart (exit {code:?}); they are listed above"),
    }
    let result = std::fs::read_to_string(out.join("result.json")).expect("render.py wrote no result.json");
    serde_json::from_str(&result).expect("result.json is JSON")
}

fn scenarios(result: &Value) -> &Vec<Value> {
    result["scenarios"].as_array().expect("scenarios")
}

fn string(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
        .to_string()
}

/// A rendered argument list with `{config}` standing for the mounted configuration file.
fn args(v: &Value, key: &str, config: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
        .iter()
        .map(|a| a.as_str().unwrap().replace("{config}", config))
        .collect()
}

#[test]
fn every_rendered_configuration_passes_check_config() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helm_chart/render");
    let result = render(&out, &[]);
    let names: Vec<String> = scenarios(&result).iter().map(|s| string(s, "name")).collect();
    for required in [
        "default",
        "minimal",
        "monitoring",
        "keda",
        "external-secrets",
        "statefulset",
    ] {
        assert!(
            names.iter().any(|n| n == required),
            "no scenario {required} in {names:?}"
        );
    }
    for scenario in scenarios(&result) {
        let config = string(scenario, "config");
        // The file is for a pod: its listen address is not tried here (--no-bind), and the
        // tokens come from the Secret the pod references.
        let check = Command::new(env!("CARGO_BIN_EXE_slaflow"))
            .args(["check-config", "--no-bind", &config])
            .envs(secret_env(scenario))
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "scenario {}: slaflow check-config rejects the configuration the chart renders:\n{}{}\n--- {config}:\n{}",
            string(scenario, "name"),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr),
            std::fs::read_to_string(&config).unwrap_or_default()
        );
        println!("scenario {}: slaflow check-config: ok", string(scenario, "name"));
    }

    // values.schema.json accepts exactly the formats the binary has.
    let formats = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .arg("formats")
        .output()
        .unwrap();
    let mut binary: Vec<String> = String::from_utf8_lossy(&formats.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("helm/slaflow/values.schema.json")).unwrap())
            .unwrap();
    let mut chart: Vec<String> = schema["properties"]["kafka"]["properties"]["topics"]["items"]["properties"]["format"]
        ["enum"]
        .as_array()
        .expect("values.schema.json: kafka.topics[].format enum")
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    binary.sort();
    chart.sort();
    assert_eq!(
        chart, binary,
        "values.schema.json's topic formats differ from `slaflow formats`"
    );
    println!(
        "values.schema.json: the {} topic formats of `slaflow formats`",
        chart.len()
    );
}

/// A stand-in value for each variable the pod takes from a Secret (the API tokens), as
/// the cluster would fill it in.
fn secret_env(scenario: &Value) -> Vec<(String, String)> {
    scenario["env_from"]
        .as_object()
        .expect("env_from")
        .iter()
        .filter(|(name, from)| from.get("secretKeyRef").is_some() && name.as_str() == "SLAFLOW_API_TOKENS")
        .map(|(name, _)| (name.clone(), "helm-test-token".to_string()))
        .collect()
}

/// The scenario `name` of a render.
fn scenario<'a>(result: &'a Value, name: &str) -> &'a Value {
    scenarios(result)
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("render.py rendered no scenario {name}"))
}

/// How the pod gets `SLAFLOW_KAFKA_GROUP_INSTANCE_ID` (its `valueFrom`), if it does.
fn instance_id(scenario: &Value) -> Option<&Value> {
    assert!(
        !scenario["env"]
            .as_object()
            .expect("env")
            .contains_key("SLAFLOW_KAFKA_GROUP_INSTANCE_ID"),
        "scenario {}: SLAFLOW_KAFKA_GROUP_INSTANCE_ID has a literal value, one for every pod",
        scenario["name"]
    );
    scenario["env_from"]
        .as_object()
        .expect("env_from")
        .get("SLAFLOW_KAFKA_GROUP_INSTANCE_ID")
}

/// Whether a scenario's pods should be static members, from its `workload.kind` and
/// `kafka.staticMembership` (true, false or "auto": on for a StatefulSet only).
fn expects_static_membership(scenario: &Value) -> bool {
    match &scenario["static_membership"] {
        Value::Bool(on) => *on,
        Value::String(auto) if auto == "auto" => scenario["workload"]["kind"] == "StatefulSet",
        other => panic!(
            "scenario {}: kafka.staticMembership {other} is neither a boolean nor auto",
            scenario["name"]
        ),
    }
}

/// A pod template without `SLAFLOW_KAFKA_GROUP_INSTANCE_ID`.
fn without_instance_id(pod_template: &Value) -> Value {
    let mut pod = pod_template.clone();
    pod["spec"]["containers"][0]["env"]
        .as_array_mut()
        .expect("the pod template's env")
        .retain(|e| e["name"] != "SLAFLOW_KAFKA_GROUP_INSTANCE_ID");
    pod
}

#[test]
fn static_membership_and_the_statefulset() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helm_chart/workload");
    let result = render(&out, &[]);
    let pod_name = json!({"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}});

    // By default the pods run as a StatefulSet, and every pod's group.instance.id is its own
    // (stable) name, from the downward API.
    let default = scenario(&result, "default");
    assert_eq!(
        default["workload"]["kind"], "StatefulSet",
        "the default workload is not a StatefulSet"
    );
    assert_eq!(default["static_membership"], "auto");
    assert_eq!(
        instance_id(default),
        Some(&pod_name),
        "the default pod template does not set SLAFLOW_KAFKA_GROUP_INSTANCE_ID from metadata.name"
    );
    // In every scenario the variable is there exactly when static membership is on.
    for s in scenarios(&result) {
        let expected = expects_static_membership(s);
        assert_eq!(
            s["static_membership_on"], expected,
            "scenario {}: render.py and this test disagree on static membership",
            s["name"]
        );
        assert_eq!(
            instance_id(s),
            if expected { Some(&pod_name) } else { None },
            "scenario {} ({} with kafka.staticMembership {})",
            s["name"],
            s["workload"]["kind"],
            s["static_membership"]
        );
    }

    // Dynamic membership removes that variable, and only it: kafka.staticMembership=false
    // with the StatefulSet, and auto (the default) with a Deployment.
    let stripped = without_instance_id(&default["pod_template"]);
    for (name, kind, static_membership) in [
        ("default-without-static-membership", "StatefulSet", json!(false)),
        ("default-as-deployment", "Deployment", json!("auto")),
    ] {
        let s = scenario(&result, name);
        assert_eq!(s["workload"]["kind"], kind, "scenario {name}");
        assert_eq!(s["static_membership"], static_membership, "scenario {name}");
        assert_eq!(
            instance_id(s),
            None,
            "scenario {name}: a {kind} with kafka.staticMembership {static_membership} sets group.instance.id"
        );
        assert_eq!(
            s["pod_template"], stripped,
            "scenario {name}: dynamic membership changes more of the pod template than its variable"
        );
    }
    // A Deployment with explicit true is static again (allowed, at its rolling-update cost),
    // with the StatefulSet's pod template to the byte.
    let deployment_static = scenario(&result, "default-as-deployment-static");
    assert_eq!(deployment_static["workload"]["kind"], "Deployment");
    assert_eq!(deployment_static["static_membership"], true);
    assert_eq!(
        instance_id(deployment_static),
        Some(&pod_name),
        "a Deployment with kafka.staticMembership=true does not set group.instance.id"
    );
    assert_eq!(
        deployment_static["pod_template"], default["pod_template"],
        "a Deployment with static membership has another pod template than the StatefulSet"
    );
    // One ci/ scenario keeps the Deployment rendered and validated.
    let minimal = scenario(&result, "minimal");
    assert_eq!(
        minimal["workload"]["kind"], "Deployment",
        "ci/minimal-values.yaml is the Deployment scenario"
    );
    assert_eq!(instance_id(minimal), None);
    println!(
        "static membership: StatefulSet by default with group.instance.id from metadata.name; a Deployment \
         without it (auto), with it when kafka.staticMembership=true; none with false"
    );

    // The StatefulSet: a valid apps/v1 StatefulSet, governed by the chart's Service,
    // starting its pods in parallel, claiming no volumes, and no Deployment.
    let sts = scenario(&result, "statefulset");
    let workload = &sts["workload"];
    let name = string(workload, "name");
    assert_eq!(workload["apiVersion"], "apps/v1");
    assert_eq!(workload["kind"], "StatefulSet");
    assert_eq!(
        workload["serviceName"], sts["service"],
        "serviceName is not the chart's Service"
    );
    assert!(workload["serviceName"].is_string());
    assert_eq!(workload["podManagementPolicy"], "Parallel");
    assert_eq!(
        workload["volumeClaimTemplates"],
        Value::Null,
        "the StatefulSet claims volumes"
    );
    assert_eq!(
        workload["replicas"], 3,
        "ci/statefulset-values.yaml asks for 3 replicas"
    );
    for (scenario_name, kind) in [
        ("statefulset", "StatefulSet"),
        ("default", "StatefulSet"),
        ("minimal", "Deployment"),
        ("default-as-deployment", "Deployment"),
    ] {
        let s = scenario(&result, scenario_name);
        let other = if kind == "StatefulSet" {
            "Deployment"
        } else {
            "StatefulSet"
        };
        let kinds: Vec<&str> = s["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&format!("{kind}/{name}").as_str())
                && !kinds.iter().any(|k| k.starts_with(&format!("{other}/"))),
            "scenario {scenario_name} renders {kinds:?}, expected one {kind} and no {other}"
        );
        let validated = string(&s["validated"], &format!("{kind}/{name}"));
        assert!(
            validated.starts_with(&format!("kubernetes-validate apps/v1 {kind}")),
            "scenario {scenario_name}: the {kind} was validated against {validated}"
        );
        println!("scenario {scenario_name}: {kind}/{name}: {validated}");
    }
    // Its pod template is the Deployment's for the same values, to the byte (the Deployment
    // with static membership on, as the StatefulSet has it).
    let as_deployment = scenario(&result, "statefulset-as-deployment");
    assert_eq!(as_deployment["workload"]["kind"], "Deployment");
    assert_eq!(as_deployment["static_membership"], true);
    assert_eq!(
        sts["pod_template"], as_deployment["pod_template"],
        "the StatefulSet's pod template differs from the Deployment's for the same values"
    );
    assert_eq!(instance_id(sts), Some(&pod_name));
    println!("StatefulSet/{name}: the Deployment's pod template, serviceName {}, podManagementPolicy Parallel, no volumeClaimTemplates", workload["serviceName"]);

    // KEDA scales whichever kind is rendered; the workload then has no replicas field.
    for (name, kind) in [
        ("keda", "StatefulSet"),
        ("statefulset-keda", "StatefulSet"),
        ("keda-as-deployment", "Deployment"),
    ] {
        let s = scenario(&result, name);
        assert_eq!(s["workload"]["kind"], kind);
        assert_eq!(
            s["workload"]["replicas"],
            Value::Null,
            "scenario {name}: replicas set although KEDA scales"
        );
        assert_eq!(
            s["scale_target_ref"],
            json!({"apiVersion": "apps/v1", "kind": kind, "name": s["workload"]["name"]}),
            "scenario {name}: the ScaledObject does not target the {kind}"
        );
        println!("scenario {name}: the ScaledObject targets the {kind}");
    }
}

/// The status code of `GET path` on 127.0.0.1:port, as a kubelet probe sends it.
fn http_get(port: u16, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.31\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {line:?}")))
}

/// The service as a child process, killed if the test fails before it is terminated.
struct Service {
    child: Option<Child>,
    log: PathBuf,
}

impl Service {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().unwrap())
    }

    /// SIGTERM, as the kubelet sends it; the exit code, within the pod's grace period.
    fn terminate(&mut self, grace: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + grace;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("slaflow did not exit within {grace:?} of SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `path` answers on `port`; fails at once on a 404 or when the process exits.
fn wait_served(service: &mut Service, port: u16, path: &str, timeout: Duration) -> u16 {
    let deadline = Instant::now() + timeout;
    loop {
        match http_get(port, path) {
            Ok(404) => panic!(
                "GET {path} on the rendered container port {port} answered 404: the chart probes a path the binary \
                 does not serve; log:\n{}",
                service.log()
            ),
            Ok(code) => return code,
            Err(error) => {
                if let Some(status) = service.exited() {
                    panic!(
                        "slaflow run exited ({status}) before serving GET {path} on port {port} ({error}); log:\n{}",
                        service.log()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "nothing served GET {path} on the rendered container port {port} within {timeout:?} ({error}): \
                     the pods' probes would fail; log:\n{}",
                    service.log()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_rendered_probes_and_runs_the_hook() {
    require_broker();
    let db = TestDb::create("helm_probes").await;
    // Render with a free container port (9464 may be taken on a shared machine) and a group
    // and topics of this run; everything else is the chart's defaults.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let prefix = format!("slaflow-helm-probe-{}", std::process::id());
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helm_chart/probe");
    let result = render(&out, &["--probe-port", &port.to_string(), "--probe-prefix", &prefix]);
    let scenario = &scenarios(&result)[0];
    let config = string(scenario, "config");
    assert_eq!(scenario["container_port"].as_u64(), Some(u64::from(port)));
    create_topics(&[&format!("{prefix}-alerts"), &format!("{prefix}-apm")], 1).await;

    // The environment the pod gets: the workload's literal variables, then what the
    // downward API, the Secrets and the cluster would provide (the default StatefulSet names
    // its first pod RELEASE-0).
    let mut env: Vec<(String, String)> = scenario["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let pod = format!("{prefix}-0");
    for (name, from) in scenario["env_from"].as_object().unwrap() {
        if from["fieldRef"]["fieldPath"] == "metadata.name" {
            env.push((name.clone(), pod.clone())); // SLAFLOW_KAFKA_GROUP_INSTANCE_ID: static membership
        }
    }
    assert!(
        env.iter()
            .any(|(k, v)| k == "SLAFLOW_KAFKA_GROUP_INSTANCE_ID" && *v == pod),
        "the default pod template does not take group.instance.id from the pod's name"
    );
    env.extend(secret_env(scenario));
    env.push(("SLAFLOW_POSTGRES_URL".into(), db.url.clone()));
    env.push(("SLAFLOW_KAFKA_BOOTSTRAP_SERVERS".into(), BROKER.into()));
    env.push(("SLAFLOW_KAFKA_BROKER_ADDRESS_FAMILY".into(), "v4".into()));
    env.push(("NO_COLOR".into(), "1".into())); // a readable log in failure messages

    // The migration hook's command.
    let migrate = args(scenario, "migrate_args", &config);
    let migrated = Command::new(env!("CARGO_BIN_EXE_slaflow"))
        .args(&migrate)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert!(
        migrated.status.success(),
        "the migration hook's command `slaflow {}` failed:\n{}{}",
        migrate.join(" "),
        String::from_utf8_lossy(&migrated.stdout),
        String::from_utf8_lossy(&migrated.stderr)
    );
    println!(
        "hook: slaflow {}: {}",
        migrate.join(" "),
        String::from_utf8_lossy(&migrated.stdout).trim()
    );

    // The workload's command.
    let run = args(scenario, "run_args", &config);
    let log = out.join("slaflow.log");
    let mut service = Service {
        child: Some(
            Command::new(env!("CARGO_BIN_EXE_slaflow"))
                .args(&run)
                .envs(env.iter().cloned())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        ),
        log,
    };
    let mut served = Vec::new();
    for probe in scenario["probes"].as_array().unwrap() {
        let (name, path) = (string(probe, "probe"), string(probe, "path"));
        let probe_port = u16::try_from(probe["port"].as_u64().unwrap()).unwrap();
        let code = wait_served(&mut service, probe_port, &path, Duration::from_secs(60));
        assert!(
            code == 200 || code == 503,
            "{name} GET {path} on port {probe_port} answered {code}, expected 200 or 503"
        );
        println!("{name}: GET {path} on the rendered container port {probe_port}: {code}");
        served.push(path);
    }
    assert!(
        served.len() >= 2,
        "the pod template has fewer than two probes: {served:?}"
    );
    let metrics = string(scenario, "metrics_path");
    let code = wait_served(&mut service, port, &metrics, Duration::from_secs(10));
    assert_eq!(code, 200, "GET {metrics} (the ServiceMonitor's path) answered {code}");
    println!("ServiceMonitor: GET {metrics} on port {port}: {code}");
    // Readiness is not asserted (it needs the partitions assigned), only reported.
    let readiness = scenario["probes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["probe"] == "readinessProbe")
        .map(|p| string(p, "path"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut ready = http_get(port, &readiness).unwrap_or(0);
    while ready != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        ready = http_get(port, &readiness).unwrap_or(0);
    }
    println!("readiness after start-up: GET {readiness}: {ready}");

    // Within the pod's grace period, as the kubelet would wait before SIGKILL.
    let grace = Duration::from_secs(scenario["termination_grace_seconds"].as_u64().unwrap());
    let code = service.terminate(grace);
    assert_eq!(
        code,
        Some(0),
        "slaflow did not exit cleanly on SIGTERM; log:\n{}",
        service.log()
    );
    println!("SIGTERM: exited 0");
    db.drop_db().await;
}
