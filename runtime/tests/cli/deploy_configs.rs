//! The deployment files in `deploy/` against the real config readers: every
//! `deploy/config/*.toml` is the `--config` of a service in `deploy/compose.yaml`, mounted
//! read-only where the service reads it, and parses with the reader of `silk storage`,
//! `silk scheduler` or `silk em` (which refuse unknown keys at every level); the services point at
//! each other by their compose names; the native EM trusts a package and the wasm EM none; the
//! stop grace outlasts the EM drain; `.env.example` lists every variable compose uses.
//!
//! `compose.yaml` is read as text, without a YAML parser, so it relies on that file's plain layout:
//! services indented two spaces under `services:`, one `command: [...]` JSON array per service,
//! volumes as `- SOURCE:TARGET[:ro]` items, `${VAR:-default}` for every variable.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use silk_runtime::cli::config_file::ConfigError;
use silk_runtime::cli::{em, scheduler, storage};
use silk_runtime::em::EmConfig;
use silk_runtime::scheduler::SchedulerConfig;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A config file parsed by the reader of the service that runs it.
#[derive(Debug)]
enum Parsed {
    Storage(storage::Resolved),
    Scheduler(SchedulerConfig),
    Em(Box<EmConfig>),
}

/// Reads `path` the way `silk <service> --config path` does, with no flags and no environment.
fn parse(service: &str, path: &Path) -> Result<Parsed, ConfigError> {
    let config = Some(path.to_owned());
    match service {
        "storage" => {
            let args = storage::StorageArgs {
                config,
                db: None,
                listen: None,
                metrics_listen: None,
            };
            storage::resolve(&args, |_| None).map(Parsed::Storage)
        }
        "scheduler" => {
            let args = scheduler::SchedulerArgs {
                config,
                listen: None,
                storage_url: None,
                metrics_listen: None,
            };
            scheduler::resolve(&args).map(Parsed::Scheduler)
        }
        "em" => {
            let args = em::EmArgs {
                config,
                storage_url: None,
                scheduler_url: None,
                slots: None,
                metrics_listen: None,
            };
            em::resolve(&args).map(|c| Parsed::Em(Box::new(c)))
        }
        other => panic!("compose runs `silk {other}`, which takes no config file here"),
    }
}

/// Replaces every `${VAR:-default}` with its default; a variable without one is a defect.
fn expand(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .unwrap_or_else(|| panic!("unclosed ${{ in {text:?}"))
            + start;
        let inner = &rest[start + 2..end];
        let (_, default) = inner
            .split_once(":-")
            .unwrap_or_else(|| panic!("${{{inner}}} has no default (use ${{VAR:-default}})"));
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Names of the `${VAR...}` references in `text`.
fn variables(text: &str) -> BTreeSet<String> {
    text.split("${")
        .skip(1)
        .map(|s| {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// One compose service: its lines (comments dropped).
#[derive(Debug)]
struct Service {
    lines: Vec<String>,
}

impl Service {
    /// The `command:` array.
    fn command(&self) -> Option<Vec<String>> {
        self.value("command")
            .map(|v| serde_json::from_str(&v).unwrap_or_else(|e| panic!("command {v:?}: {e}")))
    }

    /// The raw value of the first `key: value` line.
    fn value(&self, key: &str) -> Option<String> {
        self.lines.iter().find_map(|l| {
            l.trim()
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        })
    }

    /// Bind and volume mounts, expanded: (source, target, read-only).
    fn mounts(&self) -> Vec<(String, String, bool)> {
        self.lines
            .iter()
            .filter_map(|l| l.trim().strip_prefix("- "))
            .map(expand)
            .filter_map(|item| {
                let parts: Vec<&str> = item.split(':').collect();
                match parts.as_slice() {
                    [src, dst] if dst.starts_with('/') => {
                        Some((src.to_string(), dst.to_string(), false))
                    }
                    [src, dst, mode] if dst.starts_with('/') => {
                        Some((src.to_string(), dst.to_string(), *mode == "ro"))
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// `stop_grace_period`, in whole seconds or minutes.
    fn stop_grace(&self) -> Option<Duration> {
        let v = self.value("stop_grace_period")?;
        let (n, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
        let n: u64 = n
            .parse()
            .unwrap_or_else(|_| panic!("stop_grace_period {v:?}"));
        match unit {
            "s" => Some(Duration::from_secs(n)),
            "m" => Some(Duration::from_secs(n * 60)),
            _ => panic!("stop_grace_period {v:?}: use a whole number of s or m"),
        }
    }
}

/// compose.yaml's services by name.
fn services(compose: &str) -> BTreeMap<String, Service> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    let mut current: Option<String> = None;
    for line in compose.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if !line.starts_with(' ') {
            inside = line == "services:";
            current = None;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            current = Some(name.to_owned());
            out.insert(name.to_owned(), Service { lines: Vec::new() });
        } else if let Some(name) = &current {
            out.get_mut(name).unwrap().lines.push(line.to_owned());
        }
    }
    out
}

/// Everything the checks look at.
#[derive(Debug)]
struct Deployment {
    compose: String,
    services: BTreeMap<String, Service>,
    /// Config files compose hands to `silk`, by file name, with the service kind reading them.
    used: BTreeMap<String, &'static str>,
    storage: storage::Resolved,
    scheduler: SchedulerConfig,
    /// EM configs by compose service name.
    ems: BTreeMap<String, EmConfig>,
}

/// Loads compose.yaml, checks that each `silk <service> --config FILE` reads a read-only mount of
/// an existing `./config/*.toml`, and parses each with its service's reader.
fn deployment() -> Deployment {
    let dir = deploy_dir();
    let compose = read(&dir.join("compose.yaml"));
    let services = services(&compose);
    let mut used = BTreeMap::new();
    let (mut storage, mut scheduler, mut ems) = (None, None, BTreeMap::new());
    for (name, service) in &services {
        let Some(command) = service.command() else {
            continue;
        };
        if command.first().map(String::as_str) != Some("silk") {
            continue;
        }
        let kind: &'static str = match command.get(1).map(String::as_str) {
            Some("storage") => "storage",
            Some("scheduler") => "scheduler",
            Some("em") => "em",
            other => panic!("{name}: unexpected silk command {other:?}"),
        };
        assert_eq!(
            command.get(2).map(String::as_str),
            Some("--config"),
            "{name}: {command:?}"
        );
        let target = &command[3];
        let mounts = service.mounts();
        let (source, _, read_only) = mounts
            .iter()
            .find(|(_, dst, _)| dst == target)
            .unwrap_or_else(|| panic!("{name}: passes --config {target} but mounts no file there"));
        assert!(read_only, "{name}: mount {target} read-only (:ro)");
        let file = source
            .strip_prefix("./config/")
            .unwrap_or_else(|| panic!("{name}: {target} comes from {source}, not ./config/"));
        let path = dir.join("config").join(file);
        assert!(path.is_file(), "{name}: {} does not exist", path.display());
        used.insert(file.to_owned(), kind);
        match parse(kind, &path).unwrap_or_else(|e| panic!("{name}: {e}")) {
            Parsed::Storage(s) => assert!(storage.replace(s).is_none(), "two storage services"),
            Parsed::Scheduler(s) => {
                assert!(scheduler.replace(s).is_none(), "two scheduler services")
            }
            Parsed::Em(e) => {
                ems.insert(name.clone(), *e);
            }
        }
    }
    Deployment {
        compose,
        services,
        used,
        storage: storage.expect("no `silk storage` service in compose.yaml"),
        scheduler: scheduler.expect("no `silk scheduler` service in compose.yaml"),
        ems,
    }
}

fn port(addr: &str) -> &str {
    addr.rsplit_once(':')
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("{addr:?} has no port"))
}

#[test]
fn every_config_file_is_the_config_of_a_compose_service() {
    let d = deployment();
    let on_disk: BTreeSet<String> = std::fs::read_dir(deploy_dir().join("config"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    let used: BTreeSet<String> = d.used.keys().cloned().collect();
    assert_eq!(
        on_disk, used,
        "deploy/config/*.toml vs the files compose passes to --config"
    );
    // Any other mention of ./config/ names an existing file too.
    for mention in d.compose.split("./config/").skip(1) {
        let file: String = mention
            .chars()
            .take_while(|c| !matches!(c, ':' | '"' | ' ' | '\n'))
            .collect();
        assert!(
            on_disk.contains(&file),
            "compose.yaml mentions ./config/{file}"
        );
    }
    assert_eq!(
        d.ems.len(),
        2,
        "a native and a wasm-only EM: {:?}",
        d.ems.keys()
    );
}

#[test]
fn storage_takes_its_database_url_from_the_environment() {
    let d = deployment();
    // No `db` key in the mounted file: the password is not written in a config file.
    assert_eq!(
        d.storage.db,
        storage::DEFAULT_DB,
        "storage.toml must not set `db`"
    );
    let service = &d.services["storage"];
    let raw = service
        .value("SILK_STORAGE_DB")
        .expect("storage gets SILK_STORAGE_DB from compose");
    let url = expand(&raw);
    let rest = url
        .strip_prefix("mysql://")
        .unwrap_or_else(|| panic!("{url}"));
    let (credentials, location) = rest.split_once('@').unwrap();
    let (user, password) = credentials.split_once(':').unwrap();
    let (host_port, database) = location.split_once('/').unwrap();
    assert_eq!(host_port, "mariadb:3306");
    assert!(d.services.contains_key("mariadb"));
    // The same variables create the database and its user.
    let mariadb = &d.services["mariadb"];
    for (key, value) in [
        ("MARIADB_USER", user),
        ("MARIADB_PASSWORD", password),
        ("MARIADB_DATABASE", database),
    ] {
        assert_eq!(
            mariadb.value(key).map(|v| expand(&v)).as_deref(),
            Some(value),
            "{key}"
        );
    }
    // And the reader takes it (the flag and SILK_STORAGE_DB land in the same field).
    let args = storage::StorageArgs {
        config: Some(deploy_dir().join("config/storage.toml")),
        db: Some(url.clone()),
        listen: None,
        metrics_listen: None,
    };
    assert_eq!(storage::resolve(&args, |_| None).unwrap().db, url);
    // Storage listens on all interfaces, on the container port compose publishes.
    assert!(
        d.storage.listen.starts_with("0.0.0.0:"),
        "{}",
        d.storage.listen
    );
    let published = service.lines.iter().map(|l| expand(l.trim())).any(|l| {
        l.strip_prefix("- ")
            .is_some_and(|p| p.ends_with(&format!(":{}", port(&d.storage.listen))))
    });
    assert!(published, "compose publishes storage's listen port");
}

#[test]
fn services_reach_each_other_by_compose_name() {
    let d = deployment();
    let storage_url = format!("https://storage:{}", port(&d.storage.listen));
    let scheduler_url = format!("https://scheduler:{}", port(&d.scheduler.listen));
    assert!(d.scheduler.listen.starts_with("0.0.0.0:"));
    assert_eq!(d.scheduler.storage_url, storage_url);
    assert_eq!(d.scheduler.advertise_host.as_deref(), Some("scheduler"));
    for (name, em) in &d.ems {
        assert_eq!(em.storage_url, storage_url, "{name}");
        assert_eq!(em.scheduler_url, scheduler_url, "{name}");
    }
    for name in ["storage", "scheduler"] {
        assert!(d.services.contains_key(name), "no compose service {name}");
    }
}

/// Every service checks credentials and speaks TLS, reading token, key and certificate files
/// from the read-only mount of `deploy/make-certs`'s output, under the names the script makes.
#[test]
fn every_service_has_tokens_and_tls_from_the_secrets_mount() {
    let d = deployment();
    let script = read(&deploy_dir().join("make-certs"));
    let secrets = Path::new("/etc/silk/secrets");
    let check = |service: &str, path: &Path| {
        assert!(
            path.starts_with(secrets),
            "{service}: {} is outside {}",
            path.display(),
            secrets.display()
        );
        let name = path.file_name().unwrap().to_str().unwrap();
        let stem = name.trim_end_matches(".pem").trim_end_matches(".key");
        assert!(
            script.contains(stem),
            "{service}: make-certs makes no {name}"
        );
        let mounted = d.services[service]
            .mounts()
            .into_iter()
            .any(|(src, dst, ro)| ro && Path::new(&dst) == secrets && src.ends_with("secrets"));
        assert!(
            mounted,
            "{service}: mount the secrets read-only at {}",
            secrets.display()
        );
    };
    let auth = d.storage.auth.as_ref().expect("storage [auth]");
    for path in [
        &auth.cluster_token_file,
        &auth.admin_token_file,
        &auth.group_token_key_file,
    ] {
        check("storage", path);
    }
    let tls = d.storage.tls.as_ref().expect("storage [tls]");
    check("storage", &tls.cert_file);
    check("storage", &tls.key_file);
    let auth = d.scheduler.auth.as_ref().expect("scheduler [auth]");
    check("scheduler", &auth.cluster_token_file);
    let tls = d.scheduler.tls.as_ref().expect("scheduler [tls]");
    check("scheduler", &tls.cert_file);
    check("scheduler", &tls.key_file);
    let ca = d
        .scheduler
        .client_tls
        .as_ref()
        .and_then(|t| t.ca_file.clone());
    check("scheduler", &ca.expect("scheduler [client_tls] ca_file"));
    for (name, em) in &d.ems {
        check(
            name,
            &em.auth.as_ref().expect("em [auth]").cluster_token_file,
        );
        let ca = em.client_tls.as_ref().and_then(|t| t.ca_file.clone());
        check(name, &ca.expect("em [client_tls] ca_file"));
    }
}

#[test]
fn the_native_em_trusts_a_package_and_the_wasm_em_none() {
    let d = deployment();
    let native = &d.ems["em-native"];
    assert!(
        native.native_packages.iter().any(|p| p == "complex"),
        "{:?}",
        native.native_packages
    );
    assert_eq!(
        native.executor_bin.as_deref(),
        Some(Path::new("/usr/local/bin/silk-executor-native"))
    );
    let dockerfile = read(&deploy_dir().join("Dockerfile"));
    assert!(
        dockerfile.contains("--bin silk-executor-native")
            && dockerfile.contains("/out/silk-executor-native /usr/local/bin/"),
        "the image builds silk-executor-native and installs it in /usr/local/bin"
    );
    let wasm = &d.ems["em-wasm"];
    assert!(
        wasm.native_packages.is_empty(),
        "{:?}",
        wasm.native_packages
    );
    assert!(wasm.executor_bin.is_none());
    for (name, em) in &d.ems {
        // Packages come from a read-only mount at package_dir.
        let mounted = d.services[name]
            .mounts()
            .into_iter()
            .any(|(_, dst, ro)| ro && Path::new(&dst) == em.package_dir);
        assert!(
            mounted,
            "{name}: mount {} read-only",
            em.package_dir.display()
        );
        // Limits the wasm host accepts.
        for (package, policy) in std::iter::once(("(default)", &em.wasm_default))
            .chain(em.wasm_packages.iter().map(|(k, v)| (k.as_str(), v)))
        {
            assert!(
                policy.max_memory_bytes <= em.wasm_host.max_memory_bytes,
                "{name}: {package} asks for more memory than wasm_host.max_memory_bytes"
            );
            assert!(
                policy.fuel.is_none() || em.wasm_host.fuel_metering,
                "{name}: {package} sets fuel without wasm_host.fuel_metering"
            );
            assert!(policy.timeout_ms > 0, "{name}: {package}");
        }
    }
    assert!(wasm.wasm_default.max_memory_bytes < native.wasm_default.max_memory_bytes);
    assert!(wasm.wasm_packages["fixtures"].fuel.is_some());
}

#[test]
fn stop_grace_outlasts_the_em_drain() {
    let d = deployment();
    // Drain: running tasks get drain_grace_ms, outcome reports up to drain_grace_ms more, then
    // the scheduler's Shutdown call up to 10 s (em/run.rs).
    for (name, em) in &d.ems {
        let grace = d.services[name]
            .stop_grace()
            .unwrap_or_else(|| panic!("{name}: no stop_grace_period (compose's default is 10 s)"));
        let drain = Duration::from_millis(2 * em.drain_grace_ms) + Duration::from_secs(10);
        assert!(
            grace > drain,
            "{name}: stop_grace_period {grace:?} <= {drain:?}"
        );
    }
}

#[test]
fn env_example_lists_every_compose_variable() {
    let d = deployment();
    let example = read(&deploy_dir().join(".env.example"));
    let listed: BTreeSet<String> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .collect();
    assert_eq!(
        variables(&d.compose),
        listed,
        "compose.yaml variables vs .env.example"
    );
}

#[test]
fn a_misspelt_key_anywhere_in_a_config_is_rejected() {
    let d = deployment();
    let tmp = tempfile::tempdir().unwrap();
    for (file, kind) in &d.used {
        let text = read(&deploy_dir().join("config").join(file));
        let mut checked = 0;
        // Misspell each key in turn (at the top level and inside every table).
        for (i, line) in text.lines().enumerate() {
            let Some((key, _)) = line.split_once('=') else {
                continue;
            };
            if line.trim_start().starts_with('#') {
                continue;
            }
            let key = key.trim();
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines[i] = line.replacen(key, &format!("{key}x"), 1);
            let path = tmp.path().join(file);
            std::fs::write(&path, lines.join("\n")).unwrap();
            let Err(e) = parse(kind, &path) else {
                panic!("{file}: `{key}x` was accepted");
            };
            assert!(
                e.to_string().contains(&format!("unknown field `{key}x`")),
                "{file}: {e}"
            );
            checked += 1;
        }
        assert!(checked >= 3, "{file}: only {checked} keys");
    }
}
