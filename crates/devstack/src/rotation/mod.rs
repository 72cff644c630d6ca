//! The rotation's test harnesses of `cargo xtask test`: rotation under load ([`verify_under_load`])
//! and every interruption point ([`verify_interruptions`]), run through the operations library
//! (`sealcache_ops::rotate`) or the operator command inside the backend container.

mod interrupt;
mod load;

use std::path::Path;

use sealcache_config_gen::rotation::{RotateOptions, Stage, StageOutcome};

pub use sealcache_ops::rotate::{Step, report};

pub use self::interrupt::{refused_with_redis_down, verify_interruptions};
pub use self::load::{Rotator, verify_under_load};

use crate::progress::Printer;

/// [`sealcache_ops::rotate::run_stage`], its progress printed.
///
/// # Errors
/// As [`sealcache_ops::rotate::run_stage`].
pub fn run_stage(
    dir: &Path,
    stage: Stage,
    opts: &RotateOptions,
    reload: bool,
) -> anyhow::Result<StageOutcome> {
    Ok(sealcache_ops::rotate::run_stage(
        dir,
        stage,
        opts,
        reload,
        &mut Printer,
    )?)
}

/// [`sealcache_ops::rotate::run_stage_until`], its progress printed.
///
/// # Errors
/// As [`sealcache_ops::rotate::run_stage_until`].
pub fn run_stage_until(
    dir: &Path,
    stage: Stage,
    opts: &RotateOptions,
    reload: bool,
    stop: Option<Step>,
) -> anyhow::Result<Option<StageOutcome>> {
    Ok(sealcache_ops::rotate::run_stage_until(
        dir,
        stage,
        opts,
        reload,
        stop,
        &mut Printer,
    )?)
}
