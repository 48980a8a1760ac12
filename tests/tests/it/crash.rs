//! `train --solo` killed at every write boundary, at random instants, and on a full disk: after each
//! fault a restart resumes from the newest whole checkpoint, every checkpoint on disk loads, and
//! `metrics.jsonl` holds each round exactly once.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swarm_policy::checkpoint::{self, Check};
use swarm_tests::{KillOnDrop, rounds_in, small_node, without_core_dumps};

use crate::long_variant;

/// A solo training run that checkpoints every round and keeps one checkpoint, so that every round
/// writes, publishes and prunes.
fn training(data: &Path, rounds: u64) -> Command {
    let mut command = small_node(data);
    command
        .env("SWARM_LEARNER_CHECKPOINT_EVERY", "1")
        .env("SWARM_LEARNER_KEEP_CHECKPOINTS", "1")
        .args(["train", "--solo", "--http", "off", "--rounds"])
        .arg(rounds.to_string());
    let mut command = without_core_dumps(&command);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every directory under `data/checkpoints` named like a checkpoint, and any left-over names.
fn checkpoint_entries(data: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut checkpoints = Vec::new();
    let mut leftovers = Vec::new();
    let Ok(entries) = std::fs::read_dir(data.join("checkpoints")) else {
        return (checkpoints, leftovers);
    };
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("round-") {
            checkpoints.push(entry.path());
        } else {
            leftovers.push(name);
        }
    }
    checkpoints.sort();
    (checkpoints, leftovers)
}

/// The round a checkpoint holds.
fn round_of(checkpoint: &Path) -> u64 {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoint.join("state.json")).unwrap()).unwrap();
    state["extra"]["round"].as_u64().unwrap()
}

/// What the suite observed, printed at the end of each test.
#[derive(Debug, Default)]
struct Tally {
    kills: u64,
    resumes: u64,
    corrupt_checkpoints: u64,
    lost_metric_rows: u64,
    repeated_metric_rows: u64,
}

impl Tally {
    /// Counts checkpoints on disk that are not whole or do not load as a model.
    fn check_checkpoints(&mut self, data: &Path) -> Option<u64> {
        let (checkpoints, _) = checkpoint_entries(data);
        let mut newest_whole = None;
        for dir in &checkpoints {
            let whole = checkpoint::verify(dir, Check::Contents).is_ok()
                && swarm_policy::Policy::load(dir, &candle_core::Device::Cpu).is_ok();
            if whole {
                newest_whole = Some(round_of(dir));
            } else {
                eprintln!("corrupt checkpoint {}", dir.display());
                self.corrupt_checkpoints += 1;
            }
        }
        newest_whole
    }

    /// Restarts training for one round and checks that it resumed from `resume_round` and that the
    /// metrics hold rounds 1..=resume_round + 1 once each.
    fn restart_and_check(&mut self, data: &Path, resume_round: u64) {
        let output = training(data, 1).output().unwrap();
        assert!(output.status.success(), "restart: {}", describe(&output));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let reached = resume_round + 1;
        assert!(
            stdout.contains(&format!("trained to round {reached}")),
            "resumed from round {resume_round}: {}",
            describe(&output)
        );
        if resume_round > 0 {
            self.resumes += 1;
        }
        let rows = rounds_in(&data.join("metrics.jsonl"));
        for round in 1..=reached {
            match rows.iter().filter(|&&r| r == round).count() {
                0 => self.lost_metric_rows += 1,
                1 => {}
                n => self.repeated_metric_rows += n as u64 - 1,
            }
        }
        assert!(
            rows.iter().all(|&r| r <= reached),
            "rows past round {reached}: {rows:?}"
        );
        let (_, leftovers) = checkpoint_entries(data);
        assert!(
            leftovers.is_empty(),
            "a finished save leaves no temporary or trash directory: {leftovers:?}"
        );
        self.check_checkpoints(data);
    }

    fn report(&self, test: &str) {
        crate::summary(&format!(
            "{test}: kills injected {}, resumes {}, corrupt checkpoints {}, lost metric rows {}, \
             repeated metric rows {}",
            self.kills,
            self.resumes,
            self.corrupt_checkpoints,
            self.lost_metric_rows,
            self.repeated_metric_rows
        ));
        assert_eq!(self.corrupt_checkpoints, 0, "{self:?}");
        assert_eq!(self.lost_metric_rows, 0, "{self:?}");
        assert_eq!(self.repeated_metric_rows, 0, "{self:?}");
    }
}

#[test]
fn a_kill_at_every_write_boundary_loses_nothing() {
    let root = tempfile::tempdir().unwrap();
    let mut tally = Tally::default();
    // Two rounds: the warm start, two checkpoints with a prune between, the metrics lines and the
    // final re-save of the last round all pass their boundaries.
    for boundary in 1.. {
        assert!(boundary < 10_000, "the run never finished without a crash");
        let data = root.path().join(format!("boundary-{boundary}"));
        let output = training(&data, 2)
            .env("SWARM_NODE_CRASH_AT_WRITE", boundary.to_string())
            .output()
            .unwrap();
        if output.status.success() {
            assert!(boundary > 20, "too few write boundaries: {boundary}");
            break;
        }
        assert_eq!(
            output.status.signal(),
            Some(6),
            "the injected abort, not another failure: {}",
            describe(&output)
        );
        assert!(
            String::from_utf8_lossy(&output.stderr)
                .contains(&format!("aborting at write boundary {boundary} ")),
            "{}",
            describe(&output)
        );
        tally.kills += 1;
        let resume_round = tally.check_checkpoints(&data).unwrap_or(0);
        tally.restart_and_check(&data, resume_round);
        std::fs::remove_dir_all(&data).unwrap();
    }
    tally.report("kill at every write boundary");
}

#[test]
fn kill_nine_at_random_instants_keeps_every_checkpoint_whole() {
    let kills = if long_variant() { 60 } else { 6 };
    let data = tempfile::tempdir().unwrap();
    let mut tally = Tally::default();
    let mut delays = ChaCha8Rng::seed_from_u64(0x5eed);
    for _ in 0..kills {
        let mut node = KillOnDrop(training(data.path(), 1_000).spawn().unwrap());
        // Long enough to reach training on a slow machine sometimes, short enough to hit the
        // warm start and the first saves other times.
        let delay = Duration::from_secs(4).mul_f64(delays.random::<f64>());
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if node.0.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if node.0.try_wait().unwrap().is_none() {
            node.signal("KILL");
            node.0.wait().unwrap();
            tally.kills += 1;
        } else {
            let status = node.0.wait().unwrap();
            let mut stderr = String::new();
            if let Some(mut pipe) = node.0.stderr.take() {
                std::io::Read::read_to_string(&mut pipe, &mut stderr).unwrap();
            }
            panic!("training exited by itself ({status}): {stderr}");
        }
        let resume_round = tally.check_checkpoints(data.path()).unwrap_or(0);
        tally.restart_and_check(data.path(), resume_round);
    }
    tally.report("kill -9 at random instants");
}

/// A size-limited tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Result<Self, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(Self(dir.to_owned()))
    }

    fn resize(&self, bytes: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "cannot resize the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_with_the_path_and_leaves_no_debris() {
    let root = tempfile::tempdir().unwrap();
    let mount_point = root.path().join("disk");
    std::fs::create_dir(&mount_point).unwrap();
    // Room for the warm start (about 7 MB) but not for a checkpoint (about 20 MB).
    let disk = match Tmpfs::mount(&mount_point, 16 << 20) {
        Ok(disk) => disk,
        Err(why) => {
            println!("skipped: a size-limited tmpfs cannot be mounted here ({why}); run as root");
            return;
        }
    };
    let data = mount_point.join("data");
    for attempt in 0..2 {
        let output = training(&data, 1).output().unwrap();
        assert!(
            !output.status.success(),
            "attempt {attempt}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.matches("No space left on device").count(),
            1,
            "the OS error once: {stderr}"
        );
        assert!(
            stderr.contains(&data.join("checkpoints").display().to_string()),
            "the error names the path: {stderr}"
        );
        let (checkpoints, leftovers) = checkpoint_entries(&data);
        assert!(
            checkpoints.is_empty() && leftovers.is_empty(),
            "attempt {attempt} left {checkpoints:?} {leftovers:?}"
        );
    }
    disk.resize(64 << 20);
    let mut tally = Tally::default();
    tally.restart_and_check(&data, 0);
    tally.report("full disk");
}
