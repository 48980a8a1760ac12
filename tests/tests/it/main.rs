//! Cross-process tests: the real `swarm-node` binary as separate OS processes under faults.
//!
//! `SWARM_TESTS_LONG=1` runs the long variants (more kills, a longer freeze). Each test's tally
//! is printed and also written to `target/tmp/fault-suite/`, which CI prints after the tests.

mod anywhere;
mod crash;
mod interop;
mod nat;
mod swarm;
mod tasks;

/// Whether the long variants were asked for.
fn long_variant() -> bool {
    std::env::var_os("SWARM_TESTS_LONG").is_some_and(|v| v == "1")
}

/// Prints a test's tally and keeps it in `target/tmp/fault-suite/<first word>.txt` (the test
/// harness hides a passing test's output).
fn summary(line: &str) {
    println!("{line}");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-suite");
    let name: String = line
        .chars()
        .take_while(|c| *c != ':')
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{name}.txt")), format!("{line}\n")));
    if let Err(e) = written {
        println!("cannot keep the tally in {}: {e}", dir.display());
    }
}
