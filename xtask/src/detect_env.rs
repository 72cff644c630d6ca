//! `cargo xtask detect-env [--context NAME] [--json]`.

use std::process::ExitCode;

use sealcache_env_detect::{EnvironmentDetector, FeatureContext};

/// Options of `detect-env`.
#[derive(Debug, clap::Args)]
pub(crate) struct DetectEnvArgs {
    /// Feature context: default, security_enforcement, ai_enabled, cache_optimization, resilience_strategy.
    #[arg(long, default_value = "default", value_parser = parse_context)]
    context: FeatureContext,
    /// Print JSON {environment, confidence, reasoning, detected_by, signals, ...}.
    #[arg(long)]
    json: bool,
}

fn parse_context(s: &str) -> Result<FeatureContext, String> {
    s.parse().map_err(|_| {
        "expected default, security_enforcement, ai_enabled, cache_optimization or resilience_strategy"
            .to_owned()
    })
}

impl DetectEnvArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let info = EnvironmentDetector::default().detect(self.context);
        if self.json {
            println!("{}", serde_json::to_string_pretty(&info)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "✅ Environment: {} (confidence {:.0} %, detected by {})",
            info.environment(),
            info.confidence() * 100.0,
            info.detected_by()
        );
        println!("   {}", info.reasoning());
        for s in info.signals() {
            println!(
                "   • {} = {} → {} ({:.2}): {}",
                s.source, s.value, s.environment, s.confidence, s.reasoning
            );
        }
        if info.strict_policy() {
            println!("🔒 the strict (production) security policy applies");
        } else if info.development_override() {
            println!("⚠️  REDIS_SECURITY_MODE=development: the development override is active");
        }
        Ok(ExitCode::SUCCESS)
    }
}
