//! Verification of a running stack: `sealcache_ops::verify` (every hardening item of
//! docs/architecture.md §6, observed, once for every stack), printed. The checks only `cargo
//! xtask test` makes are in `stack_tests`.

use sealcache_api::SecurityLevel;
use std::path::Path;

pub use sealcache_ops::verify::{Check, check, end_to_end};

/// Prints one `✅`/`❌` line per check.
pub fn print_checks(checks: &[Check]) {
    sealcache_ops::verify::check_lines(checks, &mut crate::progress::Printer);
}

/// Verifies the stack that runs from `dir` (`sealcache_ops::verify::verify`): every backend at
/// `production_ready` when `secure`, else at `development`. A stack that cannot be found is one
/// failed check.
pub fn verify_printed(dir: &Path, secure: bool) -> Vec<Check> {
    let want = if secure {
        SecurityLevel::ProductionReady
    } else {
        SecurityLevel::Development
    };
    let options = sealcache_ops::verify::VerifyOptions::new(want);
    sealcache_ops::verify::verify(dir, &options, &mut crate::progress::Printer)
        .unwrap_or_else(|e| vec![check("stack_running", false, e.to_string())])
}

/// The deployment's API key.
pub fn api_key(dir: &Path) -> String {
    sealcache_ops::runtime::api_key(dir)
}

/// The last line of an up command: `✅ Ready: <urls>` and success when the verification
/// `passed`, else the stack left running for inspection and exit code 1.
pub fn ready_or_failed(passed: bool, urls: &str, dir: &Path) -> std::process::ExitCode {
    if passed {
        println!(
            "✅ Ready: {urls} — API key in {}",
            dir.join(sealcache_config_gen::layout::API_KEY).display()
        );
        std::process::ExitCode::SUCCESS
    } else {
        println!(
            "❌ verification failed; the stack is left running for inspection (`cargo xtask down`)"
        );
        std::process::ExitCode::from(1)
    }
}
