//! Observability against real parts: a real Prometheus server scrapes a real
//! Sori and runs every dashboard query; a real OTLP exporter sends the
//! request's spans to a receiver that decodes the protobuf.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{free_port, Server};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;

/// A Prometheus server scraping its targets every second; killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_ports: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = target_ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sori\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's prometheus package is installed (make deps)");
        Self { child, port, _dir: dir }
    }

    /// Runs an instant query; returns the API's whole answer.
    fn query(&self, promql: &str) -> Value {
        reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .query(&[("query", promql)])
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null)
    }

    /// The result vector of a query that must succeed.
    fn results(&self, promql: &str) -> Vec<Value> {
        let answer = self.query(promql);
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        answer["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn wait_for(&self, promql: &str, what: &str) {
        let started = Instant::now();
        while self.query(promql)["data"]["result"]
            .as_array()
            .is_none_or(|r| r.is_empty())
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "Prometheus never saw {what}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every PromQL expression in the dashboards, with Grafana's variables
/// filled in (`$instance`: `instance`, a regex of replicas).
fn dashboard_queries(instance: &str) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        let dashboard: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                let expr = expr
                    .replace("$__rate_interval", "1m")
                    .replace("$model", ".*")
                    .replace("$instance", instance);
                queries.push((
                    format!("{} / {}", path.file_name().unwrap().to_string_lossy(), panel["title"]),
                    expr,
                ));
            }
        }
    }
    assert!(
        queries.len() >= 20,
        "the dashboards hold their panels: {}",
        queries.len()
    );
    queries
}

/// A real Prometheus scrapes two replicas; every query of the dashboards
/// returns data for all replicas and for one (the `instance` variable), and
/// the per-replica panels show each replica apart.
#[test]
fn prometheus_scrapes_sori_and_every_dashboard_query_returns_data() {
    let data = tempfile::tempdir().unwrap();
    let other_data = tempfile::tempdir().unwrap();
    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &[]);
    let other = Server::start(&model_path("tiny.en"), other_data.path(), &[], &[]);
    let prometheus = Prometheus::start(&[server.port, other.port]);
    prometheus.wait_for("count(up{job=\"sori\"} == 1) == 2", "both replicas up");
    let jfk = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    assert_eq!(other.transcribe("jfk.wav", jfk, &[]).0, 200);

    let jfk = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    for _ in 0..2 {
        assert_eq!(server.transcribe("jfk.wav", jfk.clone(), &[]).0, 200);
    }
    assert_eq!(server.transcribe("notes.wav", b"not audio at all".to_vec(), &[]).0, 415);
    assert_eq!(
        reqwest::blocking::get(server.url("/files/not-an-id")).unwrap().status(),
        404
    );
    prometheus.wait_for("sori_transcriptions_total >= 2", "the transcriptions");
    prometheus.wait_for("sori_errors_total{code=\"not_found\"} >= 1", "the errors");
    std::thread::sleep(Duration::from_secs(2)); // a few more scrapes for rate()

    for series in [
        "sori_transcription_processing_seconds_bucket",
        "sori_transcription_cpu_avg_ratio_bucket",
        "sori_transcription_memory_peak_bytes_bucket",
        "sori_last_request_processing_seconds",
        "sori_queue_depth",
        "sori_process_resident_memory_bytes",
        "sori_audio_seconds_total",
    ] {
        assert!(!prometheus.results(series).is_empty(), "no {series} in Prometheus");
    }
    let first = format!("127.0.0.1:{}", server.port);
    let audio = prometheus.results(&format!("sori_audio_seconds_total{{instance=\"{first}\"}}"));
    assert_eq!(audio[0]["value"][1], "22", "two 11 s clips: {audio:?}");
    let count = prometheus.results("sum(sori_transcription_processing_seconds_count)");
    assert_eq!(count[0]["value"][1], "3", "two on one replica, one on the other");
    let errors = prometheus.results("sori_errors_total{code=\"unsupported_media\"}");
    assert_eq!(errors[0]["value"][1], "1");

    prometheus.wait_for("count(sori_ready == 1) == 2", "both replicas ready");
    let mut empty = Vec::new();
    for instance in [".*".to_string(), regex_escape(&first)] {
        for (panel, expr) in dashboard_queries(&instance) {
            let results = prometheus.results(&expr);
            if results.is_empty() {
                empty.push(format!("{panel}: {expr}"));
            }
            // A panel of one replica shows only that replica.
            for result in results.iter().filter(|r| r["metric"]["instance"].is_string()) {
                if instance != ".*" {
                    assert_eq!(result["metric"]["instance"], first.as_str(), "{panel}: {expr}");
                }
            }
        }
    }
    let per_replica = prometheus.results(
        &dashboard_queries(".*")
            .into_iter()
            .find(|(panel, _)| panel.contains("Processing time per transcription"))
            .unwrap()
            .1,
    );
    assert_eq!(per_replica.len(), 2, "one p50 line per replica: {per_replica:?}");
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );
}

#[test]
fn metrics_pass_promtool_and_the_shipped_config_is_valid() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &[]);
    let jfk = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    assert_eq!(server.transcribe("jfk.wav", jfk, &[]).0, 200);
    let metrics = reqwest::blocking::get(server.url("/metrics")).unwrap().text().unwrap();
    for line in metrics.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        assert!(line.starts_with("sori_"), "every metric has the sori_ prefix: {line}");
        assert!(
            !line.contains("jfk") && !line.contains("file_id"),
            "no file names or ids as labels: {line}"
        );
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut promtool.stdin.take().unwrap(), metrics.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let config = repo_root().join("deploy/prometheus/prometheus.yml");
    let out = Command::new("promtool")
        .arg("check")
        .arg("config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `text` as a PromQL regex that matches only it.
fn regex_escape(text: &str) -> String {
    text.replace('.', "\\\\.")
}

/// Spans received by a minimal OTLP/HTTP receiver.
type Received = Arc<Mutex<Vec<Span>>>;

/// Serves `POST /v1/traces` on a free port, decoding the OTLP protobuf.
fn start_otlp_receiver() -> (u16, Received) {
    let received: Received = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = received.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |body: axum::body::Bytes| async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf");
                    let spans = request
                        .resource_spans
                        .into_iter()
                        .flat_map(|r| r.scope_spans)
                        .flat_map(|s| s.spans);
                    sink.lock().unwrap().extend(spans);
                    axum::http::StatusCode::OK
                }),
            );
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (port, received)
}

/// The spans of one trace, once the request span and at least `count` spans have arrived.
fn spans_of(received: &Mutex<Vec<Span>>, trace_id: &str, count: usize) -> Vec<Span> {
    let started = Instant::now();
    loop {
        let spans: Vec<Span> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .cloned()
            .collect();
        if spans.iter().any(|s| s.name == "POST /transcribe") && spans.len() >= count {
            return spans;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "spans never arrived: {spans:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn attributes(span: &Span) -> HashMap<String, AnyValue> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?.value?)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_request_span_carries_the_eight_figures_and_continues_the_callers_trace() {
    let (otlp_port, received) = start_otlp_receiver();
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{otlp_port}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "200".to_string()),
        ("OTEL_SERVICE_NAME", "sori-under-test".to_string()),
    ];
    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &env);
    let (trace_id, parent_id) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let traceparent = format!("00-{trace_id}-{parent_id}-01");
    let jfk = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    let (status, body) = server.transcribe("jfk.wav", jfk, &[("traceparent", &traceparent)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["trace_id"], trace_id, "the response carries the caller's trace id");
    let file_id = body["file_id"].as_str().unwrap();
    let record: Value =
        serde_json::from_slice(&std::fs::read(data.path().join(format!("{file_id}.performance.json"))).unwrap())
            .unwrap();
    assert_eq!(record["trace_id"], trace_id);

    let spans = spans_of(&received, trace_id, 7);
    let request = spans.iter().find(|s| s.name == "POST /transcribe").unwrap();
    assert_eq!(
        hex(&request.parent_span_id),
        parent_id,
        "the span continues the caller's traceparent"
    );
    let attrs = attributes(request);
    for key in EIGHT.into_iter().chain(["audio_duration_sec"]) {
        let Some(AnyValue::DoubleValue(v)) = attrs.get(key) else {
            panic!("{key} missing: {attrs:?}")
        };
        let expected = body["performance"][key].as_f64().or(body[key].as_f64()).unwrap();
        assert!((v - expected).abs() < 1e-9, "{key}: span {v}, response {expected}");
    }
    assert_eq!(attrs.get("file_id"), Some(&AnyValue::StringValue(file_id.to_string())));
    let model = body["model"].as_str().unwrap();
    assert!(model.starts_with("tiny.en"), "the served model: {model}");
    assert_eq!(attrs.get("model"), Some(&AnyValue::StringValue(model.into())));
    assert_eq!(attrs.get("language"), Some(&AnyValue::StringValue("en".into())));
    assert_eq!(attrs.get("outcome"), Some(&AnyValue::StringValue("success".into())));
    assert_eq!(
        attrs.get("scope"),
        Some(&AnyValue::StringValue("request".into())),
        "it ran alone"
    );
    assert_eq!(attrs.get("concurrent_jobs_max"), Some(&AnyValue::IntValue(0)));
    // The job runs in a worker process, under a `worker` span of its own that
    // continues the request's trace; the server's stages are the request's.
    let child_of = |name: &str, parent: &Span| {
        let span = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span"));
        assert_eq!(
            span.parent_span_id, parent.span_id,
            "{name} is a child of {}",
            parent.name
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        span
    };
    let worker = child_of("worker", request);
    let Some(AnyValue::IntValue(pid)) = attributes(worker).get("pid").cloned() else {
        panic!("the worker span names its process: {worker:?}")
    };
    assert_eq!(vec![pid as u32], server.worker_pids(), "the worker that ran the job");
    for child in ["queue_wait", "write_files"] {
        child_of(child, request);
    }
    for child in ["decode", "resample", "inference"] {
        child_of(child, worker);
    }

    // JFK three times (33 s) is cut into three pieces, the first decoded on both
    // threads, the others side by side: one `piece` span each, under `inference`.
    let audio = tempfile::tempdir().unwrap();
    let (jfk_path, thrice) = (fixture_audio("jfk.wav"), audio.path().join("jfk-thrice.wav"));
    let jfk_path = jfk_path.to_str().unwrap();
    sox(&[jfk_path, jfk_path, jfk_path, thrice.to_str().unwrap()]);
    let long_trace = "5bf92f3577b34da6a3ce929d0e0e4737";
    let traceparent = format!("00-{long_trace}-{parent_id}-01");
    let (status, body) = server.transcribe(
        "jfk-thrice.wav",
        std::fs::read(&thrice).unwrap(),
        &[("traceparent", &traceparent)],
    );
    assert_eq!(status, 200, "{body}");
    let spans = spans_of(&received, long_trace, 10);
    let inference = spans.iter().find(|s| s.name == "inference").expect("an inference span");
    let mut pieces: Vec<i64> = spans
        .iter()
        .filter(|s| s.name == "piece")
        .map(|s| {
            assert_eq!(s.parent_span_id, inference.span_id, "a piece is a child of inference");
            match attributes(s).get("index") {
                Some(AnyValue::IntValue(i)) => *i,
                other => panic!("piece index: {other:?}"),
            }
        })
        .collect();
    pieces.sort();
    assert_eq!(pieces, [0, 1, 2], "{spans:?}");
    let (took, clean) = server.terminate();
    assert!(clean && took < Duration::from_secs(15), "flushed and stopped: {took:?}");
}

#[test]
fn a_missing_collector_neither_fails_nor_slows_requests() {
    let data = tempfile::tempdir().unwrap();
    let closed = free_port();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{closed}"))];
    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &env);
    let jfk = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    let (status, body) = server.transcribe("jfk.wav", jfk, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["trace_id"].as_str().map(str::len),
        Some(32),
        "a fresh trace id: {body}"
    );
    let (took, clean) = server.terminate();
    assert!(
        clean && took < Duration::from_secs(15),
        "shutdown does not hang on the missing collector: {took:?}"
    );
}

#[test]
fn dashboards_only_use_provisioned_datasources() {
    let provisioned: serde_yaml_ng::Value = serde_yaml_ng::from_slice(
        &std::fs::read(repo_root().join("deploy/grafana/provisioning/datasources/datasources.yml")).unwrap(),
    )
    .unwrap();
    let uids: Vec<&str> = provisioned["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|d| d["uid"].as_str().unwrap())
        .collect();
    assert!(uids.contains(&"prometheus") && uids.contains(&"jaeger"), "{uids:?}");
    for entry in std::fs::read_dir(repo_root().join("dashboards")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains("${DS_"),
            "import-style datasource inputs fail under file provisioning"
        );
        let dashboard: Value = serde_json::from_str(&text).unwrap();
        let mut refs = Vec::new();
        collect_datasource_uids(&dashboard, &mut refs);
        assert!(!refs.is_empty());
        for uid in refs {
            assert!(uids.contains(&uid.as_str()), "datasource {uid} is not provisioned");
        }
    }
}

fn collect_datasource_uids(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(uid) = map.get("datasource").and_then(|d| d.get("uid")).and_then(Value::as_str) {
                out.push(uid.to_string());
            }
            map.values().for_each(|v| collect_datasource_uids(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_datasource_uids(v, out)),
        _ => {}
    }
}

#[test]
fn the_compose_stack_is_wired_together() {
    let root = repo_root();
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(&std::fs::read(root.join("docker-compose.yml")).unwrap()).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    for name in ["sori", "prometheus", "grafana", "jaeger"] {
        assert!(services.contains_key(name), "service {name} missing");
    }
    // Every file mounted from the repository exists.
    for (_, service) in services {
        for volume in service["volumes"].as_sequence().into_iter().flatten() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if source.starts_with("./") {
                assert!(root.join(source).exists(), "mounted {source} does not exist");
            }
        }
    }
    let dockerfile = compose["services"]["sori"]["build"]["dockerfile"].as_str().unwrap();
    let dockerfile = std::fs::read_to_string(root.join(dockerfile)).unwrap();
    assert!(dockerfile.contains("GGML_NATIVE=OFF"), "the image is a portable build");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        for source in line
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .split_last()
            .unwrap()
            .1
        {
            assert!(root.join(source).exists(), "Dockerfile copies missing {source}");
        }
    }
    // Prometheus scrapes the sori service on the port Sori listens on in the image.
    let prometheus: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(&std::fs::read(root.join("deploy/prometheus/prometheus.yml")).unwrap()).unwrap();
    let target = prometheus["scrape_configs"][0]["static_configs"][0]["targets"][0]
        .as_str()
        .unwrap();
    assert_eq!(target, "sori:8003");
    assert!(dockerfile.contains("SORI_PORT=8003") && dockerfile.contains("SORI_HOST=0.0.0.0"));
    // Sori sends traces to Jaeger's OTLP/HTTP port, which Jaeger opens.
    let endpoint = compose["services"]["sori"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        .as_str()
        .unwrap();
    assert_eq!(endpoint, "http://jaeger:4318");
    assert_eq!(
        compose["services"]["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"],
        "true"
    );
    // Grafana loads the dashboards from where the provider looks.
    let provider: serde_yaml_ng::Value = serde_yaml_ng::from_slice(
        &std::fs::read(root.join("deploy/grafana/provisioning/dashboards/dashboards.yml")).unwrap(),
    )
    .unwrap();
    let path = provider["providers"][0]["options"]["path"].as_str().unwrap();
    let grafana_volumes: Vec<&str> = compose["services"]["grafana"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        grafana_volumes
            .iter()
            .any(|v| v.starts_with("./dashboards:") && v.contains(path)),
        "{grafana_volumes:?}"
    );
    assert!(Path::new(&root.join("dashboards")).read_dir().unwrap().count() >= 2);
}

/// The alerting rules: `promtool check rules`, and `promtool test rules`
/// with unit tests that fire each alert on one replica's series and not on
/// the other's; every Sori metric a rule reads is one Sori records (the
/// PrometheusRule that holds the same groups is checked in tests/deploy.rs).
#[test]
fn alert_rules_pass_promtool_and_fire_when_they_should() {
    let dir = repo_root().join("deploy/prometheus");
    for args in [["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]] {
        let out = Command::new("promtool").args(args).current_dir(&dir).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let recorded = std::fs::read_to_string(repo_root().join("src/telemetry/metrics.rs")).unwrap();
    let text = std::fs::read_to_string(dir.join("alerts.yml")).unwrap();
    let mut names: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("sori_"))
        .collect();
    names.dedup();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        let base = name.trim_end_matches("_bucket");
        assert!(
            recorded.contains(&format!("\"{base}\"")),
            "{name} is not a metric Sori records"
        );
    }
}
