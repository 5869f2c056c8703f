//! The native libraries a program linking `libjumpwire.a` needs are pinned
//! (`NATIVE_STATIC_LIBS` in `tests/c/toolchain.rs`, and the README's static
//! build line): a small C program is linked with `-nodefaultlibs` against the
//! static library and exactly that list, then run. If a dependency ever needs
//! another native library, the link fails and says what to update. The list
//! is also compared with what rustc prints: `scripts/install.sh` writes
//! rustc's `--print native-static-libs` into `jumpwire.pc`, and
//! `tests/suite/install.rs` checks that against the pinned list.

use crate::toolchain;

use toolchain::{Link, NATIVE_STATIC_LIBS, WorkDir, c_compiler, library, run};

/// Uses the parts of the library that pull in threads, sockets and time.
const PROGRAM: &str = r#"
#include <stdio.h>
#include <string.h>
#include "jumpwire.h"

int main(void) {
    jw_network *echo = NULL;
    jw_listener *l = NULL;
    jw_stream *s = NULL;
    char addr[128], buf[16];
    size_t n = 0;
    if (jw_network_new("echo:", &echo) != JW_OK || jw_listen("tcp://127.0.0.1:0", echo, &l) != JW_OK ||
        jw_listener_address(l, addr, sizeof addr) != JW_OK || jw_connect(addr, 5000, &s) != JW_OK ||
        jw_stream_send(s, (const uint8_t *)"static", 6, 5000) != JW_OK ||
        jw_stream_receive(s, (uint8_t *)buf, 6, &n, 5000) != JW_OK || n != 6 || memcmp(buf, "static", 6) != 0) {
        fprintf(stderr, "static link test: %s\n", jw_last_error());
        return 1;
    }
    jw_stream_close(s);
    jw_listener_close(l);
    jw_network_free(echo);
    printf("linked statically: jumpwire %s\n", jw_version());
    return 0;
}
"#;

#[test]
fn static_library_links_with_exactly_the_pinned_native_libs() {
    let dir = WorkDir::new("static_libs");
    let source = dir.path("static_link.c");
    std::fs::write(&source, PROGRAM).unwrap();
    let bin = dir.path("static_link");
    let mut cmd = c_compiler();
    // -nodefaultlibs: only the libraries named below, not the compiler's
    // defaults (which include libc and libgcc_s and would hide a change).
    cmd.arg(&source)
        .arg("-o")
        .arg(&bin)
        .arg("-nodefaultlibs")
        .arg(library("libjumpwire.a"))
        .args(NATIVE_STATIC_LIBS);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "linking libjumpwire.a with the pinned native libraries {NATIVE_STATIC_LIBS:?} failed: the list has \
         changed. Run `cargo rustc --lib --crate-type staticlib -- --print native-static-libs`, then update \
         NATIVE_STATIC_LIBS in tests/c/toolchain.rs and the static build line in README.md.\n{cmd:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run(&bin, &[], Link::Static)
        .assert_success()
        .assert_stdout_has(&format!(
            "linked statically: jumpwire {}",
            env!("CARGO_PKG_VERSION")
        ));
}
