//! Headless Chromium for end-to-end checks of the dashboard: the page is loaded as a person's browser
//! would, its DOM is read back, and a screenshot is kept for a human to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Chromium binary, or `None` with a message when it is not installed. Under CI (`CI` set) a missing
/// browser is a failure: `.ci/run` installs it.
pub fn find() -> Option<PathBuf> {
    for candidate in [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ] {
        if Path::new(candidate).exists() {
            return Some(PathBuf::from(candidate));
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "Chromium is missing under CI; .ci/run should have installed Debian's `chromium` package"
    );
    eprintln!("SKIPPED: Chromium not installed (apt-get install chromium) — dashboard not checked");
    None
}

fn base_command(browser: &Path, profile: &Path) -> Command {
    let mut command = Command::new(browser);
    // The flags keep Chromium from reaching out to the network, which this machine refuses.
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=6000",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

/// Runs Chromium to completion; a failed run fails the test with Chromium's own message.
fn run(command: &mut Command) -> std::process::Output {
    let output = command.output().expect("chromium starts");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Loads `url`, lets its scripts run, and returns the serialized DOM.
pub fn dump_dom(browser: &Path, profile: &Path, url: &str) -> String {
    let output = run(base_command(browser, profile).arg("--dump-dom").arg(url));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Saves a PNG screenshot of `url` at `path`.
pub fn screenshot(browser: &Path, profile: &Path, url: &str, path: &Path) {
    run(base_command(browser, profile)
        .arg("--window-size=1280,1100")
        .arg(format!("--screenshot={}", path.display()))
        .arg(url));
    let bytes = std::fs::read(path).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG"), "the screenshot is a PNG");
}

/// Reads `data-<name>` from the opening `<body>` tag of a dumped DOM.
pub fn body_attribute(dom: &str, name: &str) -> Option<String> {
    let start = dom.find("<body")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let key = format!("data-{name}=\"");
    let value_start = tag.find(&key)? + key.len();
    Some(tag[value_start..value_start + tag[value_start..].find('"')?].to_owned())
}
