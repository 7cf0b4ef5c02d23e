//! The cluster sets in `deploy/`, checked with the tools that run here (there is neither a
//! Docker engine nor a Kubernetes cluster): the compose file against the Compose
//! Specification's JSON schema, the Kubernetes manifests with `kubernetes-validate`, the
//! NATS chart's values against that chart's own values, the NATS server config with
//! `nats-server -t` and the Prometheus config with `promtool`, each config laid out as its
//! container mounts it, every file they mount or name present, and `earshot receive`, the
//! compose set's webhook receiver, against a running earshot.
//!
//! YAML is read through Python (PyYAML and `jsonschema`, which come with
//! `kubernetes-validate`; the test command installs it), so this crate takes no YAML parser.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::delivery::{append, posts, terminate, Setup};
use crate::support::{self, earshot};

/// The Kubernetes versions the manifests are validated against: the oldest and the newest
/// whose schemas `kubernetes-validate` 1.37 carries that are still in use.
const KUBERNETES_VERSIONS: &[&str] = &["1.32.0", "1.37.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

/// Python with PyYAML and `jsonschema`: `$EARSHOT_PYTHON`, else `python3`.
fn python() -> Command {
    Command::new(std::env::var("EARSHOT_PYTHON").unwrap_or_else(|_| "python3".into()))
}

/// `kubernetes-validate`: `$EARSHOT_KUBERNETES_VALIDATE`, else on `PATH` (the test command
/// installs it from PyPI when missing).
fn kubernetes_validate() -> Command {
    Command::new(
        std::env::var("EARSHOT_KUBERNETES_VALIDATE")
            .unwrap_or_else(|_| "kubernetes-validate".into()),
    )
}

/// `nats-server`: `$EARSHOT_NATS_SERVER`, else on `PATH`, as for the `nats` sink's tests.
fn nats_server() -> Command {
    Command::new(std::env::var("EARSHOT_NATS_SERVER").unwrap_or_else(|_| "nats-server".into()))
}

/// Runs `cmd`; (success, stdout and stderr).
fn run(cmd: &mut Command, what: &str) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} runs (scripts/test.sh installs it): {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Every document of a YAML file, as JSON (YAML anchors and merge keys resolved).
fn yaml_docs(path: &Path) -> Vec<Value> {
    let (ok, out) = run(
        python()
            .args([
                "-c",
                "import json, sys, yaml\n\
             print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1], encoding='utf-8')))))",
            ])
            .arg(path),
        "python3 with PyYAML",
    );
    assert!(ok, "{}: not YAML:\n{out}", path.display());
    serde_json::from_str(&out).unwrap()
}

/// The one document of a YAML file.
fn yaml(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{}: one YAML document", path.display());
    docs.remove(0)
}

/// The errors of `doc` (a YAML file) against the JSON schema `schema`, one a line.
fn schema_errors(schema: &Path, doc: &Path) -> Vec<String> {
    let out = python()
            .args([
                "-c",
                "import json, sys, yaml, jsonschema\n\
                 schema = json.load(open(sys.argv[1], encoding='utf-8'))\n\
                 doc = yaml.safe_load(open(sys.argv[2], encoding='utf-8'))\n\
                 assert 'draft-07' in schema['$schema'], schema['$schema']\n\
                 cls = jsonschema.Draft7Validator\n\
                 cls.check_schema(schema)\n\
                 for e in sorted(cls(schema).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):\n\
                 \x20   print('/'.join(map(str, e.absolute_path)) + ': ' + e.message)\n",
            ])
            .arg(schema)
            .arg(doc)
            .output()
            .expect("python3 with jsonschema runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "the schema check did not run:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"))
}

// ---------------------------------------------------------------------------------------
// The compose set

fn compose() -> Value {
    yaml(&deploy("compose/compose.yaml"))
}

fn services(compose: &Value) -> &serde_json::Map<String, Value> {
    compose["services"].as_object().expect("services")
}

/// A short-syntax volume of a service: (source, target); the source is a path (relative to
/// the compose folder) for a bind mount, else a named volume.
fn mounts(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .map(|v| v.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let text = str_of(m, "a volume");
            let parts: Vec<&str> = text.split(':').collect();
            assert!(
                (2..=3).contains(&parts.len()),
                "volume `{text}`: short syntax SOURCE:TARGET[:MODE]"
            );
            (parts[0].to_string(), parts[1].to_string())
        })
        .collect()
}

fn is_bind(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/')
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    let schema = deploy("schemas/compose-spec.json");
    let file = deploy("compose/compose.yaml");
    let errors = schema_errors(&schema, &file);
    assert!(errors.is_empty(), "compose.yaml:\n{}", errors.join("\n"));
    // The check bites: a misspelt key in a service is refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("compose.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let broken = text.replacen("    hostname: earshot-1", "    hostnme: earshot-1", 1);
    assert_ne!(broken, text);
    std::fs::write(&bad, broken).unwrap();
    let errors = schema_errors(&schema, &bad);
    assert!(errors.iter().any(|e| e.contains("hostnme")), "{errors:?}");
}

#[test]
fn the_compose_file_mounts_builds_and_names_what_exists() {
    let compose = compose();
    let dir = deploy("compose");
    let services = services(&compose);
    let volumes: BTreeSet<&String> = compose["volumes"].as_object().unwrap().keys().collect();
    let secrets: BTreeSet<&String> = compose["secrets"].as_object().unwrap().keys().collect();
    let mut binds = 0;
    for (name, service) in services {
        if let Some(build) = service.get("build") {
            let context = dir.join(str_of(&build["context"], "build.context"));
            let dockerfile = context.join(str_of(&build["dockerfile"], "build.dockerfile"));
            assert!(dockerfile.is_file(), "{name}: no {}", dockerfile.display());
        }
        for (source, target) in mounts(service) {
            if is_bind(&source) {
                assert!(
                    dir.join(&source).exists(),
                    "{name}: mounts {source}, which is not there"
                );
                binds += 1;
            } else {
                assert!(
                    volumes.contains(&source),
                    "{name}: volume {source} is not declared"
                );
            }
            assert!(target.starts_with('/'), "{name}: {target}");
        }
        for secret in service["secrets"]
            .as_array()
            .map(|s| s.as_slice())
            .unwrap_or_default()
        {
            let source = secret.get("source").unwrap_or(secret);
            assert!(
                secrets.contains(&str_of(source, "secret").to_string()),
                "{name}: {secret}"
            );
        }
        if let Some(deps) = service["depends_on"].as_object() {
            for dep in deps.keys() {
                assert!(
                    services.contains_key(dep),
                    "{name} depends on unknown {dep}"
                );
            }
        }
        if let Some(mode) = service["network_mode"].as_str() {
            let other = mode.strip_prefix("service:").unwrap_or(mode);
            assert!(services.contains_key(other), "{name}: network_mode {mode}");
        }
    }
    assert!(binds >= 10, "{binds} bind mounts");
    // Every variable the file reads is in .env.example, which holds names and no values.
    let text = std::fs::read_to_string(dir.join("compose.yaml")).unwrap();
    let example = std::fs::read_to_string(dir.join(".env.example")).unwrap();
    let listed: BTreeMap<&str, &str> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('='))
        .map(|l| l.split_once('=').unwrap())
        .collect();
    for (var, value) in &listed {
        assert!(
            value.is_empty(),
            ".env.example sets {var}: it must hold no secret"
        );
    }
    let mut read = BTreeSet::new();
    for piece in text.split("${").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        read.insert(name);
    }
    for env in compose["secrets"].as_object().unwrap().values() {
        if let Some(var) = env["environment"].as_str() {
            read.insert(var.to_string());
        }
    }
    assert!(read.len() >= 4, "{read:?}");
    for var in &read {
        assert!(
            listed.contains_key(var.as_str()),
            "{var} is not in .env.example"
        );
    }
    // The nodes' image is the repository's Dockerfile, and every node runs the shipped
    // command on the config the compose file mounts.
    for node in ["earshot-1", "earshot-2"] {
        let service = &services[node];
        assert_eq!(
            service["build"]["dockerfile"],
            "deploy/container/Dockerfile"
        );
        assert_eq!(
            service["hostname"], node,
            "the node id comes from the host name"
        );
        assert!(mounts(service).contains(&(
            "./earshot.toml".to_string(),
            "/etc/earshot/earshot.toml".to_string()
        )));
    }
}

/// Runs `deploy/compose/nats/make-certs.sh` into `out` for `names`.
fn make_certs(out: &Path, names: &str) {
    let (ok, text) = run(
        Command::new("sh")
            .arg(deploy("compose/nats/make-certs.sh"))
            .arg(out)
            .arg(names),
        "sh and openssl",
    );
    assert!(ok, "make-certs.sh:\n{text}");
    for file in [
        "server/ca.pem",
        "server/server.pem",
        "server/server-key.pem",
        "ca/ca.pem",
    ] {
        assert!(
            out.join(file).is_file(),
            "make-certs.sh made no {file}:\n{text}"
        );
    }
    assert!(!out.join("ca/server-key.pem").exists() && !out.join("server/ca-key.pem").exists());
}

/// A service's mounts laid out in `root` (a bind mount's source copied to its target under
/// `root`); named volumes come from `volumes` (name → folder), others are left out.
fn lay_out(service: &Value, root: &Path, volumes: &BTreeMap<&str, PathBuf>) {
    let dir = deploy("compose");
    for (source, target) in mounts(service) {
        let to = root.join(target.trim_start_matches('/'));
        let from = if is_bind(&source) {
            dir.join(&source)
        } else if let Some(folder) = volumes.get(source.as_str()) {
            folder.clone()
        } else {
            continue;
        };
        if from.is_dir() {
            support::copy_dir(&from, &to);
        } else {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap();
        }
    }
}

#[test]
fn the_compose_nats_servers_config_checks_with_the_certificates_made_for_it() {
    let compose = compose();
    let certs = tempfile::tempdir().unwrap();
    let init = &services(&compose)["nats-certs"];
    let command: Vec<&str> = init["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| str_of(c, "command"))
        .collect();
    let names = command.last().unwrap();
    for server in ["nats-1", "nats-2", "nats-3"] {
        assert!(
            names.split(',').any(|n| n == server),
            "the certificate lacks {server}"
        );
    }
    make_certs(certs.path(), names);
    // A second run keeps what the first made.
    let before = std::fs::read(certs.path().join("ca/ca.pem")).unwrap();
    make_certs(certs.path(), names);
    assert_eq!(
        before,
        std::fs::read(certs.path().join("ca/ca.pem")).unwrap()
    );

    let volumes = BTreeMap::from([
        ("nats-tls", certs.path().join("server")),
        ("nats-ca", certs.path().join("ca")),
    ]);
    for server in ["nats-1", "nats-2", "nats-3"] {
        let service = &services(&compose)[server];
        let root = tempfile::tempdir().unwrap();
        lay_out(service, root.path(), &volumes);
        let conf = root.path().join("etc/nats/nats.conf");
        // The server reads absolute paths: point them into the layout.
        let text = std::fs::read_to_string(&conf).unwrap().replace(
            "\"/etc/nats/",
            &format!("\"{}/etc/nats/", root.path().display()),
        );
        std::fs::write(&conf, text).unwrap();
        let args: Vec<&str> = service["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| str_of(c, "command"))
            .collect();
        assert_eq!(args[..2], ["--config", "/etc/nats/nats.conf"]);
        let (ok, out) = run(
            nats_server()
                .arg("-t")
                .arg("-c")
                .arg(&conf)
                .args(&args[2..])
                .env("EARSHOT_NATS_TOKEN", "test-token"),
            "nats-server",
        );
        assert!(
            ok && out.contains("is valid"),
            "{server}: nats-server -t:\n{out}"
        );
    }
}

/// The environment `earshot check` needs for a deploy config: every secret it names.
fn secrets_env(cmd: &mut Command) -> &mut Command {
    cmd.env("EARSHOT_ADMIN_TOKEN", "test-admin-token")
        .env("EARSHOT_NATS_TOKEN", "test-nats-token")
        .env("EARSHOT_WEBHOOK_SECRET", support::SECRET)
        .env("HOSTNAME", "earshot-test-0")
}

/// `earshot check` on `etc/earshot.toml`, as the node reads it: its `[cluster]` table too
/// (the servers' URLs, the token's variable, the CA file, the node's name from `HOSTNAME`).
fn check_config(etc: &Path, what: &str) {
    let config = etc.join("earshot.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("\n[cluster]\n"), "{what}: no [cluster] table");
    let (ok, out) = run(
        secrets_env(earshot().args(["check", "--config"]).arg(&config)),
        "earshot",
    );
    assert!(
        ok && out.contains("ok: 1 sources"),
        "{what}: earshot check:\n{out}"
    );
    // The check reads the table: without the CA it names there, the config is refused.
    let ca = etc.join("nats/ca.pem");
    let kept = std::fs::read(&ca).unwrap();
    std::fs::remove_file(&ca).unwrap();
    let (ok, out) = run(
        secrets_env(earshot().args(["check", "--config"]).arg(&config)),
        "earshot",
    );
    assert!(!ok && out.contains("cluster.ca"), "{what}: {out}");
    std::fs::write(&ca, kept).unwrap();
}

/// /etc/earshot of the compose set's node `node`: its mounts, the image's rules (the
/// Dockerfile copies rules/ there) and the CA the init service makes.
fn compose_node_etc(node: &str) -> tempfile::TempDir {
    let compose = compose();
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), "nats-1,nats-2,nats-3");
    let root = tempfile::tempdir().unwrap();
    let volumes = BTreeMap::from([("nats-ca", certs.path().join("ca"))]);
    lay_out(&services(&compose)[node], root.path(), &volumes);
    let dockerfile = std::fs::read_to_string(repo().join("deploy/container/Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY rules /etc/earshot/rules"));
    support::copy_dir(
        &repo().join("rules"),
        &root.path().join("etc/earshot/rules"),
    );
    let etc = tempfile::tempdir().unwrap();
    support::copy_dir(&root.path().join("etc/earshot"), etc.path());
    etc
}

#[test]
fn the_compose_nodes_config_checks_as_mounted() {
    for node in ["earshot-1", "earshot-2"] {
        let etc = compose_node_etc(node);
        assert!(etc.path().join("nats/ca.pem").is_file());
        check_config(etc.path(), node);
    }
}

#[test]
fn the_compose_prometheus_config_checks_as_mounted_and_scrapes_allowed_hosts() {
    let compose = compose();
    let service = &services(&compose)["prometheus"];
    let root = tempfile::tempdir().unwrap();
    lay_out(service, root.path(), &BTreeMap::new());
    // The admin token, as the compose secret puts it.
    for secret in service["secrets"].as_array().unwrap() {
        let target = root
            .path()
            .join(str_of(&secret["target"], "secret target").trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, "test-admin-token").unwrap();
    }
    let config = root.path().join("etc/prometheus/prometheus.yml");
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("promtool runs (scripts/test.sh installs it: Debian package `prometheus`)");
    assert!(
        out.status.success(),
        "promtool check config:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every node is scraped, under a name its config allows.
    let prometheus = yaml(&config);
    let targets: Vec<&str> = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| str_of(t, "target"))
        .collect();
    let earshot = std::fs::read_to_string(deploy("compose/earshot.toml")).unwrap();
    for node in ["earshot-1", "earshot-2"] {
        let target = format!("{node}:9464");
        assert!(targets.contains(&target.as_str()), "{targets:?}");
        assert!(
            earshot.contains(&format!("\"{node}\"")),
            "admin.allowed_hosts lacks {node}"
        );
    }
}

#[test]
fn the_compose_grafana_provisioning_finds_the_dashboards() {
    let compose = compose();
    let service = &services(&compose)["grafana"];
    let root = tempfile::tempdir().unwrap();
    lay_out(service, root.path(), &BTreeMap::new());
    let provider = yaml(
        &root
            .path()
            .join("etc/grafana/provisioning/dashboards/earshot.yaml"),
    );
    let folder = str_of(&provider["providers"][0]["options"]["path"], "path");
    let dashboards = root.path().join(folder.trim_start_matches('/'));
    for dashboard in ["overview.json", "crisis.json"] {
        assert!(dashboards.join(dashboard).is_file(), "{folder}/{dashboard}");
    }
    let sources = yaml(
        &root
            .path()
            .join("etc/grafana/provisioning/datasources/prometheus.yaml"),
    );
    assert_eq!(sources["datasources"][0]["type"], "prometheus");
    assert_eq!(sources["datasources"][0]["url"], "http://prometheus:9090");
    assert!(services(&compose).contains_key("prometheus"));
}

// ---------------------------------------------------------------------------------------
// The Kubernetes set

fn kustomization() -> Value {
    yaml(&deploy("kubernetes/kustomization.yaml"))
}

/// A generator's files: (key in the ConfigMap, file relative to deploy/kubernetes).
fn generator_files(generator: &Value) -> Vec<(String, String)> {
    generator["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let f = str_of(f, "file");
            match f.split_once('=') {
                Some((key, path)) => (key.to_string(), path.to_string()),
                None => (
                    Path::new(f)
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    f.to_string(),
                ),
            }
        })
        .collect()
}

/// The ConfigMaps the kustomization generates: name → [(key, file)].
fn generated_config_maps() -> BTreeMap<String, Vec<(String, String)>> {
    kustomization()["configMapGenerator"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (str_of(&g["name"], "name").to_string(), generator_files(g)))
        .collect()
}

/// The kustomization's resources, each a parsed manifest.
fn resources() -> Vec<(String, Value)> {
    kustomization()["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let file = str_of(r, "resource").to_string();
            let doc = yaml(&deploy("kubernetes").join(&file));
            (file, doc)
        })
        .collect()
}

fn resource(kind: &str) -> Value {
    let found: Vec<Value> = resources()
        .into_iter()
        .map(|(_, doc)| doc)
        .filter(|doc| doc["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found.into_iter().next().unwrap()
}

#[test]
fn the_kubernetes_manifests_validate_and_every_file_they_name_exists() {
    let dir = deploy("kubernetes");
    let resources: Vec<String> = resources().into_iter().map(|(file, _)| file).collect();
    assert!(resources.len() >= 4, "{resources:?}");
    for version in KUBERNETES_VERSIONS {
        let (ok, out) = run(
            kubernetes_validate()
                .args(["--strict", "--kubernetes-version", version])
                .args(&resources)
                .current_dir(&dir),
            "kubernetes-validate (python3 -m pip install kubernetes-validate)",
        );
        assert!(ok, "kubernetes-validate, Kubernetes {version}:\n{out}");
        assert_eq!(out.matches(" passed ").count(), resources.len(), "{out}");
    }
    // The check bites: a misspelt field is refused.
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.join("service.yaml")).unwrap();
    let broken = text.replacen("clusterIP: None", "clusterIp: None", 1);
    assert_ne!(broken, text);
    std::fs::write(tmp.path().join("service.yaml"), broken).unwrap();
    let (ok, out) = run(
        kubernetes_validate()
            .args(["--strict", "--kubernetes-version", KUBERNETES_VERSIONS[0]])
            .arg(tmp.path().join("service.yaml")),
        "kubernetes-validate",
    );
    assert!(!ok && out.contains("clusterIp"), "{out}");
    // Every file a ConfigMap is generated from is there.
    for (name, files) in generated_config_maps() {
        for (_, file) in files {
            assert!(dir.join(&file).is_file(), "{name}: no {file}");
        }
    }
}

#[test]
fn the_kubernetes_rules_are_the_example_rules() {
    let mut copies = 0;
    for (name, files) in generated_config_maps() {
        for (_, file) in files {
            if let Some(rule) = file.strip_prefix("rules/") {
                let ours = std::fs::read(deploy("kubernetes").join(&file)).unwrap();
                let theirs = std::fs::read(repo().join("rules").join(rule)).unwrap();
                assert!(ours == theirs, "{name}: {file} differs from rules/{rule}");
                copies += 1;
            }
        }
    }
    // Every cue list scoring.toml names is among them.
    let scoring = std::fs::read_to_string(repo().join("rules/scoring.toml")).unwrap();
    let cues = generated_config_maps()["earshot-cues"].len();
    assert_eq!(scoring.matches("\"cues/").count(), cues);
    assert_eq!(copies, 5 + cues);
}

/// The pod template's volumes and the earshot container.
fn pod() -> (Value, Value) {
    let set = resource("StatefulSet");
    let spec = set["spec"]["template"]["spec"].clone();
    let container = spec["containers"][0].clone();
    assert_eq!(container["name"], "earshot");
    (spec, container)
}

/// A ConfigMap as its volume shows it, in `to`: every key, or the `items` given. ConfigMaps
/// made outside the kustomization come from `external` (name → files to put there).
fn project_config_map(source: &Value, to: &Path, external: &BTreeMap<&str, Vec<(&str, PathBuf)>>) {
    let name = str_of(&source["name"], "configMap name");
    let files: Vec<(String, PathBuf)> = match generated_config_maps().get(name) {
        Some(files) => files
            .iter()
            .map(|(key, file)| (key.clone(), deploy("kubernetes").join(file)))
            .collect(),
        None => external
            .get(name)
            .unwrap_or_else(|| panic!("ConfigMap {name} is neither generated nor expected"))
            .iter()
            .map(|(key, file)| (key.to_string(), file.clone()))
            .collect(),
    };
    let by_key: BTreeMap<&str, &PathBuf> = files.iter().map(|(k, f)| (k.as_str(), f)).collect();
    let placed: Vec<(String, String)> = match source["items"].as_array() {
        Some(items) => items
            .iter()
            .map(|i| {
                (
                    str_of(&i["key"], "item key").to_string(),
                    str_of(&i["path"], "item path").to_string(),
                )
            })
            .collect(),
        None => files.iter().map(|(k, _)| (k.clone(), k.clone())).collect(),
    };
    for (key, path) in placed {
        let file = by_key
            .get(key.as_str())
            .unwrap_or_else(|| panic!("ConfigMap {name} has no key {key}"));
        let target = to.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(file, target).unwrap();
    }
}

/// /etc/earshot of a pod of the StatefulSet, from its volume mounts: generated ConfigMaps
/// from their files, the NATS CA from a certificate made by make-certs.sh.
fn kubernetes_pod_etc() -> tempfile::TempDir {
    let (spec, container) = pod();
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), "*.nats-headless");
    let external = BTreeMap::from([("nats-ca", vec![("ca.pem", certs.path().join("ca/ca.pem"))])]);
    let volumes: BTreeMap<&str, &Value> = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (str_of(&v["name"], "volume name"), v))
        .collect();
    let root = tempfile::tempdir().unwrap();
    for mount in container["volumeMounts"].as_array().unwrap() {
        let path = str_of(&mount["mountPath"], "mountPath");
        let Some(inside) = path.strip_prefix("/etc/earshot") else {
            continue;
        };
        assert_eq!(mount["readOnly"], true, "{path} is mounted read-only");
        let volume = volumes[str_of(&mount["name"], "mount name")];
        let scratch = tempfile::tempdir().unwrap();
        if let Some(source) = volume.get("configMap") {
            project_config_map(source, scratch.path(), &external);
        } else if let Some(projected) = volume.get("projected") {
            for source in projected["sources"].as_array().unwrap() {
                project_config_map(&source["configMap"], scratch.path(), &external);
            }
        } else {
            panic!("{path}: a volume of a kind this test does not lay out: {volume}");
        }
        let target = root.path().join(inside.trim_start_matches('/'));
        match mount["subPath"].as_str() {
            Some(sub) => {
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::copy(scratch.path().join(sub), &target).unwrap();
            }
            None => support::copy_dir(scratch.path(), &target),
        }
    }
    root
}

#[test]
fn the_kubernetes_config_checks_as_mounted() {
    let etc = kubernetes_pod_etc();
    for file in [
        "earshot.toml",
        "routing/routing.toml",
        "rules/scoring.toml",
        "rules/cues/crisis.toml",
        "nats/ca.pem",
    ] {
        assert!(
            etc.path().join(file).is_file(),
            "/etc/earshot/{file} is not mounted"
        );
    }
    check_config(etc.path(), "deploy/kubernetes/earshot.toml");
}

#[test]
fn the_statefulset_runs_unprivileged_probes_without_a_token_and_names_nodes_after_pods() {
    let set = resource("StatefulSet");
    assert_eq!(set["spec"]["replicas"], 3);
    let (spec, container) = pod();
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        spec["securityContext"]["runAsUser"], 65532,
        "the image's user"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| str_of(a, "arg"))
        .collect();
    assert_eq!(args, ["run", "--config", "/etc/earshot/earshot.toml"]);
    // /healthz keeps it alive, /readyz puts it in service: both through `earshot probe` on
    // the same config.
    let probe = |name: &str| -> Vec<String> {
        container[name]["exec"]["command"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: an exec probe"))
            .iter()
            .map(|a| str_of(a, "probe").to_string())
            .collect()
    };
    let alive = [
        "/usr/local/bin/earshot",
        "probe",
        "--config",
        "/etc/earshot/earshot.toml",
    ];
    assert_eq!(probe("livenessProbe"), alive);
    assert_eq!(probe("readinessProbe"), [&alive[..], &["--ready"]].concat());
    // The node id is the pod's name; every secret comes from a Secret.
    let env = container["env"].as_array().unwrap();
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(
        var("HOSTNAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    for secret in [
        "EARSHOT_ADMIN_TOKEN",
        "EARSHOT_WEBHOOK_SECRET",
        "EARSHOT_NATS_TOKEN",
    ] {
        assert!(
            var(secret).get("value").is_none(),
            "{secret} is written in the manifest"
        );
        assert!(
            var(secret)["valueFrom"]["secretKeyRef"]["name"].is_string(),
            "{secret}"
        );
    }
    let config = std::fs::read_to_string(deploy("kubernetes/earshot.toml")).unwrap();
    for secret in [
        "EARSHOT_ADMIN_TOKEN",
        "EARSHOT_WEBHOOK_SECRET",
        "EARSHOT_NATS_TOKEN",
    ] {
        let named = config.contains(secret)
            || std::fs::read_to_string(deploy("kubernetes/routing.toml"))
                .unwrap()
                .contains(secret);
        assert!(named, "no config names {secret}");
    }
    let pdb = resource("PodDisruptionBudget");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        set["spec"]["selector"]["matchLabels"]
    );
    let service = resource("Service");
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    assert_eq!(
        service["spec"]["clusterIP"], "None",
        "headless: a DNS name per pod"
    );
}

#[test]
fn prometheus_scrapes_each_pod_by_a_name_its_config_allows() {
    let scrape = yaml(&deploy("kubernetes/prometheus-scrape.yaml"));
    let job = &scrape["scrape_configs"][0];
    assert_eq!(job["authorization"]["type"], "Bearer");
    let namespace = str_of(&kustomization()["namespace"], "namespace").to_string();
    assert_eq!(
        job["kubernetes_sd_configs"][0]["namespaces"]["names"],
        serde_json::json!([namespace])
    );
    let address = job["relabel_configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target_label"] == "__address__")
        .expect("a relabeling of __address__");
    let service = resource("Service");
    let service = str_of(&service["metadata"]["name"], "service name");
    assert_eq!(
        address["replacement"],
        format!("${{1}}.{service}.${{2}}.svc:${{3}}"),
        "pod.service.namespace.svc:port"
    );
    let set = resource("StatefulSet");
    let name = str_of(&set["metadata"]["name"], "name");
    let config = std::fs::read_to_string(deploy("kubernetes/earshot.toml")).unwrap();
    for n in 0..set["spec"]["replicas"].as_u64().unwrap() {
        let host = format!("\"{name}-{n}.{service}.{namespace}.svc\"");
        assert!(config.contains(&host), "admin.allowed_hosts lacks {host}");
    }
}

#[test]
fn the_nats_values_name_only_keys_of_the_chart() {
    let chart = yaml(&deploy("schemas/nats-chart-2.14.2-values.yaml"));
    let ours = yaml(&deploy("kubernetes/nats-values.yaml"));
    /// Keys of `ours` missing from `chart`. Below a key whose default is an empty table (the
    /// chart's `merge`, `env`, `resources`, `topologySpreadConstraints`) anything goes: the
    /// chart passes it on as it is.
    fn unknown(ours: &Value, chart: &Value, path: &str, out: &mut Vec<String>) {
        for (key, value) in ours.as_object().unwrap() {
            let here = format!("{path}{key}");
            match chart.get(key) {
                None => out.push(here),
                Some(Value::Object(table)) if !table.is_empty() => match value {
                    Value::Object(_) => unknown(value, &chart[key], &format!("{here}."), out),
                    _ => out.push(format!("{here} (a table in the chart)")),
                },
                Some(_) => {}
            }
        }
    }
    let mut missing = Vec::new();
    unknown(&ours, &chart, "", &mut missing);
    assert!(missing.is_empty(), "not in the chart's values: {missing:?}");
    // What the cluster needs: three servers, JetStream on files, TLS, the token.
    assert_eq!(ours["config"]["cluster"]["replicas"], 3);
    assert_eq!(ours["config"]["jetstream"]["enabled"], true);
    assert_eq!(ours["config"]["jetstream"]["fileStore"]["enabled"], true);
    assert_eq!(ours["config"]["nats"]["tls"]["enabled"], true);
    assert_eq!(ours["config"]["cluster"]["tls"]["enabled"], true);
    let config = std::fs::read_to_string(deploy("kubernetes/earshot.toml")).unwrap();
    assert!(config.contains("nats-0.nats-headless:4222"));
    // The check bites.
    let mut missing = Vec::new();
    unknown(
        &serde_json::json!({"config": {"jetstream": {"filestore": {}}}}),
        &chart,
        "",
        &mut missing,
    );
    assert_eq!(missing, ["config.jetstream.filestore"]);
}

// ---------------------------------------------------------------------------------------
// `earshot receive`

#[test]
fn receive_verifies_what_earshot_delivers_and_counts_it() {
    // Every mention on its own: nothing rolled up into digests.
    let setup = Setup::new("[queue.noise]\nreposts = false\nstorm = false");
    let log = setup.dir.join("receive.out");
    let mut receiver = Running(Some(
        earshot()
            .args(["receive", "--listen"])
            .arg(format!("127.0.0.1:{}", setup.hook_port))
            .args(["--secret-env", support::SECRET_ENV])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let output = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !output().contains("listening on") {
        assert!(
            Instant::now() < deadline,
            "earshot receive never listened: {}",
            output()
        );
        assert!(
            receiver.0.as_mut().unwrap().try_wait().unwrap().is_none(),
            "earshot receive exited: {}",
            output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A request without a signature is refused and counted.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", setup.hook_port)).unwrap();
    stream
        .write_all(b"POST /crm HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let mut child = Running(Some(setup.start(0)));
    let (frames, expected) = posts(7, 300);
    assert!(expected.len() >= 20, "{}", expected.len());
    append(&setup.input, &frames);
    let line = format!("mentions={} ", expected.len());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !output().lines().any(|l| l.starts_with(&line)) {
        assert!(
            Instant::now() < deadline,
            "not all {} mentions arrived:\n{}",
            expected.len(),
            output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    terminate(child.0.take().unwrap());
    terminate(receiver.0.take().unwrap());
    let out = output();
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("earshot receive: stopped; ")
            && last.contains(&line)
            && last.contains(" duplicates=0 rejected=1"),
        "{out}"
    );
}

/// A process killed when the test fails before it stopped it.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
