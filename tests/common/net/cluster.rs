//! A throwaway PostgreSQL cluster: `initdb` and `pg_ctl` under a temporary
//! directory, listening on 127.0.0.1 on a free port, run as the `postgres`
//! OS user when the test runs as root (the server refuses to run as root),
//! optionally inside a network namespace. Dropping the guard stops the
//! server and removes its files, also when the test fails.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The newest `/usr/lib/postgresql/<major>/bin` that has `initdb`, or
/// `SQLAIO_PG_BIN`; `None` when there is none.
pub fn pg_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("SQLAIO_PG_BIN") {
        return Some(PathBuf::from(dir)).filter(|d| d.join("initdb").exists());
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// `true` when the test runs as root.
pub fn is_root() -> bool {
    run_plain(Command::new("id").arg("-u"))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A free TCP port on 127.0.0.1 (free when asked; the server takes it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn run_plain(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.output()
}

/// How a cluster is set up.
pub struct Setup {
    /// Lines of `pg_hba.conf`.
    pub hba: Vec<String>,
    /// Extra lines of `postgresql.conf`.
    pub conf: Vec<String>,
    /// Files to write into the cluster's directory before it starts (name, contents).
    pub files: Vec<(String, Vec<u8>)>,
    /// Run everything inside this network namespace (it must exist).
    pub netns: Option<String>,
}

/// A running throwaway cluster; stopped and removed when dropped.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    as_postgres: bool,
    netns: Option<String>,
}

impl Cluster {
    /// Creates and starts a cluster whose superuser is `root` (trust over
    /// its Unix socket, which only this test knows).
    ///
    /// # Errors
    /// What failed, with the server's log when it did not start.
    pub fn start(bin: &Path, setup: Setup) -> Result<Cluster, String> {
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("sqlaio-pg-")
            .tempdir()
            .map_err(|e| format!("temporary directory: {e}"))?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("chmod: {e}"))?;
        let cluster = Cluster {
            dir,
            bin: bin.to_owned(),
            port: free_port(),
            as_postgres,
            netns: setup.netns.clone(),
        };
        for (name, contents) in &setup.files {
            let path = cluster.dir.path().join(name);
            fs::write(&path, contents).map_err(|e| format!("{name}: {e}"))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("chmod {name}: {e}"))?;
        }
        cluster.give_to_postgres()?;
        let data = cluster.data();
        cluster.pg(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "root",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        let dir = cluster.dir.path().display().to_string();
        let mut conf = format!(
            "\n# sqlaio test cluster\nlisten_addresses = '127.0.0.1'\nport = {}\n\
             unix_socket_directories = '{dir}'\nfsync = off\nmax_connections = 40\n",
            cluster.port
        );
        for line in &setup.conf {
            conf.push_str(&line.replace("$DIR", &dir));
            conf.push('\n');
        }
        append(&data.join("postgresql.conf"), &conf)?;
        let hba = setup.hba.join("\n") + "\n";
        fs::write(data.join("pg_hba.conf"), hba).map_err(|e| format!("pg_hba.conf: {e}"))?;
        cluster.give_to_postgres()?;
        let log = cluster.dir.path().join("server.log");
        let started = cluster.pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        if let Err(e) = started {
            let log = fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("{e}\nserver log:\n{log}"));
        }
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The cluster's directory (certificates go there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Makes the cluster's directory and files the server's own.
    fn give_to_postgres(&self) -> Result<(), String> {
        if self.as_postgres {
            let out = run_plain(Command::new("chown").args([
                "-R",
                "postgres:postgres",
                self.dir.path().to_str().unwrap(),
            ]))
            .map_err(|e| format!("chown: {e}"))?;
            if !out.status.success() {
                return Err(format!("chown: {}", String::from_utf8_lossy(&out.stderr)));
            }
        }
        Ok(())
    }

    /// Runs one of the server's programs, as `postgres` when root, in the namespace if any.
    fn pg(&self, program: &str, args: &[&str]) -> Result<String, String> {
        let exe = self.bin.join(program);
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                c
            }
            None => Command::new("env"),
        };
        if self.as_postgres {
            cmd.args(["runuser", "-u", "postgres", "--"]);
        }
        cmd.arg(&exe).args(args).current_dir("/");
        let out = cmd.output().map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Runs SQL as the superuser over the cluster's Unix socket.
    ///
    /// # Errors
    /// psql's message.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let dir = self.dir.path().display().to_string();
        let port = self.port.to_string();
        self.pg(
            "psql",
            &[
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &dir,
                "-p",
                &port,
                "-U",
                "root",
                "-d",
                "postgres",
                "-c",
                sql,
            ],
        )
    }

    /// Waits (at most 10 s) until the server answers on its socket.
    pub fn wait_ready(&self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            match self.psql("SELECT 1") {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() > Duration::from_secs(10) => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "-t",
                "30",
                "stop",
            ],
        );
        // The temporary directory removes itself after this.
    }
}

fn append(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}
