//! A PostgreSQL server of the test's own, to stop, kill and start again: `initdb` into a temp
//! folder, a free port on loopback, `pg_ctl`. The machine's shared server is never touched.
//! PostgreSQL refuses to run as root, so under root every command runs as the `postgres` user
//! (`runuser`), in a folder given to it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::database::engines_required;
use super::files::TempDir;

/// How long a start or a stop may take on a busy machine before the test gives up.
const PG_CTL_WAIT_SECS: &str = "60";

pub struct PrivatePostgres {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
    /// Run the binaries through `runuser -u postgres --`.
    as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin`, or the folder of `pg_ctl` on PATH.
fn find_binaries() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            has_all(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_all(dir))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on loopback")
        .port()
}

impl PrivatePostgres {
    /// A new, started server; `None` (skip) when the PostgreSQL binaries are not installed,
    /// unless `REQUIRE_ENGINES=1`.
    pub async fn start() -> Option<PrivatePostgres> {
        let Some(bin) = find_binaries() else {
            let msg = "no PostgreSQL binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin \
                       or on PATH";
            if engines_required() {
                panic!("REQUIRE_ENGINES=1 and {msg}");
            }
            eprintln!("skipped: {msg} (REQUIRE_ENGINES=1 makes this fail)");
            return None;
        };
        let dir = TempDir::new("private-pg");
        let as_postgres = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(dir.path()).expect("temp dir").uid() == 0
        };
        if as_postgres {
            let chown = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("run chown");
            assert!(
                chown.success(),
                "chown of {} to postgres",
                dir.path().display()
            );
        }
        let pg = PrivatePostgres {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        .await;
        // fsync off: the faults here kill processes, not the machine, and the page cache keeps
        // what a commit wrote; it spares the shared disk.
        let settings = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nfull_page_writes = off\nshared_buffers = 16MB\nmax_connections = 40\n",
            pg.port,
            pg.dir.path().display()
        );
        let conf = pg.dir.path().join("data").join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str(&settings);
        std::fs::write(&conf, text).expect("write postgresql.conf");
        pg.start_again().await;
        Some(pg)
    }

    /// The `postgres` database of this server.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn log(&self) -> String {
        self.dir.path().join("server.log").display().to_string()
    }

    fn command(&self, program: &str, args: &[&str]) -> tokio::process::Command {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            tokio::process::Command::new(program)
        };
        command.args(args).kill_on_drop(true);
        command
    }

    async fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program, args)
            .output()
            .await
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}\n{}\n{}\nserver log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    /// Starts the server and waits until it accepts connections (after a crash: once its
    /// recovery is done). After a kill the old server's processes may still be on their way
    /// out, holding its shared memory: the start is tried again until they are gone.
    pub async fn start_again(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let output = self
                .command(
                    "pg_ctl",
                    &[
                        "-D",
                        &self.data(),
                        "-l",
                        &self.log(),
                        "-w",
                        "-t",
                        PG_CTL_WAIT_SECS,
                        "start",
                    ],
                )
                .output()
                .await
                .expect("run pg_ctl start");
            if output.status.success() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "pg_ctl start: {}\n{}\nserver log:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `pg_ctl stop -m immediate`: every backend quits at once, without a checkpoint, as in a
    /// power cut of the database alone; the next start recovers from the WAL.
    pub async fn stop_immediate(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-m",
                "immediate",
                "-w",
                "-t",
                PG_CTL_WAIT_SECS,
                "stop",
            ],
        )
        .await;
    }

    /// The postmaster's process id, from its lock file, while that process is this server's
    /// (a stale lock file may name a process id the system gave to another process since).
    fn postmaster_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.path().join("data").join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let data = self.data();
        String::from_utf8_lossy(&cmdline)
            .contains(data.as_str())
            .then_some(pid)
    }

    /// SIGKILL to the postmaster (its backends see it gone and quit on their own); returns once
    /// they all have, so the next start does not meet their shared memory.
    pub async fn kill(&self) {
        let pid = self
            .postmaster_pid()
            .expect("postmaster.pid of a running server");
        let children = children_of(pid);
        let status = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -9 {pid}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        for process in std::iter::once(pid).chain(children) {
            while is_alive(process) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "process {process} of the killed PostgreSQL did not exit"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // A killed postmaster nobody reaped yet still answers `kill -0`, and the next start
        // would take it for a running server: its lock file goes with it.
        let _ = std::fs::remove_file(self.dir.path().join("data").join("postmaster.pid"));
    }
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| parent_of(*child) == Some(pid))
        .collect()
}

/// The parent and state fields of `/proc/<pid>/stat` (after the parenthesised name).
fn stat_fields(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = stat.rsplit_once(')')?.1.split_whitespace();
    let state = rest.next()?.chars().next()?;
    let parent = rest.next()?.parse().ok()?;
    Some((state, parent))
}

fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid).map(|(_, parent)| parent)
}

/// Running, or a zombie nobody reaped yet (which holds nothing).
fn is_alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|(state, _)| state != 'Z')
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Whatever state the test left it in; errors mean it was not running.
        if let Some(pid) = self.postmaster_pid() {
            let children = children_of(pid);
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            for process in std::iter::once(pid).chain(children) {
                while is_alive(process) && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}
