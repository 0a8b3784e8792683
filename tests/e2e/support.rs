//! Test harness: builds the components once, starts the real `copycar`
//! binary on a free loopback port, and runs the real servers some tests need
//! (an upstream HTTP server, redis-server).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Path of a component's Wasm file, building all test components on first use.
pub fn wasm(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let root = workspace_root();
    BUILT.get_or_init(|| {
        let status = Command::new("sh")
            .arg(root.join("components/build.sh"))
            .args([
                "health", "hello", "probe", "auth", "predict", "events", "accounts", "content",
                "sql",
            ])
            .current_dir(&root)
            .status()
            .expect("failed to run components/build.sh");
        assert!(status.success(), "components/build.sh failed: {status}");
    });
    let path = root.join("components/wasm").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// A running `copycar up`, stopped when dropped.
pub struct Host {
    child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<String>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// Options for starting a host.
#[derive(Default, Clone)]
pub struct HostOptions {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub runtime_config: Option<String>,
    /// Reuse this data directory instead of a fresh one.
    pub data_dir: Option<PathBuf>,
}

impl Host {
    pub fn start(manifest: &str) -> Host {
        Host::start_with(manifest, HostOptions::default())
    }

    pub fn start_with(manifest: &str, options: HostOptions) -> Host {
        match Host::try_start(manifest, options) {
            Ok(host) => host,
            Err(logs) => panic!("copycar up failed to start:\n{logs}"),
        }
    }

    /// Starts the host; on failure returns everything it wrote to stderr.
    pub fn try_start(manifest: &str, options: HostOptions) -> Result<Host, String> {
        let dir = tempfile::tempdir().unwrap();
        let manifest_path = dir.path().join("spin.toml");
        std::fs::write(&manifest_path, manifest).unwrap();
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));

        let mut command = Command::new(env!("CARGO_BIN_EXE_copycar"));
        command
            .arg("up")
            .arg("--from")
            .arg(&manifest_path)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&options.args)
            .env("RUST_LOG", "info,copycar_runtime=debug")
            .envs(options.env.iter().cloned())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(config) = &options.runtime_config {
            let path = dir.path().join("runtime-config.toml");
            std::fs::write(&path, config).unwrap();
            command.arg("--runtime-config-file").arg(path);
        }
        let mut child = command.spawn().expect("failed to start copycar");

        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });

        // The first stdout line is "Serving http://ADDR".
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                return Err(logs.lock().unwrap().clone());
            }
        };
        let addr = line
            .strip_prefix("Serving http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .parse()
            .unwrap();
        Ok(Host {
            child,
            addr,
            logs,
            stderr_reader: Some(stderr_reader),
            _dir: dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits up to five seconds for `needle` to appear in the logs, which
    /// a reader thread collects a little after the host writes them.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if logs.contains(needle) || Instant::now() > deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the host with SIGTERM, waits for it to exit and returns
    /// everything it logged.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                // The reader thread ends at end of file, after the last line.
                if let Some(reader) = self.stderr_reader.take() {
                    let _ = reader.join();
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.logs()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `copycar up` expecting it to fail at start-up; returns stderr.
pub fn start_failure(manifest: &str, options: HostOptions) -> String {
    match Host::try_start(manifest, options) {
        Ok(host) => panic!("copycar up started on {} but should have failed", host.addr),
        Err(logs) => logs,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}

/// The signing key the tests pass to the shipped app.
pub const TEST_SIGNING_KEY: &str = "test-signing-key-0123456789abcdef-0123456789";

/// Returns the real spin.toml at the top of the repository, with component
/// paths made absolute so it loads from a temporary directory.
pub fn app_manifest() -> String {
    wasm("health");
    let root = workspace_root();
    std::fs::read_to_string(root.join("spin.toml"))
        .unwrap()
        .replace(
            "source = \"components/",
            &format!("source = \"{}/components/", root.display()),
        )
}

/// Options that give the shipped app its required signing key and its
/// shipped pipelines (the manifest is copied elsewhere, so the folder
/// beside it would be empty).
pub fn app_options() -> HostOptions {
    HostOptions {
        args: vec![
            "--pipelines-dir".into(),
            workspace_root().join("pipelines").display().to_string(),
        ],
        env: vec![(
            "SPIN_VARIABLE_TOKEN_SIGNING_KEY".into(),
            TEST_SIGNING_KEY.into(),
        )],
        ..Default::default()
    }
}

/// Returns a manifest for the probe component with extra component settings.
pub fn probe_manifest(component_settings: &str, extra: &str) -> String {
    format!(
        r#"spin_manifest_version = 2
[application]
name = "probe-app"
version = "9.9.9"

[[trigger.http]]
route = "/probe/..."
component = "probe"

[component.probe]
source = "{}"
{component_settings}

{extra}
"#,
        wasm("probe").display()
    )
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that returns a fixed body for `/ok`
/// and a 302 for `/redirect?to=URL`. It runs until dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (hits2, stop2) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let hits = hits2.clone();
                        std::thread::spawn(move || serve_one(stream, hits));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Upstream { addr, hits, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn serve_one(mut stream: TcpStream, hits: Arc<Mutex<Vec<String>>>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    hits.lock().unwrap().push(target.clone());
    let (status, extra, body) = if target == "/ok" {
        ("200 OK", String::new(), "upstream ok".to_string())
    } else if let Some(to) = target.strip_prefix("/redirect?to=") {
        ("302 Found", format!("location: {to}\r\n"), String::new())
    } else {
        ("404 Not Found", String::new(), "no such path".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// A real redis-server on a free loopback port, without persistence,
/// killed when dropped.
pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_on(free_port())
    }

    /// Stops this server and starts a fresh one (empty) on the same port.
    pub fn restart(mut self) -> RedisServer {
        let port = self.port;
        let _ = self.child.kill();
        let _ = self.child.wait();
        RedisServer::start_on(port)
    }

    fn start_on(port: u16) -> RedisServer {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found; install it (tests/run.sh does) to run the Redis backend tests");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, port }
    }

    /// Runs one command with redis-cli and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli not found");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One canned response of a [`SiteServer`].
#[derive(Clone)]
pub struct Page {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Page {
    pub fn html(body: impl Into<String>) -> Page {
        Page {
            status: 200,
            content_type: "text/html; charset=utf-8",
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn redirect(to: &str) -> Page {
        Page {
            status: 302,
            content_type: "text/plain",
            headers: vec![("location".into(), to.into())],
            body: String::new(),
        }
    }
}

/// A small web server on 127.0.0.1 that serves company pages by path and
/// records each request's path and user agent. Unknown paths get a 404. It
/// runs until dropped.
pub struct SiteServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl SiteServer {
    pub fn start(pages: std::collections::HashMap<String, Page>) -> SiteServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen, stop2) = (requests.clone(), stop.clone());
        let pages = Arc::new(pages);
        std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (seen, pages) = (seen.clone(), pages.clone());
                        std::thread::spawn(move || serve_page(stream, &pages, &seen));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SiteServer {
            addr,
            requests,
            stop,
        }
    }

    /// Returns the paths requested so far.
    pub fn paths(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect()
    }
}

impl Drop for SiteServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn serve_page(
    mut stream: TcpStream,
    pages: &std::collections::HashMap<String, Page>,
    seen: &Mutex<Vec<(String, String)>>,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let agent = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("user-agent")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    seen.lock().unwrap().push((path.clone(), agent));
    let not_found = Page {
        status: 404,
        content_type: "text/plain",
        headers: Vec::new(),
        body: "not found".into(),
    };
    let page = pages.get(&path).unwrap_or(&not_found);
    let mut extra = String::new();
    for (name, value) in &page.headers {
        extra.push_str(&format!("{name}: {value}\r\n"));
    }
    let response = format!(
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{}",
        page.status,
        page.content_type,
        page.body.len(),
        page.body
    );
    let _ = stream.write_all(response.as_bytes());
}

/// Returns the shipped app with account research pointed at a local site server:
/// `site_url_template` becomes `http://ADDR/{domain}/` and the accounts
/// component may reach that address.
pub fn app_with_sites(sites: &SiteServer) -> (String, HostOptions) {
    let origin = format!("http://{}", sites.addr);
    let manifest = app_manifest().replace(
        r#"allowed_outbound_hosts = ["https://*", "http://*", "{{ llm_url }}", "{{ vectors_url }}"]"#,
        &format!(r#"allowed_outbound_hosts = ["https://*", "http://*", "{origin}", "{{{{ llm_url }}}}", "{{{{ vectors_url }}}}"]"#),
    );
    assert!(
        manifest.contains(&origin),
        "the accounts entry in spin.toml changed"
    );
    let mut options = app_options();
    options.env.push((
        "SPIN_VARIABLE_SITE_URL_TEMPLATE".into(),
        format!("{origin}/{{domain}}/"),
    ));
    (manifest, options)
}
