//! Test support: a throwaway PostgreSQL server, started from the local
//! PostgreSQL installation in a fresh temporary folder and stopped (the
//! folder removed) when dropped, so the PostgreSQL engine is tested against
//! a real server without any setup.
//!
//! The binaries (`initdb`, `pg_ctl`, `postgres`) are looked up in the folder
//! named by `ANIMAL_REID_PG_BIN`, else in the newest
//! `/usr/lib/postgresql/*/bin` (Debian's layout), else on `PATH`. PostgreSQL
//! refuses to run as root: as root, the server runs as the `postgres` user
//! (through `runuser`, or `su`).
//!
//! Each server has a watchdog, a shell in a process group of its own, that
//! stops the server and removes its folder once this process has exited,
//! however it exited (a failed test, Ctrl-C): no server outlives its tests.
//!
//! ```no_run
//! use reid_catalogue::testing::ThrowawayPostgres;
//! let server = ThrowawayPostgres::start()?;
//! let url = server.fresh_database("my_test")?;
//! let store = reid_catalogue::store::open(&url).map_err(|e| e.to_string())?;
//! # Ok::<(), String>(())
//! ```

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The environment variable naming the folder of the PostgreSQL binaries.
pub const PG_BIN_ENV: &str = "ANIMAL_REID_PG_BIN";

const INSTALL_HINT: &str = "install Debian's postgresql-15: `apt-get install -y postgresql-15`, \
     or set ANIMAL_REID_PG_BIN to the folder holding initdb, pg_ctl and postgres";

/// Ports tried before giving up (another process may take a free port
/// between the check and the server's start).
const PORT_TRIES: usize = 5;

/// A PostgreSQL server of its own in a temporary folder, listening on a free
/// port of 127.0.0.1 with trust authentication for user `reid`; stopped and
/// removed on drop.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    url: String,
    port: u16,
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    run_as: Option<RunAs>,
    started_in: Duration,
    watchdog: Option<Child>,
}

/// How to run a binary as the `postgres` user when this process is root.
#[derive(Debug, Clone)]
enum RunAs {
    Runuser(PathBuf),
    Su(PathBuf),
}

impl ThrowawayPostgres {
    /// Creates a cluster in a new temporary folder (`initdb`) and starts its
    /// server (`pg_ctl start`) on a free port. The error says what failed,
    /// with the end of the server's log, or how to install PostgreSQL.
    pub fn start() -> Result<ThrowawayPostgres, String> {
        let started = Instant::now();
        let bin = find_bin()?;
        let run_as = if is_root() {
            Some(run_as_postgres()?)
        } else {
            None
        };
        let dir = unique_dir()?;
        // From here on the folder is removed on drop (and on failure).
        let mut server = ThrowawayPostgres {
            url: String::new(),
            port: 0,
            bin,
            data: dir.join("data"),
            log: dir.join("server.log"),
            dir,
            run_as,
            started_in: Duration::ZERO,
            watchdog: None,
        };
        server.watchdog = Some(server.spawn_watchdog()?);
        let sock = server.dir.join("sock");
        std::fs::create_dir(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
        if server.run_as.is_some() {
            let (uid, gid) = postgres_ids()?;
            for p in [&server.dir, &sock] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {} to the postgres user: {e}", p.display()))?;
            }
        }
        let initdb = server.run(
            "initdb",
            &[
                "-D".into(),
                path_arg(&server.data)?,
                "-A".into(),
                "trust".into(),
                "-U".into(),
                "reid".into(),
                "--no-sync".into(),
                "-E".into(),
                "UTF8".into(),
                "--locale=C".into(),
            ],
        )?;
        if !initdb.status.success() {
            return Err(format!(
                "initdb failed ({}): {}{}",
                initdb.status,
                String::from_utf8_lossy(&initdb.stdout),
                String::from_utf8_lossy(&initdb.stderr)
            ));
        }
        let mut last_error = String::new();
        for _ in 0..PORT_TRIES {
            let port = free_port()?;
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=50",
                shell_quote(&path_arg(&sock)?)
            );
            let out = server.run(
                "pg_ctl",
                &[
                    "start".into(),
                    "-w".into(),
                    "-t".into(),
                    "60".into(),
                    "-D".into(),
                    path_arg(&server.data)?,
                    "-l".into(),
                    path_arg(&server.log)?,
                    "-o".into(),
                    options,
                ],
            )?;
            if out.status.success() {
                server.port = port;
                server.url = format!("postgres://reid@127.0.0.1:{port}/postgres");
                server.started_in = started.elapsed();
                return Ok(server);
            }
            last_error = format!(
                "pg_ctl start on port {port} failed ({}): {}{}\n--- server log (end) ---\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                server.log_tail()
            );
        }
        Err(last_error)
    }

    /// The server of this process, started on the first call (a call after
    /// a failed start tries again) and kept for the rest of the process: the
    /// tests of one test binary share it, each in its own
    /// [`fresh_database`](Self::fresh_database). The watchdog stops it and
    /// removes its folder when the process exits.
    pub fn shared() -> Result<Arc<ThrowawayPostgres>, String> {
        static SHARED: Mutex<Option<Arc<ThrowawayPostgres>>> = Mutex::new(None);
        let mut slot = SHARED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(server) = slot.as_ref() {
            return Ok(Arc::clone(server));
        }
        let server = Arc::new(ThrowawayPostgres::start()?);
        *slot = Some(Arc::clone(&server));
        Ok(server)
    }

    /// The server's `postgres` database: `postgres://reid@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How long [`start`](Self::start) took (`initdb` and the server's start).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Creates database `name` (letters, digits and `_`, at most 63 bytes)
    /// and returns its URL.
    pub fn fresh_database(&self, name: &str) -> Result<String, String> {
        if name.is_empty()
            || name.len() > 63
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!(
                "database name {name:?}: use 1 to 63 letters, digits or underscores"
            ));
        }
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls)
            .map_err(|e| format!("{}: {e}\n{}", self.url, self.log_tail()))?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .map_err(|e| match e.as_db_error() {
                Some(db) => format!("CREATE DATABASE {name}: {}", db.message()),
                None => format!("CREATE DATABASE {name}: {e}"),
            })?;
        Ok(format!("postgres://reid@127.0.0.1:{}/{name}", self.port))
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self) -> String {
        match std::fs::read_to_string(&self.log) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(30)..].join("\n")
            }
            Err(e) => format!("(no server log at {}: {e})", self.log.display()),
        }
    }

    /// Starts the watchdog: a shell, in a process group of its own (so that
    /// Ctrl-C of the tests does not reach it), that waits for this process
    /// to end, then stops the server and removes the folder.
    fn spawn_watchdog(&self) -> Result<Child, String> {
        let stop = self.shell_line("pg_ctl", &stop_now(path_arg(&self.data)?))?;
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             if [ -f {pidfile} ]; then {stop} >/dev/null 2>&1; fi; rm -rf {dir}",
            pid = std::process::id(),
            pidfile = shell_quote(&path_arg(&self.data.join("postmaster.pid"))?),
            dir = shell_quote(&path_arg(&self.dir)?),
        );
        Command::new("/bin/sh")
            .args(["-c", &script])
            .process_group(0)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the server's watchdog (/bin/sh): {e}"))
    }

    /// The shell command line running binary `name` as [`run`](Self::run)
    /// does.
    fn shell_line(&self, name: &str, args: &[String]) -> Result<String, String> {
        let program = path_arg(&self.bin.join(name))?;
        let mut line = shell_quote(&program);
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        Ok(match &self.run_as {
            None => line,
            Some(RunAs::Runuser(runuser)) => {
                format!("{} -u postgres -- {line}", shell_quote(&path_arg(runuser)?))
            }
            Some(RunAs::Su(su)) => format!(
                "{} postgres -s /bin/sh -c {}",
                shell_quote(&path_arg(su)?),
                shell_quote(&line)
            ),
        })
    }

    /// Runs binary `name` of the installation, as the `postgres` user when
    /// this process is root, in the server's folder.
    fn run(&self, name: &str, args: &[String]) -> Result<std::process::Output, String> {
        let program = self.bin.join(name);
        let mut cmd = match &self.run_as {
            None => {
                let mut c = Command::new(&program);
                c.args(args);
                c
            }
            Some(RunAs::Runuser(runuser)) => {
                let mut c = Command::new(runuser);
                c.args(["-u", "postgres", "--"]).arg(&program).args(args);
                c
            }
            Some(RunAs::Su(su)) => {
                let mut line = shell_quote(&path_arg(&program)?);
                for a in args {
                    line.push(' ');
                    line.push_str(&shell_quote(a));
                }
                let mut c = Command::new(su);
                c.args(["postgres", "-s", "/bin/sh", "-c"]).arg(line);
                c
            }
        };
        cmd.current_dir(&self.dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        cmd.output()
            .map_err(|e| format!("running {}: {e}", program.display()))
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists()
            && let Ok(data) = path_arg(&self.data)
        {
            // Best effort: nothing to do about a server that will not stop.
            let _ = self.run("pg_ctl", &stop_now(data));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            // Nothing left for it to do.
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// The folder holding `initdb`, `pg_ctl` and `postgres`.
fn find_bin() -> Result<PathBuf, String> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
        let dir = PathBuf::from(dir);
        if complete(&dir) {
            return Ok(dir);
        }
        return Err(format!(
            "{PG_BIN_ENV}={} does not hold initdb, pg_ctl and postgres; {INSTALL_HINT}",
            dir.display()
        ));
    }
    let mut debian: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|p| p.parse::<u64>().ok())
                .collect::<Option<Vec<u64>>>()?;
            let bin = entry.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Ok(bin);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() {
                // The binaries live together; a PATH entry may be a link to one.
                let real = std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf));
                for candidate in real.into_iter().chain([dir.clone()]) {
                    if complete(&candidate) {
                        return Ok(candidate);
                    }
                }
            }
        }
    }
    Err(format!(
        "no PostgreSQL server binaries (initdb) found in /usr/lib/postgresql/*/bin or on PATH; {INSTALL_HINT}"
    ))
}

/// Whether this process runs as root (the owner of `/proc/self` is the
/// effective user).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn postgres_ids() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|e| format!("running id {flag} postgres: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "running as root, and PostgreSQL refuses to run as root, but there is no \
                 `postgres` user to run it as ({}); {INSTALL_HINT} (it creates the user)",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("id {flag} postgres: {e}"))
    };
    Ok((id("-u")?, id("-g")?))
}

fn run_as_postgres() -> Result<RunAs, String> {
    postgres_ids()?;
    let find = |name: &str| -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    };
    if let Some(p) = find("runuser") {
        return Ok(RunAs::Runuser(p));
    }
    if let Some(p) = find("su") {
        return Ok(RunAs::Su(p));
    }
    Err(
        "running as root, and PostgreSQL refuses to run as root, but neither runuser nor su \
         was found to run it as the postgres user"
            .to_string(),
    )
}

/// A new folder under the system's temporary folder.
fn unique_dir() -> Result<PathBuf, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!(
            "reid-pg-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("creating {}: {e}", dir.display())),
        }
    }
    Err(format!(
        "could not create a new folder under {}",
        base.display()
    ))
}

/// A port of 127.0.0.1 that nothing listens on right now.
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("finding a free port on 127.0.0.1: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port on 127.0.0.1: {e}"))
}

fn path_arg(p: &Path) -> Result<String, String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{}: not UTF-8", p.display()))
}

/// `s` as one word of a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A static HTTP/1.1 file server on a free port of 127.0.0.1, serving the
/// files under a folder as they are at each request (so a test can replace
/// one), for tests of photos registered by URL; stopped on drop.
///
/// ```
/// use reid_catalogue::testing::StaticHttp;
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("a.jpg"), b"bytes")?;
/// let server = StaticHttp::serve(dir.path())?;
/// assert!(server.url("a.jpg").starts_with("http://127.0.0.1:"));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct StaticHttp {
    base: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    requests: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StaticHttp {
    /// Serves `root`: `GET /a/b.jpg` answers `root/a/b.jpg`, 404 when it is
    /// not a file (or the path climbs out with `..`).
    pub fn serve(root: &Path) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let root = root.to_path_buf();
        let (s, n) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = conn {
                    n.fetch_add(1, Ordering::SeqCst);
                    let root = root.clone();
                    std::thread::spawn(move || answer(stream, &root));
                }
            }
        });
        Ok(Self {
            base,
            stop,
            requests,
            thread: Some(thread),
        })
    }

    /// The URL of `rel` (a path under the served folder).
    pub fn url(&self, rel: &str) -> String {
        format!("{}/{}", self.base, rel.trim_start_matches('/'))
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for StaticHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accepting thread.
        let _ = std::net::TcpStream::connect(self.base.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request of [`StaticHttp`].
fn answer(mut stream: std::net::TcpStream, root: &Path) {
    use std::io::{BufRead, Write};
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = std::io::BufReader::new(clone);
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    // The headers, up to the blank line.
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let target = first.split_whitespace().nth(1).unwrap_or("/");
    let rel = target
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_start_matches('/');
    let safe = !rel.is_empty() && !rel.split('/').any(|c| c == ".." || c.is_empty());
    let body = if safe {
        std::fs::read(root.join(rel)).ok()
    } else {
        None
    };
    let _ = match body {
        Some(b) => stream
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    b.len()
                )
                .as_bytes(),
            )
            .and_then(|()| stream.write_all(&b)),
        None => stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        ),
    };
    let _ = stream.flush();
}

/// `pg_ctl`'s arguments that stop the server of data folder `data` at once
/// (immediate mode) and wait for it.
fn stop_now(data: String) -> Vec<String> {
    ["stop", "-m", "immediate", "-w", "-D"]
        .into_iter()
        .map(String::from)
        .chain([data])
        .collect()
}
