//! A lab for the lease tests: the test controller
//! (`tests/python/controller.py`, on upstream's generated stubs), a router
//! (jumpwire's, in this process, or the upstream-style one of
//! `tests/python/router_peer.py`), and upstream's own `Exporter`
//! (`tests/python/exporter_peer.py`) registered with the controller and
//! listening on its lease. All over TLS with the controller's self-signed
//! certificate; every process started here is killed by its pid when the
//! lab is dropped. The fixtures' stderr goes to files in the lab's
//! directory (`NAME.py.stderr`).
//!
//! Clients and leases: `alice` (token `client-token`) holds `lease1` and
//! `lease-ended` on the exporter `bench`, and `lease-idle` on the exporter
//! `idle`, which never runs and which the controller is told has reported
//! `Available` (so Dial says it is not ready); `bob` holds `lease-bob`.

use super::session::python;
use jumpwire::router::Router;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");
/// The bound of every wait for a fixture's line.
const STEP: Duration = Duration::from_secs(60);
const ROUTER_KEY: &str = "lab-router-key";

/// A fixture process: its stdout read line by line on a thread (every line
/// kept), its stdin kept open (the fixtures stop when it closes); killed by
/// pid on drop.
pub struct Proc {
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    /// Lines before this one were looked at by `until` already.
    seen: Mutex<usize>,
    what: String,
}

impl Proc {
    /// Starts `script` (in tests/python) with `args`; its stderr goes to
    /// `log/SCRIPT.stderr`.
    pub fn start(script: &str, args: &[&str], log: &std::path::Path) -> Proc {
        let stderr = std::fs::File::create(log.join(format!("{script}.stderr"))).unwrap();
        let mut child = Command::new(python())
            .arg(format!("{PY}/{script}"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting Python");
        let out = BufReader::new(child.stdout.take().unwrap());
        let lines: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let l2 = lines.clone();
        std::thread::spawn(move || {
            for l in out.lines() {
                let Ok(l) = l else { break };
                l2.0.lock().unwrap().push(l);
                l2.1.notify_all();
            }
        });
        Proc {
            stdin: Mutex::new(child.stdin.take()),
            child,
            lines,
            seen: Mutex::new(0),
            what: script.to_owned(),
        }
    }

    /// Waits for a line starting with `prefix` after those an earlier
    /// `until` returned, and returns it.
    pub fn until(&self, prefix: &str) -> String {
        let end = Instant::now() + STEP;
        let mut seen = self.seen.lock().unwrap();
        let (lines, cv) = &*self.lines;
        let mut l = lines.lock().unwrap();
        loop {
            while *seen < l.len() {
                *seen += 1;
                if l[*seen - 1].starts_with(prefix) {
                    return l[*seen - 1].clone();
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: no line {prefix:?} in {l:?}",
                self.what
            );
            l = cv.wait_timeout(l, left).unwrap().0;
        }
    }

    /// Waits for a line starting with `prefix` among all lines so far and
    /// to come (in whatever order they come).
    pub fn seen(&self, prefix: &str) {
        let end = Instant::now() + STEP;
        let (lines, cv) = &*self.lines;
        let mut l = lines.lock().unwrap();
        while !l.iter().any(|l| l.starts_with(prefix)) {
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: no line {prefix:?} in {l:?}",
                self.what
            );
            l = cv.wait_timeout(l, left).unwrap().0;
        }
    }

    /// How many lines so far start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        let l = self.lines.0.lock().unwrap();
        l.iter().filter(|l| l.starts_with(prefix)).count()
    }

    /// Sends a command line.
    pub fn send(&self, line: &str) {
        let mut stdin = self.stdin.lock().unwrap();
        let stdin = stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }
}

impl Proc {
    /// Kills the process (by its pid) and reaps it.
    fn kill(&mut self) {
        drop(self.stdin.lock().unwrap().take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which router the lab's streams go through.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RouterKind {
    /// jumpwire's router, in this process.
    Jumpwire,
    /// The upstream-style router of router_peer.py.
    Python,
}

/// A running lab.
pub struct Lab {
    pub dir: PathBuf,
    /// The controller, `127.0.0.1:PORT`.
    pub controller: String,
    /// The controller's (and router's) certificate, PEM.
    pub cert: PathBuf,
    /// The exporter's TCP echo server behind its `tcp` driver.
    pub tcp: String,
    pub ctl: Proc,
    /// Upstream's exporter (none in a lab started with
    /// [`Lab::start_bare`]).
    exporter: Option<Proc>,
    _router_peer: Option<Proc>,
    router: Option<Router>,
}

impl Lab {
    /// Starts the lab and waits until the exporter listens on `lease1`.
    pub fn start(kind: RouterKind) -> Lab {
        Lab::start_keyed(kind, ROUTER_KEY)
    }

    /// [`Lab::start`] with the controller minting router tokens with
    /// `controller_key` (the router checks them with its own key: another
    /// one makes the router refuse every stream).
    pub fn start_keyed(kind: RouterKind, controller_key: &str) -> Lab {
        Lab::start_with(kind, controller_key, true)
    }

    /// A lab without upstream's exporter: the exporter `bench` is whoever
    /// registers with its token (`exporter-token`), e.g. jumpwire's
    /// ([`Lab::write_exporter_config`]); `tcp` is empty.
    pub fn start_bare(kind: RouterKind) -> Lab {
        Lab::start_with(kind, ROUTER_KEY, false)
    }

    fn start_with(kind: RouterKind, controller_key: &str, upstream: bool) -> Lab {
        let dir = std::env::temp_dir().join(format!(
            "jw-lab-{}-{kind:?}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(python())
            .arg(format!("{PY}/controller.py"))
            .arg("cert")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "controller.py cert: {out:?}");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let (router, router_peer, endpoint) = match kind {
            RouterKind::Jumpwire => {
                let r = Router::serve(&format!(
                    "grpcs://127.0.0.1:0?key={ROUTER_KEY}&cert={cert_s}&key_file={key_s}"
                ))
                .unwrap();
                let ep = r.address().strip_prefix("grpcs://").unwrap().to_owned();
                (Some(r), None, ep)
            }
            RouterKind::Python => {
                let p = Proc::start("router_peer.py", &["router", cert_s, key_s], &dir);
                let port = p
                    .until("PORT")
                    .split_whitespace()
                    .nth(1)
                    .unwrap()
                    .to_owned();
                (None, Some(p), format!("127.0.0.1:{port}"))
            }
        };
        let ctl = Proc::start(
            "controller.py",
            &[
                "serve",
                "--router",
                &endpoint,
                "--router-key",
                controller_key,
                "--cert",
                cert_s,
                "--key",
                key_s,
                "--client",
                "alice=client-token",
                "--client",
                "bob=bob-token",
                "--exporter",
                "bench=exporter-token",
                "--exporter",
                "idle=idle-token",
                "--lease",
                "lease1=alice:bench",
                "--lease",
                "lease-ended=alice:bench",
                "--lease",
                "lease-idle=alice:idle",
                "--lease",
                "lease-bob=bob:bench",
            ],
            &dir,
        );
        let port = ctl
            .until("PORT")
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
        let controller = format!("127.0.0.1:{port}");
        ctl.send("end lease-ended");
        ctl.send("status idle Available");
        ctl.until("ENDED lease-ended");
        let (exporter, tcp) = if upstream {
            let (e, tcp) = start_exporter(&ctl, &controller, &cert, &dir);
            (Some(e), tcp)
        } else {
            (None, String::new())
        };
        let lab = Lab {
            dir,
            controller,
            cert,
            tcp,
            ctl,
            exporter,
            _router_peer: router_peer,
            router,
        };
        lab.write_config("alice", "client-token");
        lab
    }

    /// Writes `clients/ALIAS.yaml` (an upstream client configuration for
    /// the client `alice` with `token`, tls.ca the lab's certificate) and
    /// returns its path.
    pub fn write_config(&self, alias: &str, token: &str) -> PathBuf {
        self.write_config_for(alias, "alice", token, &self.controller)
    }

    /// [`Self::write_config`] for the client `name` and controller
    /// `endpoint`.
    pub fn write_config_for(
        &self,
        alias: &str,
        name: &str,
        token: &str,
        endpoint: &str,
    ) -> PathBuf {
        use base64::Engine;
        let ca =
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(&self.cert).unwrap());
        let dir = self.dir.join("clients");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{alias}.yaml"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: jumpstarter.dev/v1alpha1\nkind: ClientConfig\n\
                 metadata:\n  namespace: default\n  name: {name}\n\
                 endpoint: {endpoint}\ntoken: {token}\n\
                 tls:\n  ca: {ca}\n  insecure: false\n\
                 drivers:\n  allow: []\n  unsafe: false\n"
            ),
        )
        .unwrap();
        path
    }

    /// Writes `exporter.yaml`: an upstream exporter configuration
    /// (`ExporterConfigV1Alpha1`) for the exporter `bench` with `token`,
    /// tls.ca the lab's certificate, and an `export` tree (which jumpwire
    /// does not read); returns its path.
    pub fn write_exporter_config(&self, token: &str) -> PathBuf {
        use base64::Engine;
        let ca =
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(&self.cert).unwrap());
        let path = self.dir.join("exporter.yaml");
        std::fs::write(
            &path,
            format!(
                "apiVersion: jumpstarter.dev/v1alpha1\nkind: ExporterConfig\n\
                 metadata:\n  namespace: default\n  name: bench\n\
                 endpoint: {}\ntoken: {token}\n\
                 tls:\n  ca: {ca}\n  insecure: false\n\
                 grpcOptions: {{}}\n\
                 export:\n  ignored:\n    type: jumpstarter_driver_network.driver.TcpNetwork\n\
                 \x20   config:\n      host: 127.0.0.1\n      port: 9\n",
                self.controller
            ),
        )
        .unwrap();
        path
    }

    /// `jumpstarter:lease?driver=DRIVER&lease=LEASE&config=CONFIG`.
    pub fn url(&self, driver: &str, lease: &str, config: &str) -> String {
        let path = self.dir.join("clients").join(format!("{config}.yaml"));
        format!(
            "jumpstarter:lease?driver={driver}&lease={lease}&config={}",
            path.display()
        )
    }
}

/// Starts the exporter `bench` and waits until it is ready on `lease1`;
/// returns it and the TCP echo behind its `tcp` driver.
fn start_exporter(
    ctl: &Proc,
    controller: &str,
    cert: &std::path::Path,
    dir: &std::path::Path,
) -> (Proc, String) {
    let exporter = Proc::start(
        "exporter_peer.py",
        &[
            "--endpoint",
            controller,
            "--token",
            "exporter-token",
            "--name",
            "bench",
            "--ca",
            cert.to_str().unwrap(),
        ],
        dir,
    );
    let tcp = exporter.until("tcp ")[4..].to_owned();
    exporter.until("READY");
    ctl.until("REGISTERED bench");
    ctl.seen("LISTEN lease1");
    ctl.seen("STATUS bench EXPORTER_STATUS_LEASE_READY");
    (exporter, tcp)
}

impl Lab {
    /// Kills the exporter (by its pid: no goodbye to the controller) and
    /// starts a new one; returns once it is registered (its readiness on
    /// the lease is not waited for: the controller's Dial tells).
    pub fn restart_exporter(&mut self) {
        if let Some(e) = &mut self.exporter {
            e.kill();
        }
        let next = Proc::start(
            "exporter_peer.py",
            &[
                "--endpoint",
                &self.controller,
                "--token",
                "exporter-token",
                "--name",
                "bench",
                "--ca",
                self.cert.to_str().unwrap(),
            ],
            &self.dir,
        );
        self.tcp = next.until("tcp ")[4..].to_owned();
        next.until("READY");
        self.exporter = Some(next);
        self.ctl.until("REGISTERED bench");
    }

    /// How many times a client dialled a lease so far: the controller's
    /// `DIAL` lines, counted after a command's answer (which comes after
    /// every Dial answered before it).
    pub fn dials(&self) -> usize {
        self.ctl.send("status idle Available");
        self.ctl.until("STATUS-SET idle");
        self.ctl.count("DIAL ")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(r) = self.router.take() {
            r.close();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
