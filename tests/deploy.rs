//! The Kubernetes manifests (`deploy/kubernetes`) and the image: the base and
//! the dev overlay rendered by kustomize (kubectl's, when kubectl is
//! installed; otherwise the base's files as written), every resource
//! validated against Kubernetes' own schemas with `kubernetes-validate`
//! (`make test-tools` installs it in `.venv-k8s`), and the settings that must
//! agree with Sori's checked against each other.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::repo_root;
use serde::Deserialize;
use serde_yaml_ng::Value;

/// The Kubernetes version the manifests are validated for.
const KUBERNETES: &str = "1.31.0";
/// Kinds of the Prometheus Operator and KEDA, whose schemas
/// kubernetes-validate does not ship (CRDs).
const CRDS: [&str; 3] = ["ServiceMonitor", "PrometheusRule", "ScaledObject"];

fn kubernetes() -> PathBuf {
    repo_root().join("deploy/kubernetes")
}

/// The YAML of `folder` (under deploy/kubernetes) as kustomize builds it,
/// or `None` (with the reason printed) when kubectl is not installed.
fn rendered(folder: &str) -> Option<String> {
    let out = match Command::new("kubectl")
        .args(["kustomize"])
        .arg(kubernetes().join(folder))
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            eprintln!("not rendered with kustomize ({e}: kubectl is not installed); the base's files are validated as written");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {folder}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// The base's resources as written, in one YAML stream.
fn base_as_written() -> String {
    let kustomization: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(kubernetes().join("base/kustomization.yaml")).unwrap())
            .unwrap();
    kustomization["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|file| std::fs::read_to_string(kubernetes().join("base").join(file.as_str().unwrap())).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Validates a YAML stream with kubernetes-validate (strict: no unknown
/// fields); every resource but the CRDs must pass.
fn validate(name: &str, yaml: &str) -> Vec<Value> {
    let program = repo_root().join(".venv-k8s/bin/kubernetes-validate");
    assert!(
        program.exists(),
        "no {} (make test-tools installs it)",
        program.display()
    );
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), yaml).unwrap();
    let out = Command::new(program)
        .args(["--strict", "-k", KUBERNETES])
        .arg(file.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {report}");
    let documents: Vec<Value> = serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|d| !d.is_null())
        .collect();
    for document in &documents {
        let kind = document["kind"].as_str().unwrap();
        let resource = format!(
            "{}/{}",
            kind.to_lowercase(),
            document["metadata"]["name"].as_str().unwrap()
        );
        if CRDS.contains(&kind) {
            assert!(
                report.contains(&format!("Couldn't find schema for kind {kind}")),
                "{report}"
            );
            eprintln!("{name}: {kind} not validated: kubernetes-validate ships no schema for this CRD");
        } else {
            assert!(
                report.contains(&format!("passed for resource {resource}")),
                "{name}: {resource}: {report}"
            );
        }
    }
    documents
}

fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The base (rendered, or as written) and the dev overlay (when kustomize
/// can render it) are valid Kubernetes, and the Deployment agrees with
/// Sori: probes on /readyz and /healthz at the port Sori listens on, a grace
/// period longer than --shutdown-grace-sec, a non-root user and a read-only
/// root with a volume wherever Sori writes, the model fetched by an init
/// container into the folder Sori reads it from, every Secret key the overlay
/// must provide provided, and the Service, ServiceMonitor and ScaledObject
/// pointing at it.
#[test]
fn the_kubernetes_manifests_are_valid_and_agree_with_sori() {
    let base = validate("base", &rendered("base").unwrap_or_else(base_as_written));
    let config = &find(&base, "ConfigMap", "sori-config")["data"];
    let setting = |key: &str| config[key].as_str().unwrap_or_else(|| panic!("no {key}")).to_string();
    let deployment = find(&base, "Deployment", "sori");
    let pod = &deployment["spec"]["template"]["spec"];
    let sori = &pod["containers"][0];

    let port: u64 = setting("SORI_PORT").parse().unwrap();
    assert_eq!(sori["ports"][0]["containerPort"].as_u64(), Some(port));
    assert_eq!(sori["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(sori["livenessProbe"]["httpGet"]["path"], "/healthz");
    let grace: u64 = setting("SORI_SHUTDOWN_GRACE_SEC").parse().unwrap();
    let period = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        period >= grace + 10,
        "terminationGracePeriodSeconds {period} leaves no margin over {grace}"
    );

    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let mounted = |container: &Value| -> Vec<String> {
        container["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter(|m| m["readOnly"] != true)
            .map(|m| m["mountPath"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(sori["securityContext"]["readOnlyRootFilesystem"], true);
    for writes in [setting("SORI_DATA_DIR"), "/tmp".to_string()] {
        assert!(mounted(sori).contains(&writes), "Sori writes in {writes}");
    }
    let fetch = &pod["initContainers"][0];
    assert_eq!(fetch["securityContext"]["readOnlyRootFilesystem"], true);
    let args: Vec<&str> = fetch["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[..2], ["model", "fetch"]);
    let dest = args[args.iter().position(|a| *a == "--dest").unwrap() + 1];
    assert_eq!(
        dest,
        setting("SORI_MODEL_DIR"),
        "the model is fetched where Sori reads it"
    );
    assert!(mounted(fetch).contains(&dest.to_string()));
    assert!(sori["resources"]["requests"]["memory"].is_string() && sori["resources"]["limits"]["memory"].is_string());

    let service = find(&base, "Service", "sori");
    let template_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .unwrap();
    for (key, value) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(template_labels.get(key), Some(value), "the Service selects the pods");
    }
    let monitor = find(&base, "ServiceMonitor", "sori");
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"],
        service["spec"]["ports"][0]["name"]
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    let scaled = find(&base, "ScaledObject", "sori");
    assert_eq!(scaled["spec"]["scaleTargetRef"]["name"], "sori");
    let query = scaled["spec"]["triggers"][0]["metadata"]["query"].as_str().unwrap();
    let recorded = std::fs::read_to_string(repo_root().join("src/telemetry/metrics.rs")).unwrap();
    for metric in ["sori_queue_depth", "sori_batch_files_queued"] {
        assert!(
            query.contains(metric) && recorded.contains(&format!("\"{metric}\"")),
            "{query}"
        );
    }
    let rule = find(&base, "PrometheusRule", "sori");
    let alerts: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo_root().join("deploy/prometheus/alerts.yml")).unwrap())
            .unwrap();
    assert_eq!(
        rule["spec"]["groups"], alerts["groups"],
        "the PrometheusRule is alerts.yml"
    );

    // The dev overlay provides every Secret key the Deployment needs (all but
    // the optional API keys).
    let Some(dev) = rendered("overlays/dev") else { return };
    let dev = validate("overlays/dev", &dev);
    let secret = find(&dev, "Secret", "sori-secrets");
    let data = secret["data"].as_mapping().unwrap();
    for env in sori["env"].as_sequence().unwrap() {
        let reference = &env["valueFrom"]["secretKeyRef"];
        if let (Some(key), false) = (reference["key"].as_str(), reference["optional"] == true) {
            assert!(data.contains_key(key), "the dev Secret lacks {key}");
        }
    }
    assert!(
        !dev.iter().any(|d| d["kind"] == "ScaledObject"),
        "the trial runs without KEDA"
    );
}

/// The image builds Sori portably from what the repository has (every
/// folder the binary embeds is copied in), holds no Whisper model but Silero
/// VAD, and runs as a user that is not root, as the Deployment asks.
#[test]
fn the_image_holds_no_model_and_runs_as_non_root() {
    let dockerfile = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    assert!(dockerfile.contains("GGML_NATIVE=OFF"));
    // The sources, what the binary embeds, and the bench the manifest names
    // (cargo refuses a manifest whose declared bench is missing).
    for embedded in ["src", "static", "benches"] {
        assert!(
            dockerfile.lines().any(|l| l.starts_with(&format!("COPY {embedded} "))),
            "the build copies {embedded}/"
        );
    }
    assert!(!dockerfile.contains("model fetch"), "the model is not baked in");
    assert!(
        dockerfile.contains("\nRUN scripts/whisper-rs-sys.sh\n"),
        "cargo needs the patched whisper-rs-sys"
    );
    assert_whisper_patches_copied(&dockerfile);
    // Silero VAD is (the image has no pip).
    assert_silero_vad_and_non_root_user(&dockerfile);
}

/// What Cargo.toml's `[patch.crates-io]` needs before any cargo command: the
/// script that unpacks whisper-rs-sys and the patches it applies.
fn assert_whisper_patches_copied(dockerfile: &str) {
    assert!(
        dockerfile.lines().any(|l| l == "COPY patches ./patches"),
        "the build copies patches/"
    );
    assert!(
        dockerfile
            .lines()
            .any(|l| l.starts_with("COPY ") && l.contains("scripts/whisper-rs-sys.sh")),
        "the build copies scripts/whisper-rs-sys.sh"
    );
}

/// What every image has: Silero VAD from the wheel and hash `sori model fetch
/// silero-vad` pins, where SORI_VAD_MODEL points, and the non-root user the
/// Deployment asks for.
fn assert_silero_vad_and_non_root_user(dockerfile: &str) {
    assert!(dockerfile.contains(&format!(
        "pip download --no-deps --disable-pip-version-check --dest /wheels {}",
        sori::model::silero::WHEEL
    )));
    assert!(dockerfile.contains(sori::model::silero::SHA256));
    assert!(dockerfile.contains("COPY --from=vad /silero_vad_16k.onnx /usr/share/sori/silero_vad_16k.onnx"));
    assert!(dockerfile.contains("SORI_VAD_MODEL=/usr/share/sori/silero_vad_16k.onnx"));
    let user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert_eq!(user.trim(), "10001");
}

/// The CUDA image is built by `make build-cuda` (the one way a CUDA build is
/// made), from files the repository has, pins the same Silero VAD as the CPU
/// image, carries the CUDA libraries the binary is linked against, lets the
/// container reach NVML (the GPU figures), and runs as the same non-root user;
/// the compose override asks Docker for an NVIDIA GPU for it.
#[test]
fn the_cuda_image_is_made_by_make_build_cuda_and_the_compose_override_asks_for_a_gpu() {
    let dockerfile = std::fs::read_to_string(repo_root().join("deploy/Dockerfile.cuda")).unwrap();
    let makefile = std::fs::read_to_string(repo_root().join("Makefile")).unwrap();
    assert!(dockerfile.contains("RUN make build-cuda CUDA_ARCHITECTURES="));
    let build_cuda = makefile.split("\nbuild-cuda:").nth(1).expect("a build-cuda target");
    let build_cuda = build_cuda.split("\n\n").next().unwrap();
    assert!(build_cuda.contains("GGML_NATIVE=OFF"), "a portable build: {build_cuda}");
    assert!(build_cuda.contains("--features cuda"));
    assert!(
        makefile.contains("\nbuild-cuda: deps"),
        "deps unpacks the patched whisper-rs-sys"
    );
    assert_whisper_patches_copied(&dockerfile);
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for source in &words[1..words.len() - 1] {
            assert!(
                repo_root().join(source).exists(),
                "{line}: {source} is not in the repository"
            );
        }
    }
    assert_silero_vad_and_non_root_user(&dockerfile);
    // whisper-rs-sys links these dynamically (cargo:rustc-link-lib=cudart, cublas, cublasLt).
    for library in ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"] {
        assert!(
            dockerfile.contains(&format!("/lib/{library}")),
            "the image carries {library}"
        );
    }
    assert!(dockerfile.contains("LD_LIBRARY_PATH=/usr/local/lib/sori-cuda"));
    assert!(dockerfile.contains("NVIDIA_DRIVER_CAPABILITIES=compute,utility"));
    assert!(!dockerfile.contains("model fetch"), "the model is not baked in");

    let compose: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo_root().join("docker-compose.cuda.yml")).unwrap())
            .unwrap();
    let sori = &compose["services"]["sori"];
    assert_eq!(sori["build"]["dockerfile"], "deploy/Dockerfile.cuda");
    let device = &sori["deploy"]["resources"]["reservations"]["devices"][0];
    assert_eq!(device["driver"], "nvidia");
    assert_eq!(device["capabilities"][0], "gpu");
}
