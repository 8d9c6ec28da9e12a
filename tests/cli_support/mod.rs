//! Running the `animal-reid` program from the integration tests.
#![allow(dead_code)]

use std::process::Command;

use anyhow::{Result, bail};

/// The program built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_animal-reid");

/// `animal-reid --catalogue LOCATION --quiet ARGS...`, without the fault
/// pause a caller's environment may hold.
pub fn cli(location: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--catalogue")
        .arg(location)
        .arg("--quiet")
        .args(args)
        .env_remove("ANIMAL_REID_FAULT_PAUSE_MS");
    c
}

/// Runs the program; fails with its output unless it exits 0.
pub fn run(location: &str, args: &[&str]) -> Result<String> {
    run_with(location, args, &[])
}

/// [`run`] with environment variables set.
pub fn run_with(location: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let out = cli(location, args).envs(env.iter().copied()).output()?;
    if !out.status.success() {
        bail!(
            "animal-reid {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
