# Sourced by the bench scripts (run from the repository root):
#   BIN=$(bench_exe NAME)
# builds the `cargo bench` target NAME (bench/NAME.rs; the bench profile,
# which is release's) and prints the path of its executable.
bench_exe() {
    cargo bench --bench "$1" --no-run --quiet --message-format=json |
        sed -n '/"kind":\["bench"\]/s/.*"executable":"\([^"]*\)".*/\1/p'
}
