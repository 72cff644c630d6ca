//! Detection from the loaded settings: `environment` and `redis_security_mode` in `sealcache.toml`
//! count like their variables, while host name, platform and CI signals come from the process.

use sealcache_env_detect::{
    EnvironmentDetector, EnvironmentInfo, FeatureContext, Overlay, ProcessSource, SignalSource,
};

use crate::settings::SecuritySettings;

impl SecuritySettings {
    /// Detects the environment of this process with these settings laid over its variables, so
    /// that `environment = "production"` in `sealcache.toml` is honoured. This is what the server
    /// and the cache builder use; never detect from the process alone when settings were loaded.
    #[must_use]
    pub fn detect_environment(&self, context: FeatureContext) -> EnvironmentInfo {
        self.detect_environment_with(ProcessSource, context)
    }

    /// As [`SecuritySettings::detect_environment`], over another signal source (tests).
    #[must_use]
    pub fn detect_environment_with<S: SignalSource>(
        &self,
        source: S,
        context: FeatureContext,
    ) -> EnvironmentInfo {
        let mut overlay = Overlay::new(source);
        if let Some(environment) = &self.environment {
            overlay = overlay.var("ENVIRONMENT", environment);
        }
        if self.development_override {
            overlay = overlay.var("REDIS_SECURITY_MODE", "development");
        }
        EnvironmentDetector::new(overlay).detect(context)
    }
}
