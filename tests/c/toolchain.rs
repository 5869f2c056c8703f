//! Building and running C programs against jumpwire, shared by the suite's
//! `c_examples`, `dbus`, `abi`, `static_libs` and `install` (a module of
//! `tests/suite/main.rs`, included with `#[path = "../c/toolchain.rs"]`).
//!
//! The compiler is `$CC` (default `cc`; `$CXX`, default `c++`, for C++), with
//! `-Wall -Wextra -Werror -pedantic` and then `$CFLAGS` (`$CXXFLAGS`). The
//! libraries are the ones `cargo test` just built: `libjumpwire.so` and
//! `libjumpwire.a` land in `target/<profile>/deps/` (the directory of the test
//! executable), and in `target/<profile>/` after a `cargo build`; the newer of
//! the two is used. Binaries go to a fresh directory under
//! `CARGO_TARGET_TMPDIR` (`target/tmp/`), removed when the test passes.
//!
//! For the sanitizer runs (`scripts/sanitize.sh`), three variables override
//! this; unset, nothing changes:
//! - `JW_LIB_DIR`: take `libjumpwire.so` and `libjumpwire.a` from this
//!   directory (an AddressSanitizer build of the library) instead.
//! - `JW_C_WRAPPER`: a command prefix to run each program under, split at
//!   whitespace (`valgrind --error-exitcode=99 ...`).
//! - `JW_RUN_TIMEOUT_SECS`: the least time a program may run (the default
//!   is 30 s, longer for some); programs under valgrind run many times
//!   slower.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The native libraries a program linking `libjumpwire.a` needs, in order, as
/// `cargo rustc --lib --crate-type staticlib -- --print native-static-libs`
/// prints them on Linux. `tests/suite/static_libs.rs` links with exactly this list and
/// `tests/suite/install.rs` compares it with what rustc prints; the README
/// gives it to users.
pub const NATIVE_STATIC_LIBS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// How long a C program may run before it is killed and its test fails
/// (see [`run_for`] for longer ones).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// `JW_RUN_TIMEOUT_SECS`, if set: the least time any program is given.
fn least_run_time() -> Option<Duration> {
    let v = std::env::var("JW_RUN_TIMEOUT_SECS").ok()?;
    let secs = v
        .trim()
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("JW_RUN_TIMEOUT_SECS={v:?} is not a number of seconds"));
    Some(Duration::from_secs(secs))
}

/// Which jumpwire library a program is linked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// `-L<dir> -ljumpwire`, run with `LD_LIBRARY_PATH=<dir>`.
    Shared,
    /// `libjumpwire.a` plus [`NATIVE_STATIC_LIBS`], run without `LD_LIBRARY_PATH`.
    Static,
}

impl Link {
    /// Both kinds, for tests that run a program against each.
    pub const BOTH: [Link; 2] = [Link::Shared, Link::Static];

    fn suffix(self) -> &'static str {
        match self {
            Link::Shared => "shared",
            Link::Static => "static",
        }
    }
}

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The newest `file_name` among the test executable's directory
/// (`target/<profile>/deps/`) and its parent (`target/<profile>/`); with
/// `JW_LIB_DIR` set, the one in that directory.
pub fn library(file_name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("JW_LIB_DIR").filter(|d| !d.is_empty()) {
        let p = Path::new(&dir).join(file_name);
        assert!(p.is_file(), "JW_LIB_DIR: {} not found", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let deps = exe.parent().expect("the test executable's directory");
    let candidates = [Some(deps), deps.parent()];
    candidates
        .into_iter()
        .flatten()
        .map(|dir| dir.join(file_name))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "{file_name} not found in {} or its parent: was the crate built?",
                deps.display()
            )
        })
}

/// A directory for one test's binaries, under `CARGO_TARGET_TMPDIR`. Removed
/// when dropped, unless the test is failing (then it is kept for a look).
pub struct WorkDir(PathBuf);

impl WorkDir {
    /// A fresh, empty directory named after `test` and this process.
    pub fn new(test: &str) -> WorkDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("jw-c")
            .join(format!("{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        WorkDir(dir)
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept the binaries in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A compiler from the environment variable `var` (it may hold arguments, as
/// in `CC="ccache gcc"`), or `default`.
fn tool(var: &str, default: &str) -> Command {
    let value = std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.into());
    let mut words = value.split_whitespace();
    let mut cmd = Command::new(words.next().expect("a compiler name"));
    cmd.args(words);
    cmd
}

fn flags_from(var: &str) -> Vec<String> {
    std::env::var(var)
        .map(|v| v.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// The C compiler command with the strict flags, `$CFLAGS` and the include path.
pub fn c_compiler() -> Command {
    let mut cmd = tool("CC", "cc");
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"]);
    cmd.args(flags_from("CFLAGS"));
    cmd.arg("-I").arg(repo().join("include")).arg("-pthread");
    cmd
}

/// The C++ compiler command compiling C sources as C++11 with the strict
/// flags, `$CXXFLAGS` and the include path; `None` if there is no C++ compiler.
pub fn cxx_compiler() -> Option<Command> {
    let probe = tool("CXX", "c++")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        return None;
    }
    let mut cmd = tool("CXX", "c++");
    cmd.args([
        "-x",
        "c++",
        "-std=c++11",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
    ]);
    cmd.args(flags_from("CXXFLAGS"));
    cmd.arg("-I").arg(repo().join("include")).arg("-pthread");
    Some(cmd)
}

/// Adds the link arguments for `link` (after the sources).
pub fn link_args(cmd: &mut Command, link: Link) {
    match link {
        Link::Shared => {
            let so = library("libjumpwire.so");
            cmd.arg("-L").arg(so.parent().unwrap()).arg("-ljumpwire");
        }
        Link::Static => {
            cmd.arg(library("libjumpwire.a")).args(NATIVE_STATIC_LIBS);
        }
    }
}

/// Runs a compiler command; panics with the command and its output if it fails.
pub fn compile(mut cmd: Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "compiling failed ({}):\n{cmd:?}\n--- stderr ---\n{}--- stdout ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Compiles the C program `source` (relative to the repository) into `dir`,
/// linked as `link`, and returns the binary's path.
pub fn build(dir: &WorkDir, source: &str, link: Link) -> PathBuf {
    let stem = Path::new(source).file_stem().unwrap().to_str().unwrap();
    let bin = dir.path(&format!("{stem}-{}", link.suffix()));
    let mut cmd = c_compiler();
    cmd.arg(repo().join(source)).arg("-o").arg(&bin);
    link_args(&mut cmd, link);
    compile(cmd);
    bin
}

/// What a finished program did.
#[derive(Debug)]
pub struct Run {
    /// The command, for messages.
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics, showing everything, unless the program exited with 0.
    pub fn assert_success(&self) -> &Run {
        assert!(self.status.success(), "{self}");
        self
    }

    /// Panics unless the program exited with `code`.
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.status.code(), Some(code), "{self}");
        self
    }

    /// Panics unless stdout contains `text`.
    pub fn assert_stdout_has(&self, text: &str) -> &Run {
        assert!(self.stdout.contains(text), "stdout lacks {text:?}\n{self}");
        self
    }

    /// Panics unless stderr contains `text`.
    pub fn assert_stderr_has(&self, text: &str) -> &Run {
        assert!(self.stderr.contains(text), "stderr lacks {text:?}\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} exited with {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what, self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `bin` with `args` (under `JW_C_WRAPPER`, if set): a shared build
/// with `LD_LIBRARY_PATH` pointing at the library, a static one without any.
/// Killed after [`RUN_TIMEOUT`] (or `JW_RUN_TIMEOUT_SECS`, if longer).
pub fn run(bin: &Path, args: &[&str], link: Link) -> Run {
    run_for(bin, args, link, RUN_TIMEOUT)
}

/// [`run`] for programs that may take longer than [`RUN_TIMEOUT`].
pub fn run_for(bin: &Path, args: &[&str], link: Link, limit: Duration) -> Run {
    run_env(bin, args, link, limit, &[])
}

/// [`run_for`] with `env` set (`(name, None)` removes a variable) in the
/// program's environment only.
pub fn run_env(
    bin: &Path,
    args: &[&str],
    link: Link,
    limit: Duration,
    env: &[(&str, Option<&str>)],
) -> Run {
    let wrapper = flags_from("JW_C_WRAPPER");
    let mut cmd = match wrapper.split_first() {
        Some((program, wrapper_args)) => {
            let mut cmd = Command::new(program);
            cmd.args(wrapper_args).arg(bin);
            cmd
        }
        None => Command::new(bin),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env_remove("LD_LIBRARY_PATH");
    if link == Link::Shared {
        cmd.env(
            "LD_LIBRARY_PATH",
            library("libjumpwire.so").parent().unwrap(),
        );
    }
    let what = format!("{} {}", bin.display(), args.join(" "));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let limit = least_run_time().map_or(limit, |least| least.max(limit));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the program") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().expect("waiting for the killed program");
            let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
            panic!(
                "{what} ran longer than {limit:?} and was killed ({status})\n--- stdout ---\n{out}--- stderr ---\n{err}"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        what,
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}
