//! `silk dev` as a child process with its Prometheus endpoint on a free port, for the tests
//! that scrape it, and a plain HTTP/1.1 GET to read that endpoint (and Prometheus' API).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `GET path` from `addr` over a fresh connection: the response head and the body.
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.to_owned(), body.to_owned())
}

/// `silk dev` as a child, killed on drop.
pub struct Dev {
    child: Child,
    /// The storage endpoint.
    pub address: String,
    /// The metrics endpoint, `127.0.0.1:PORT`.
    pub metrics: String,
}

impl Dev {
    pub fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_silk"))
            .args([
                "dev",
                "--port-base",
                "0",
                "--slots",
                "2",
                "--trust",
                "fixtures",
            ])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .arg("--packages")
            .arg(super::packages_dir())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut address, mut metrics, mut banner) = (None, None, String::new());
        for line in stdout.lines() {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("storage") {
                address = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("metrics") {
                metrics = Some(rest.trim().to_owned());
            }
            if line.starts_with("Stop with Ctrl-C") {
                break;
            }
        }
        let address = address.unwrap_or_else(|| panic!("no storage address:\n{banner}"));
        let metrics = metrics.unwrap_or_else(|| panic!("no metrics address:\n{banner}"));
        let metrics = metrics
            .strip_prefix("http://")
            .and_then(|m| m.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("metrics line is not an URL:\n{banner}"))
            .to_owned();
        Self {
            child,
            address,
            metrics,
        }
    }

    pub fn job(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_silk"))
            .arg("job")
            .args(args)
            .args(["--address", &self.address])
            .env_remove("SILK_GROUP")
            .env_remove("SILK_GROUP_SECRET")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        eprintln!(
            "silk job {args:?} -> {:?} {stdout} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), stdout)
    }

    /// `GET path` over a fresh connection: the status line and the body.
    pub fn get(&self, path: &str) -> (String, String) {
        let (head, body) = http_get(&self.metrics, path);
        let status = head.lines().next().unwrap_or_default().to_owned();
        assert!(
            path != "/metrics" || head.contains("text/plain; version=0.0.4"),
            "{head}"
        );
        (status, body.to_owned())
    }

    pub fn scrape(&self) -> Scrape {
        let (status, body) = self.get("/metrics");
        assert!(status.contains(" 200 "), "{status}");
        Scrape(body)
    }

    /// Scrapes until `ok` holds (10 s at most).
    pub fn scrape_until(&self, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.scrape();
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "never saw {what}:\n{}", s.0);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One exposition.
pub struct Scrape(pub String);

impl Scrape {
    /// The value of the series written exactly as `series` (name and labels), if present.
    pub fn get(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?.strip_prefix(' ')?;
            rest.trim().parse().ok()
        })
    }

    pub fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.0))
    }
}
